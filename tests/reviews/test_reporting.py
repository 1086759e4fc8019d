"""The reporter posts `tandem/review-policy` through PyGithub and python-gitlab, to the fakes."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.integrations.vcs import VcsUnavailable
from reviews.models import PolicyEvaluation, PullRequest
from reviews.services import reporting
from reviews.services.reporting import commit_status_report, evaluation_report, evaluation_report_if_newest
from reviews.services.sync import repository_for_sync, repository_sync
from reviews.tasks import reconcile_verdicts, report_evaluation

pytestmark = pytest.mark.django_db


def test_github_status_is_posted_with_context_description_and_link(fake_github, github_connection, settings):
    settings.PUBLIC_URL = "https://tandem.example.com"
    fake_github.seed_repository("octocat/Hello-World", n_pulls=1)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()
    commit_status_report(
        pull_request=pull_request, sha=pull_request.head_sha, state="pending", description="0 of 1 approvals"
    )
    posted = fake_github.statuses_posted[-1]
    assert posted["context"] == "tandem/review-policy"
    assert posted["state"] == "pending"
    assert posted["description"] == "0 of 1 approvals"
    assert posted["target_url"] == f"https://tandem.example.com/pulls/{pull_request.pk}/"
    assert posted["sha"] == pull_request.head_sha


def test_gitlab_status_is_posted_with_name_and_link(fake_gitlab, gitlab_connection):
    fake_gitlab.seed_project("acme/monolith", n_merge_requests=1)
    repository = repository_for_sync(provider="gitlab", full_path="acme/monolith", connection=gitlab_connection)
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()
    commit_status_report(pull_request=pull_request, sha=pull_request.head_sha, state="failure", description="blocked")
    posted = fake_gitlab.statuses_posted[-1]
    assert posted["name"] == "tandem/review-policy"
    assert posted["status"] == "failed"
    assert posted["target_url"].endswith(f"/pulls/{pull_request.pk}/")


def test_a_vcs_outage_is_reported_as_retryable(fake_github, github_connection):
    fake_github.seed_repository("octocat/Hello-World", n_pulls=1)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()
    fake_github.fail_next("/statuses/", status=502)
    with pytest.raises(VcsUnavailable):
        commit_status_report(pull_request=pull_request, sha=pull_request.head_sha, state="success", description="ok")


def _synced_pull_request(fake_github, github_connection):
    fake_github.seed_repository("octocat/Hello-World", n_pulls=1)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    repository_sync(repository=repository)
    PullRequest.objects.filter(repository=repository).update(state=PullRequest.State.OPEN)  # the seed's may be merged
    return PullRequest.objects.select_related("repository__connection").get(repository=repository)


def _verdict(pull_request, *, outcome="pending", description="0 of 1 approvals", minutes=0, reported=False):
    at = timezone.now() + dt.timedelta(minutes=minutes)
    evaluation = PolicyEvaluation.objects.create(
        pull_request=pull_request,
        head_sha=pull_request.head_sha,
        outcome=outcome,
        description=description,
        evaluated_at=at,
        last_evaluated_at=at,
        reported_at=at if reported else None,
    )
    evaluation.pull_request = pull_request
    return evaluation


def test_the_newest_verdict_is_posted_after_one_read_of_whether_it_is_newest_and_what_the_head_shows(
    fake_github, github_connection
):
    pull_request = _synced_pull_request(fake_github, github_connection)
    _verdict(pull_request, outcome="failure", description="blocked", minutes=-2, reported=True)
    evaluation = _verdict(pull_request)
    posted = len(fake_github.statuses_posted)
    with CaptureQueriesContext(connection) as captured:
        assert evaluation_report_if_newest(evaluation=evaluation) == "reported"
    assert len(fake_github.statuses_posted) == posted + 1
    assert fake_github.statuses_posted[-1]["state"] == "pending"
    reads = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT")]
    assert len(reads) == 1  # was two: the newest verdict's key, then the one shown on the head
    evaluation.refresh_from_db()
    assert evaluation.reported_at is not None


def test_a_verdict_superseded_since_is_neither_posted_nor_counted(fake_github, github_connection):
    pull_request = _synced_pull_request(fake_github, github_connection)
    evaluation = _verdict(pull_request)
    _verdict(pull_request, outcome="success", description="approved", minutes=1)  # stored by a later pass
    posted = len(fake_github.statuses_posted)
    assert evaluation_report_if_newest(evaluation=evaluation) is None
    assert len(fake_github.statuses_posted) == posted
    evaluation.refresh_from_db()
    assert evaluation.reported_at is None


def test_a_verdict_the_head_shows_already_is_not_posted_again(fake_github, github_connection):
    pull_request = _synced_pull_request(fake_github, github_connection)
    _verdict(pull_request, minutes=-2, reported=True)  # the same outcome and text, on the commit already
    evaluation = _verdict(pull_request)
    posted = len(fake_github.statuses_posted)
    assert evaluation_report_if_newest(evaluation=evaluation) == "unchanged"
    assert len(fake_github.statuses_posted) == posted
    assert evaluation_report(evaluation=evaluation) == "unchanged"  # as the reconciler's way says it


def test_a_verdict_whose_row_is_gone_or_outrun_on_a_moved_head_is_not_posted(fake_github, github_connection):
    # Fail closed: the one read must find the verdict itself the newest, whatever the head the pull request showed
    # when it was evaluated and whatever the head shows.
    pull_request = _synced_pull_request(fake_github, github_connection)
    _verdict(pull_request, outcome="success", description="approved", minutes=-3, reported=True)
    with transaction.atomic():  # stored, then rolled back (its pass failed later): the instance keeps its key
        gone = _verdict(pull_request, outcome="success", description="approved again", minutes=-1)
        transaction.set_rollback(True)
    assert gone.pk is not None and not PolicyEvaluation.objects.filter(pk=gone.pk).exists()
    approved = _verdict(pull_request, outcome="success", description="approved again", minutes=-1)
    moved = PolicyEvaluation.objects.create(  # the head moved on and was judged: blocked there
        pull_request=pull_request,
        head_sha="f" * 40,
        outcome="failure",
        description="changes requested",
        evaluated_at=timezone.now(),
        last_evaluated_at=timezone.now(),
    )
    posted = len(fake_github.statuses_posted)
    assert evaluation_report_if_newest(evaluation=gone) is None
    assert evaluation_report_if_newest(evaluation=approved) is None  # the pull request in memory: still its head
    assert len(fake_github.statuses_posted) == posted
    approved.refresh_from_db()
    assert approved.reported_at is None and moved.reported_at is None


# --- two reports of one pull request at once (PostgreSQL: real threads, real connections) -----------------------------

# Each thread commits on a connection of its own; SQLite would serialise the writers these races need at once.
committed = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="SQLite serialises writers; the races these tests force need PostgreSQL",
)


@contextlib.contextmanager
def _held_post(fake_github, report: Callable[[], Any]) -> Iterator[tuple[Any, Future[Any]]]:
    """`report` in a thread of its own until its post reaches the provider, which holds it (`held.released.set()`
    lets it through); the with block runs meanwhile, with the hold and the report's future."""
    held = fake_github.hold_next("/statuses/")
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow_report = pool.submit(_in_a_thread(report))
        assert held.arrived.wait(timeout=30), "the approval's post never reached the provider"
        yield held, slow_report


def _in_a_thread(report: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return report()
        finally:
            connections.close_all()

    return run


def _states(fake_github, sha: str) -> list[str]:
    """The states posted on `sha`, in the order the provider accepted them: the last is what the commit shows."""
    return [status["state"] for status in fake_github.statuses_posted if status["sha"] == sha]


def _report_by(path: str, evaluation: PolicyEvaluation) -> Any:
    if path == "pass":
        return evaluation_report_if_newest(evaluation=evaluation)  # a verdict pass's, right after storing it
    return report_evaluation(evaluation.pk)  # the retried or reconciled report's task


@pytest.mark.parametrize("before", ["nothing shown", "a block shown"])
@pytest.mark.parametrize("fast", ["pass", "task"])
@pytest.mark.parametrize("slow", ["pass", "task"])
@committed
@on_postgresql
def test_an_approval_accepted_after_a_newer_block_is_followed_by_the_block(
    fake_github, github_connection, slow, fast, before
):
    # Fail closed: the approval was the newest when its report read it, but its post reaches the provider after the
    # post of the block stored since. The commit must end up showing the block, not the approval (it did: green).
    pull_request = _synced_pull_request(fake_github, github_connection)
    if before == "a block shown":  # the block's report took the head for showing it already (it did not post)
        _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-3, reported=True)
    approved = _verdict(pull_request, outcome="approved", description="approved", minutes=-2)
    with _held_post(fake_github, lambda: _report_by(slow, approved)) as (held, slow_report):
        blocked = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-1)
        assert _report_by(fast, blocked) == "reported"
        held.released.set()
        assert slow_report.result(timeout=60) == "reported"
    assert _states(fake_github, pull_request.head_sha)[-1] == "failure"
    blocked.refresh_from_db()
    assert blocked.reported_at is not None and blocked.report_error == ""


@committed
@on_postgresql
def test_a_post_whose_mark_failed_leaves_the_newest_verdict_to_the_reconciler(
    fake_github, github_connection, monkeypatch, settings
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "crash"}}
    pull_request = _synced_pull_request(fake_github, github_connection)
    PullRequest.objects.filter(pk=pull_request.pk).update(evaluation_owed_since=None)  # nothing for it to evaluate
    approved = _verdict(pull_request, outcome="approved", description="approved", minutes=-5)
    mark = reporting._reported_if_newest

    def crash(evaluation: PolicyEvaluation) -> bool:
        if evaluation.pk == approved.pk:
            raise RuntimeError("the worker stopped between the post and its mark")
        return mark(evaluation)

    monkeypatch.setattr(reporting, "_reported_if_newest", crash)
    with _held_post(fake_github, lambda: evaluation_report_if_newest(evaluation=approved)) as (held, slow_report):
        blocked = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-4)
        assert evaluation_report_if_newest(evaluation=blocked) == "reported"
        held.released.set()
        with pytest.raises(RuntimeError):
            slow_report.result(timeout=60)
    assert _states(fake_github, pull_request.head_sha)[-1] == "success"  # what the crash left on the commit

    assert reconcile_verdicts() == "evaluated 0, reported 1"
    assert _states(fake_github, pull_request.head_sha)[-1] == "failure"
    blocked.refresh_from_db()
    assert blocked.reported_at is not None and blocked.report_error == ""


def test_a_failed_post_found_superseded_by_its_retry_has_the_newest_posted_again(fake_github, github_connection):
    # A post that failed (a timeout) may have been accepted all the same, after the newer verdict's.
    pull_request = _synced_pull_request(fake_github, github_connection)
    approved = _verdict(pull_request, outcome="approved", description="approved", minutes=-2)
    fake_github.fail_next("/statuses/", status=504)
    assert evaluation_report(evaluation=approved) == "failed"
    blocked = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-1)
    assert evaluation_report_if_newest(evaluation=blocked) == "reported"
    approved.refresh_from_db()
    assert evaluation_report(evaluation=approved) == "superseded"  # its retry
    blocked.refresh_from_db()
    assert (blocked.reported_at, blocked.report_error) == (None, reporting.REPOST_OWED)
    posted = len(fake_github.statuses_posted)
    assert evaluation_report(evaluation=blocked) == "reported"  # as the reconciler has it posted
    assert len(fake_github.statuses_posted) == posted + 1
    assert _states(fake_github, pull_request.head_sha)[-1] == "failure"


@committed
@on_postgresql
def test_an_approval_accepted_on_a_head_left_is_not_trusted_as_the_block_when_the_head_comes_back(
    fake_github, github_connection
):
    # The approval's post reaches the commit after the block's, once the head has moved on: the repair is skipped
    # (that commit gates nothing then). The head comes back to it (a force-push back): its new verdict, a block like
    # the last one on it, must be posted, not taken as shown (the commit showed the approval: green).
    pull_request = _synced_pull_request(fake_github, github_connection)
    left = pull_request.head_sha
    approved = _verdict(pull_request, outcome="approved", description="approved", minutes=-4)
    with _held_post(fake_github, lambda: evaluation_report_if_newest(evaluation=approved)) as (held, slow_report):
        blocked = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-3)
        assert evaluation_report_if_newest(evaluation=blocked) == "reported"
        PullRequest.objects.filter(pk=pull_request.pk).update(head_sha="b" * 40)
        pull_request.head_sha = "b" * 40
        _verdict(pull_request, outcome="approved", description="approved", minutes=-2)
        held.released.set()
        assert slow_report.result(timeout=60) == "reported"
    assert _states(fake_github, left)[-1] == "success"  # the head had left it: no repair then

    PullRequest.objects.filter(pk=pull_request.pk).update(head_sha=left)
    pull_request.head_sha = left
    back = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-1)
    evaluation_report_if_newest(evaluation=back)
    assert _states(fake_github, left)[-1] == "failure"


@committed
@on_postgresql
def test_a_failed_repair_is_not_cleared_by_the_newest_verdicts_own_mark_arriving_late(
    fake_github, github_connection, monkeypatch, settings
):
    # The block is accepted, then the approval (green); the approval's repair takes back the block's mark and its post
    # of the block fails (502, twice: its task's post too). The block's own mark, on its way all along, lands after:
    # it must not clear what the repair owes, or nothing ever posts the block again (it stayed green).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "late"}}
    pull_request = _synced_pull_request(fake_github, github_connection)
    PullRequest.objects.filter(pk=pull_request.pk).update(evaluation_owed_since=None)  # nothing for it to evaluate
    approved = _verdict(pull_request, outcome="approved", description="approved", minutes=-5)
    mark = reporting._reported_if_newest
    late, marking, let_mark = {}, threading.Event(), threading.Event()

    def slow_mark(evaluation: PolicyEvaluation) -> bool:
        if evaluation.pk == late.get("pk"):
            late.pop("pk")
            marking.set()
            assert let_mark.wait(timeout=60)
        return mark(evaluation)

    monkeypatch.setattr(reporting, "_reported_if_newest", slow_mark)
    held = fake_github.hold_next("/statuses/")
    with ThreadPoolExecutor(max_workers=2) as pool:
        slow_report = pool.submit(_in_a_thread(lambda: evaluation_report_if_newest(evaluation=approved)))
        assert held.arrived.wait(timeout=30), "the approval's post never reached the provider"
        blocked = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-4)
        late["pk"] = blocked.pk
        blocked_report = pool.submit(_in_a_thread(lambda: evaluation_report_if_newest(evaluation=blocked)))
        assert marking.wait(timeout=30), "the block's post never got to its mark"
        assert _states(fake_github, pull_request.head_sha)[-1] == "failure"
        repair = fake_github.hold_next("/statuses/")
        held.released.set()
        assert repair.arrived.wait(timeout=30), "the approval's repair never posted"
        fake_github.fail_next("/statuses/", status=502, times=2)
        repair.released.set()
        assert slow_report.result(timeout=60) == "reported"
        let_mark.set()
        blocked_report.result(timeout=60)
    reconcile_verdicts()
    assert _states(fake_github, pull_request.head_sha)[-1] == "failure"  # it was the approval's: success
    blocked.refresh_from_db()
    assert blocked.reported_at is not None and blocked.report_error == ""


@committed
@on_postgresql
def test_a_verdict_taken_for_shown_keeps_what_a_repair_owes_it(fake_github, github_connection, monkeypatch, settings):
    # The second block's pass takes the head for showing the first block; meanwhile the approval is accepted after
    # the blocks and its repair of the second block fails (502). The pass's "unchanged" mark, landing after, must not
    # clear what is owed, or nothing posts the block again (the commit stayed green).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "same"}}
    pull_request = _synced_pull_request(fake_github, github_connection)
    PullRequest.objects.filter(pk=pull_request.pk).update(evaluation_owed_since=None)  # nothing for it to evaluate
    approved = _verdict(pull_request, outcome="approved", description="approved", minutes=-5)
    same = reporting._shows_the_same
    late, comparing, let_compare = {}, threading.Event(), threading.Event()

    def slow_compare(shown: PolicyEvaluation, evaluation: PolicyEvaluation, *, as_check_run: bool) -> bool:
        if evaluation.pk == late.get("pk"):
            late.pop("pk")
            comparing.set()
            assert let_compare.wait(timeout=60)
        return same(shown, evaluation, as_check_run=as_check_run)

    monkeypatch.setattr(reporting, "_shows_the_same", slow_compare)
    held = fake_github.hold_next("/statuses/")
    with ThreadPoolExecutor(max_workers=2) as pool:
        slow_report = pool.submit(_in_a_thread(lambda: evaluation_report_if_newest(evaluation=approved)))
        assert held.arrived.wait(timeout=30), "the approval's post never reached the provider"
        first = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-4)
        assert evaluation_report_if_newest(evaluation=first) == "reported"
        second = _verdict(pull_request, outcome="blocked", description="changes requested", minutes=-3)
        late["pk"] = second.pk
        second_report = pool.submit(_in_a_thread(lambda: evaluation_report_if_newest(evaluation=second)))
        assert comparing.wait(timeout=30), "the second block's pass never read the head"
        repair = fake_github.hold_next("/statuses/")
        held.released.set()
        assert repair.arrived.wait(timeout=30), "the approval's repair never posted"
        fake_github.fail_next("/statuses/", status=502, times=2)
        repair.released.set()
        assert slow_report.result(timeout=60) == "reported"
        let_compare.set()
        second_report.result(timeout=60)
    assert _states(fake_github, pull_request.head_sha)[-1] == "success"  # what the outage left on the commit

    reconcile_verdicts()
    assert _states(fake_github, pull_request.head_sha)[-1] == "failure"
    second.refresh_from_db()
    assert second.reported_at is not None and second.report_error == ""
