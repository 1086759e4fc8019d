"""The reporter posts `tandem/review-policy` through PyGithub and python-gitlab, to the fakes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.integrations.vcs import VcsUnavailable
from reviews.models import PolicyEvaluation, PullRequest
from reviews.services.reporting import commit_status_report, evaluation_report, evaluation_report_if_newest
from reviews.services.sync import repository_for_sync, repository_sync

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
