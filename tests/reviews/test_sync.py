"""Sync through PyGithub and python-gitlab, pointed at the fake servers: incremental, resumable, counted."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reviews.integrations.vcs import VcsRateLimited
from reviews.models import ChangedFile, Comment, Commit, PullRequest, Repository, Review, SyncRun
from reviews.selectors.health import review_health
from reviews.services.sync import repository_for_sync, repository_sync
from reviews.tasks import sync_all_repositories

pytestmark = pytest.mark.django_db

REPO = "octocat/Hello-World"
PROJECT = "acme/monolith"


def github_repository(fake_github, github_connection, n_pulls: int = 12) -> Repository:
    fake_github.seed_repository(REPO, n_pulls=n_pulls)
    return repository_for_sync(provider="github", full_path=REPO, connection=github_connection)


def gitlab_repository(fake_gitlab, gitlab_connection, n: int = 12) -> Repository:
    fake_gitlab.seed_project(PROJECT, n_merge_requests=n)
    return repository_for_sync(provider="gitlab", full_path=PROJECT, connection=gitlab_connection)


def test_github_full_sync_stores_every_pull_request_with_its_details(fake_github, github_connection):
    repository = github_repository(fake_github, github_connection)
    run = repository_sync(repository=repository)
    assert run.status == SyncRun.Status.COMPLETED
    assert run.pull_requests_synced == 12
    assert PullRequest.objects.filter(repository=repository).count() == 12
    assert Review.objects.filter(pull_request__repository=repository).count() > 0
    assert Commit.objects.filter(repository=repository).count() > 0
    assert ChangedFile.objects.filter(pull_request__repository=repository).count() > 0
    assert Comment.objects.filter(pull_request__repository=repository).exists()
    # Figures from the single-PR call, which the list does not carry.
    assert not PullRequest.objects.filter(repository=repository, additions__isnull=True).exists()
    repository.refresh_from_db()
    newest = max(PullRequest.objects.filter(repository=repository).values_list("updated_at", flat=True))
    assert repository.synced_until == newest
    assert run.api_calls == len(fake_github.requests) - 1  # all but the repository lookup


def test_github_resync_of_an_unchanged_repository_costs_one_uncounted_304(fake_github, github_connection):
    repository = github_repository(fake_github, github_connection)
    repository_sync(repository=repository)
    repository.refresh_from_db()
    # The backfill read GraphQL pages: the first incremental run reads the REST list once and keeps its ETag.
    assert repository_sync(repository=repository).api_calls == 1
    repository.refresh_from_db()
    remaining = fake_github.rate_remaining
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 0
    assert run.api_calls == 1
    assert fake_github.requests[-1].status == 304
    assert fake_github.rate_remaining == remaining


def test_github_incremental_sync_fetches_only_what_changed(fake_github, github_connection):
    repository = github_repository(fake_github, github_connection)
    repository_sync(repository=repository)
    repository.refresh_from_db()
    fake_github.touch_pull(REPO, 3)
    fake_github.add_review(REPO, 3, reviewer="zoe", state="CHANGES_REQUESTED")
    fake_github.touch_pull(REPO, 3)
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 1
    assert Review.objects.filter(pull_request__number=3, state="changes_requested").exists()


def test_rate_limit_mid_sync_keeps_the_watermark_and_the_next_run_resumes(fake_github, github_connection):
    repository = github_repository(fake_github, github_connection)
    fake_github.fail_next("/pulls/5/reviews", status=429, retry_after=30)
    with pytest.raises(VcsRateLimited) as raised:
        repository_sync(repository=repository, graphql=False)
    assert raised.value.retry_after == 30
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.RATE_LIMITED
    assert run.api_calls > 0
    repository.refresh_from_db()
    assert repository.synced_until is None
    resumed = repository_sync(repository=repository, graphql=False)
    assert resumed.status == SyncRun.Status.COMPLETED
    assert PullRequest.objects.filter(repository=repository).count() == 12
    # The resumed run passes over the pull requests the interrupted one stored, without asking for them again.
    assert resumed.pull_requests_synced < 12
    details_calls = [r for r in fake_github.requests if r.path.endswith("/pulls/12/reviews")]
    assert len(details_calls) == 1


@pytest.mark.parametrize(("graphql", "path"), [(False, "/pulls"), (True, "/graphql")])
def test_secondary_rate_limit_403_is_a_wait_not_a_failure(fake_github, github_connection, graphql, path):
    """REST's listing, or GraphQL's page (a backfill makes no REST call per pull request any more)."""
    repository = github_repository(fake_github, github_connection)
    fake_github.fail_next(path, status=403, retry_after=7)
    with pytest.raises(VcsRateLimited) as raised:
        repository_sync(repository=repository, graphql=graphql)
    assert raised.value.retry_after == 7


def test_sync_github_command_prints_the_call_count(fake_github, github_connection):
    fake_github.seed_repository(REPO, n_pulls=5)
    out = StringIO()
    call_command("sync_github", REPO, "--connection", github_connection.name, stdout=out, verbosity=0)
    assert "Synced 5 pull requests of octocat/Hello-World" in out.getvalue()
    out = StringIO()
    call_command("sync_github", REPO, "--connection", github_connection.name, "--full", stdout=out, verbosity=0)
    assert "Synced 5 pull requests" in out.getvalue()


def test_sync_command_with_since_syncs_what_changed_after_that_date(fake_github, github_connection):
    numbers = fake_github.seed_repository(REPO, n_pulls=6)
    assert numbers
    out = StringIO()
    call_command(
        "sync_github", REPO, "--connection", github_connection.name, "--since", "2100-01-01", stdout=out, verbosity=0
    )
    assert "Synced 0 pull requests" in out.getvalue()


def test_sync_command_reports_bad_input_clearly(github_connection):
    with pytest.raises(CommandError, match="not a date"):
        call_command("sync_github", REPO, "--since", "last tuesday", verbosity=0)
    with pytest.raises(CommandError, match="No github connection named"):
        call_command("sync_github", REPO, "--connection", "nope", verbosity=0)


def test_gitlab_full_sync_and_unchanged_resync(fake_gitlab, gitlab_connection):
    repository = gitlab_repository(fake_gitlab, gitlab_connection)
    run = repository_sync(repository=repository)
    assert run.status == SyncRun.Status.COMPLETED
    assert run.pull_requests_synced == 12
    assert Review.objects.filter(pull_request__repository=repository, state="approved").exists()
    assert not PullRequest.objects.filter(repository=repository, additions__isnull=True).exists()
    assert Comment.objects.filter(pull_request__repository=repository, is_system=True).exists()
    repository.refresh_from_db()
    again = repository_sync(repository=repository)
    # GitLab has no conditional requests: the first list page (updated_after the watermark) is asked again, and
    # nothing else: not the project, which Tandem has stored.
    assert again.pull_requests_synced == 0
    assert again.api_calls == 1


def test_gitlab_approval_withdrawn_between_syncs_is_dismissed(fake_gitlab, gitlab_connection):
    repository = gitlab_repository(fake_gitlab, gitlab_connection, n=3)
    repository_sync(repository=repository)
    approval = Review.objects.filter(pull_request__number=2, state="approved").first()
    assert approval is not None
    username = approval.reviewer.identities.get(kind="gitlab").value
    fake_gitlab.remove_approval(PROJECT, 2, user=username)
    fake_gitlab.touch_merge_request(PROJECT, 2)
    repository.refresh_from_db()
    repository_sync(repository=repository)
    approval.refresh_from_db()
    assert approval.state == "dismissed"


def test_beat_task_queues_a_sync_per_repository_with_a_token(fake_github, github_connection):
    github_repository(fake_github, github_connection, n_pulls=2)
    assert sync_all_repositories("github") == 1
    assert PullRequest.objects.count() == 2


def test_same_change_on_github_and_gitlab_yields_the_same_rows(
    fake_github, github_connection, fake_gitlab, gitlab_connection
):
    created = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    approved = created + dt.timedelta(hours=3)
    merged = created + dt.timedelta(hours=5)
    fake_github.add_repo("acme/shop")
    fake_github.add_pull(
        "acme/shop", number=7, title="Fix rounding", author="sam", state="merged", head="sam/rounding",
        base="main", created_at=created, merged_at=merged, closed_at=merged, updated_at=merged,
    )  # fmt: skip
    fake_github.add_review("acme/shop", 7, reviewer="kim", state="APPROVED", submitted_at=approved)
    fake_github.add_file("acme/shop", 7, filename="shop/money.py", additions=12, deletions=3)
    fake_github.update_pull("acme/shop", 7, updated_at=merged)
    fake_gitlab.add_project("acme/shop")
    fake_gitlab.add_merge_request(
        "acme/shop", iid=7, title="Fix rounding", author="sam", state="merged", source_branch="sam/rounding",
        target_branch="main", created_at=created, merged_at=merged, closed_at=merged, updated_at=merged,
    )  # fmt: skip
    fake_gitlab.add_approval("acme/shop", 7, user="kim", approved_at=approved)
    diff = "@@ -1,3 +1,12 @@\n" + "-old\n" * 3 + "+new\n" * 12
    fake_gitlab.add_diff("acme/shop", 7, new_path="shop/money.py", diff=diff)
    fake_gitlab.touch_merge_request("acme/shop", 7, updated_at=merged)

    rows, figures = {}, {}
    for provider, connection in (("github", github_connection), ("gitlab", gitlab_connection)):
        repository = repository_for_sync(provider=provider, full_path="acme/shop", connection=connection)
        repository_sync(repository=repository)
        pull = PullRequest.objects.get(repository=repository, number=7)
        rows[provider] = {
            "title": pull.title,
            "state": pull.state,
            "base_ref": pull.base_ref,
            "head_ref": pull.head_ref,
            "created_at": pull.created_at,
            "merged_at": pull.merged_at,
            "ready_at": pull.ready_at,
            "additions": pull.additions,
            "deletions": pull.deletions,
            "changed_files": pull.changed_files,
            "author": pull.author.display_name.lower() if pull.author else None,
            "files": list(pull.files.values_list("path", "additions", "deletions")),
            "approvals": [
                (r.reviewer.identities.filter(kind=provider).get().value, r.submitted_at)
                for r in pull.reviews.filter(state="approved")
            ],
        }
        health = review_health(
            pull_requests=PullRequest.objects.filter(repository=repository),
            since=created - dt.timedelta(days=1),
            until=merged + dt.timedelta(days=1),
        )
        figures[provider] = {key: value for key, value in vars(health).items() if key not in {"reviewer_load", "flows"}}
        figures[provider]["reviewers"] = [(load.reviews_given, load.waiting_on_them) for load in health.reviewer_load]
    assert rows["github"] == rows["gitlab"]
    assert figures["github"] == figures["gitlab"]
    assert figures["github"]["merged"] == 1
    assert figures["github"]["time_to_approve"].median_hours == 3.0


def test_github_enterprise_is_reached_at_its_own_api_base_url():
    from reviews.models import Connection
    from tests.fakes.github import FakeGitHub

    with FakeGitHub(prefix="/api/v3") as enterprise:
        enterprise.seed_repository("corp/app", n_pulls=2)
        connection = Connection.objects.create(
            provider="github", name="GHE", base_url=enterprise.url, api_token=enterprise.token
        )
        assert connection.base_url.endswith("/api/v3")
        repository = repository_for_sync(provider="github", full_path="corp/app", connection=connection)
        assert repository_sync(repository=repository).pull_requests_synced == 2
        # The fake answers only below /api/v3: a request that missed the prefix would be a 404 here.
        assert {request.status for request in enterprise.requests} <= {200}


def test_sync_pauses_before_the_rate_limit_budget_runs_out(settings):
    from reviews.models import Connection
    from tests.fakes.github import FakeGitHub

    settings.SYNC_RATE_LIMIT_RESERVE = 30
    with FakeGitHub(rate_limit=60) as github:
        github.seed_repository("acme/busy", n_pulls=12)
        connection = Connection.objects.create(
            provider="github", name="busy", base_url=github.url, api_token=github.token
        )
        repository = repository_for_sync(provider="github", full_path="acme/busy", connection=connection)
        with pytest.raises(VcsRateLimited) as paused:
            repository_sync(repository=repository, graphql=False)
        assert paused.value.retry_after > 1
        assert github.rate_remaining >= 20  # stopped with budget to spare, not at the wall
        run = SyncRun.objects.get()
        assert run.status == SyncRun.Status.RATE_LIMITED
        assert 0 < run.pull_requests_synced < 12


def _webhook_approval(pull_request: PullRequest) -> Review:
    """An approval a webhook brought a moment ago, which the API's list does not show yet."""
    from django.utils import timezone

    from tests.factories import PersonFactory, ReviewFactory

    return ReviewFactory(
        pull_request=pull_request, reviewer=PersonFactory(), external_id="from-a-webhook", submitted_at=timezone.now()
    )


def test_gitlab_approval_the_api_list_has_not_caught_up_with_stays_approved(fake_gitlab, gitlab_connection):
    repository = gitlab_repository(fake_gitlab, gitlab_connection, n=2)
    repository_sync(repository=repository)
    approval = _webhook_approval(PullRequest.objects.get(repository=repository, number=2))
    repository_sync(repository=repository, full=True)
    approval.refresh_from_db()
    assert approval.state == "approved"


def test_github_sync_never_dismisses_a_review_the_api_does_not_list(fake_github, github_connection):
    repository = github_repository(fake_github, github_connection, n_pulls=2)
    repository_sync(repository=repository)
    approval = _webhook_approval(PullRequest.objects.get(repository=repository, number=2))
    repository_sync(repository=repository, full=True)
    approval.refresh_from_db()
    assert approval.state == "approved"
