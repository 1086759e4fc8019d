"""Sync through GraphQL against the fakes' GraphQL endpoints: the same stored records as REST, for far fewer calls.

Call counts are asserted (never timings), so that the waste issue 15 measured cannot creep back: an incremental
sync of 10 changed pull requests, an unchanged GitLab re-sync, a backfill.
"""

from __future__ import annotations

from typing import Any

import pytest

from reviews.integrations.vcs import VcsError, VcsRateLimited
from reviews.models import (
    ChangedFile,
    Comment,
    Commit,
    Connection,
    Identity,
    PullRequest,
    Repository,
    Review,
    SyncRun,
)
from reviews.services.sync import diff_fingerprint, repository_for_sync, repository_sync, vcs_client_for

pytestmark = pytest.mark.django_db

REPO = "acme/big"


def _repository(provider: str, fake: Any, name: str, *, host: str = "127.0.0.1") -> Repository:
    """A repository of the fake, through a connection of its own (a second one names the fake's host otherwise)."""
    base_url = fake.url.replace("127.0.0.1", host)
    connection = Connection.objects.create(provider=provider, name=name, base_url=base_url, api_token=fake.token)
    return repository_for_sync(provider=provider, full_path=REPO, connection=connection)


def _who(person_id: int | None) -> tuple[tuple[str, str], ...]:
    """A person by their logins (people and logins belong to a connection; e-mail identities are shared)."""
    identities = sorted(Identity.objects.filter(person_id=person_id).values_list("kind", "value"))
    return tuple(pair for pair in identities if pair[0] != "email") or tuple(identities)


def _identity(identity_id: int | None) -> tuple[str, str] | None:
    return None if identity_id is None else Identity.objects.values_list("kind", "value").get(pk=identity_id)


def stored(repository: Repository) -> dict[str, Any]:
    """Everything a sync stored for a repository, people named by their logins: what two syncs must agree on."""
    pulls = PullRequest.objects.filter(repository=repository)
    pull_rows = []
    for pull, row in zip(pulls.order_by("pk"), pulls.order_by("pk").values(), strict=True):
        # Not facts: the row's id, and when an evaluation and the stored figures became due (the moment each sync ran).
        bookkeeping = ("id", "repository_id", "evaluation_owed_since", "figures_inputs_changed_at")
        row = {k: v for k, v in row.items() if k not in bookkeeping}
        row["author_id"], row["merged_by_id"] = _who(row["author_id"]), _who(row["merged_by_id"])
        row["requested_reviewers"] = sorted(_who(pk) for pk in pull.requested_reviewers.values_list("pk", flat=True))
        pull_rows.append(row)
    pull_rows.sort(key=lambda row: row["number"])
    people = {  # who is linked, by the identity rows both syncs share
        number: sorted(
            (r.external_id, _who(r.reviewer_id), r.state, r.submitted_at, r.commit_sha, r.body, r.comment_count)
            for r in Review.objects.filter(pull_request__repository=repository, pull_request__number=number)
        )
        for number in pulls.values_list("number", flat=True)
    }
    comments = sorted(
        (c.pull_request.number, c.external_id, _who(c.author_id), c.body, c.created_at, c.kind, c.is_system, c.path)
        for c in Comment.objects.filter(pull_request__repository=repository).select_related("pull_request")
    )
    files = sorted(
        (f.pull_request.number, f.path, f.previous_path, f.status, f.additions, f.deletions)
        for f in ChangedFile.objects.filter(pull_request__repository=repository).select_related("pull_request")
    )
    commits = sorted(
        (
            c.sha,
            c.message,
            _who(c.author_id),
            _identity(c.author_identity_id),
            _identity(c.committer_identity_id),
            c.authored_at,
            c.committed_at,
            tuple(c.parents),
            tuple(sorted(c.co_authors.values_list("kind", "value"))),
            tuple(sorted(c.pull_requests.values_list("number", flat=True))),
        )
        for c in Commit.objects.filter(repository=repository)
    )
    return {"pulls": pull_rows, "reviews": people, "comments": comments, "files": files, "commits": commits}


def _without_sync_marks(dump: dict[str, Any]) -> dict[str, Any]:
    for row in dump["pulls"]:
        for key in ("created_at", "first_seen_at", "facts_retry_at"):
            row.pop(key, None)
    return dump


# --- the same records ---------------------------------------------------------------------------------------


def _github_with_corners(fake: Any) -> None:
    fake.seed_repository(REPO, n_pulls=30)  # a bot's pull requests (every 25th), drafts, co-authors
    fake.add_file(REPO, 4, "src/old_name.py", status="renamed", previous_filename="src/older_name.py")  # merged
    for index in range(12):  # more reviews than a GraphQL page holds: read by REST
        fake.add_review(REPO, 5, reviewer=f"reviewer{index}", state="COMMENTED", body=f"note {index}")
    fake.add_commit(REPO, 6, message="An anonymous one", author_login=None, author_email="someone@example.com")


@pytest.mark.slow(25)
def test_github_graphql_backfill_stores_exactly_what_rest_stores(fake_github):
    _github_with_corners(fake_github)
    by_rest = _repository("github", fake_github, "by REST")
    by_graphql = _repository("github", fake_github, "by GraphQL", host="localhost")
    assert repository_sync(repository=by_rest, graphql=False).pull_requests_synced == 30
    fake_github.clear_log()
    assert repository_sync(repository=by_graphql, graphql=True).pull_requests_synced == 30
    assert fake_github.graphql_requests()
    assert _without_fingerprints(stored(by_graphql)) == _without_fingerprints(stored(by_rest))
    _fingerprints_agree(by_rest, by_graphql)


def _without_fingerprints(dump: dict[str, Any]) -> dict[str, Any]:
    """The one field GraphQL now fills lazily: an open head's fingerprint (REST: `diff_ids` at once; GraphQL:
    `diff_ids_owed`, fetched when a verdict needs it). `_fingerprints_agree` compares them."""
    for row in _without_sync_marks(dump)["pulls"]:
        row.pop("diff_ids")
        row.pop("diff_ids_owed")
    return dump


def _fingerprints_agree(by_rest: Repository, by_graphql: Repository) -> None:
    """Each open head's fingerprint is taken by REST at once and owed by GraphQL, and what the owed one's fetch
    (one compare call, against the base GraphQL gave) finds is the fingerprint REST took. Closed and merged pull
    requests have none by either path (no later push needs one)."""
    rest = dict(PullRequest.objects.filter(repository=by_rest).values_list("number", "diff_ids"))
    assert all(
        not ids
        for ids in PullRequest.objects.filter(repository=by_rest)
        .exclude(state="open")
        .values_list("diff_ids", flat=True)
    )
    lazy = PullRequest.objects.filter(repository=by_graphql)
    assert not lazy.exclude(diff_ids={}).exists()
    assert not lazy.exclude(state="open").exclude(diff_ids_owed={}).exists()
    client = vcs_client_for(by_graphql)
    opened = list(lazy.filter(state="open"))
    assert opened
    for pull in opened:
        owed = pull.diff_ids_owed[pull.head_sha]
        files = client.compare_files(REPO, owed["base"], pull.head_sha)
        assert len(files) == owed["files"]
        if rest[pull.number]:
            assert rest[pull.number] == {pull.head_sha: diff_fingerprint(files)}
    client.close()


@pytest.mark.slow(20)
def test_github_graphql_incremental_stores_exactly_what_rest_stores(fake_github):
    fake_github.seed_repository(REPO, n_pulls=20)
    by_rest = _repository("github", fake_github, "by REST")
    by_graphql = _repository("github", fake_github, "by GraphQL", host="localhost")
    repository_sync(repository=by_rest, graphql=False)
    repository_sync(repository=by_graphql, graphql=True)
    for number in (3, 8, 17):
        fake_github.add_review(REPO, number, reviewer="zoe", state="APPROVED")
        fake_github.touch_pull(REPO, number)
    by_rest.refresh_from_db()
    by_graphql.refresh_from_db()
    assert repository_sync(repository=by_rest, graphql=False).pull_requests_synced == 3
    assert repository_sync(repository=by_graphql, graphql=True).pull_requests_synced == 3
    assert _without_fingerprints(stored(by_graphql)) == _without_fingerprints(stored(by_rest))
    _fingerprints_agree(by_rest, by_graphql)


@pytest.mark.slow(30)
def test_gitlab_graphql_stores_exactly_what_rest_stores(fake_gitlab):
    fake_gitlab.seed_project(REPO, n_merge_requests=30)
    by_rest = _repository("gitlab", fake_gitlab, "by REST")
    by_graphql = _repository("gitlab", fake_gitlab, "by GraphQL", host="localhost")
    assert repository_sync(repository=by_rest, graphql=False).pull_requests_synced == 30
    assert repository_sync(repository=by_graphql, graphql=True).pull_requests_synced == 30
    assert fake_gitlab.graphql_requests()
    assert _without_sync_marks(stored(by_graphql)) == _without_sync_marks(stored(by_rest))
    for iid in (2, 9):
        fake_gitlab.add_approval(REPO, iid, user="zoe")
        fake_gitlab.touch_merge_request(REPO, iid)
    by_rest.refresh_from_db()
    by_graphql.refresh_from_db()
    assert repository_sync(repository=by_rest, graphql=False).pull_requests_synced == 2
    assert repository_sync(repository=by_graphql, graphql=True).pull_requests_synced == 2
    assert _without_sync_marks(stored(by_graphql)) == _without_sync_marks(stored(by_rest))


# --- calls that must not creep back ---------------------------------------------------------------------------

# More pull requests than a list page (100) holds, and than a GraphQL page (GitHub 100, GitLab 50) with a partial
# last one: what the counts below depend on, at about half the cost of 250 (each one is stored, and synced).
BEYOND_A_LIST_PAGE = 140


@pytest.mark.slow(35)
def test_github_incremental_sync_of_10_changed_pull_requests_costs_at_most_31_calls(fake_github):
    fake_github.seed_repository(REPO, n_pulls=BEYOND_A_LIST_PAGE)
    repository = _repository("github", fake_github, "GitHub")
    repository_sync(repository=repository)
    repository.refresh_from_db()
    for number in range(51, 61):  # neither the newest nor the oldest
        fake_github.touch_pull(REPO, number)
    fake_github.clear_log()
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 10
    assert run.api_calls == len(fake_github.requests) <= 31
    # One list page and one GraphQL call for the 10; no call for the open ones' patches (their fingerprints owed).
    assert len(fake_github.graphql_requests()) == 1
    assert run.api_calls == 2
    assert not fake_github.requests_to("/pulls/51/reviews")  # nothing the GraphQL call gave is asked again


@pytest.mark.slow(30)
def test_gitlab_incremental_sync_of_10_changed_merge_requests_costs_at_most_31_calls(fake_gitlab):
    fake_gitlab.seed_project(REPO, n_merge_requests=BEYOND_A_LIST_PAGE)
    repository = _repository("gitlab", fake_gitlab, "GitLab")
    repository_sync(repository=repository)
    repository.refresh_from_db()
    for iid in range(51, 61):  # neither the newest nor the oldest
        fake_gitlab.touch_merge_request(REPO, iid)
    fake_gitlab.reset_log()
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 10
    assert run.api_calls == len(fake_gitlab.requests) <= 31
    # One list page, one GraphQL call for the 10, and each one's commits and diffs (GraphQL lacks them).
    assert len(fake_gitlab.graphql_requests()) == 1
    assert run.api_calls == 22
    assert not fake_gitlab.requests_to("/merge_requests/51/notes")
    assert not [r for r in fake_gitlab.requests if r.decoded_path.endswith("/merge_requests/51")]


def test_gitlab_unchanged_resync_costs_one_call(fake_gitlab):
    fake_gitlab.seed_project(REPO, n_merge_requests=30)
    repository = _repository("gitlab", fake_gitlab, "GitLab")
    repository_sync(repository=repository)
    repository.refresh_from_db()
    fake_gitlab.reset_log()
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 0
    assert run.api_calls == 1
    assert [r.decoded_path for r in fake_gitlab.requests] == [f"/api/v4/projects/{REPO}/merge_requests"]


@pytest.mark.slow(35)
def test_github_backfill_of_140_pull_requests_takes_2_graphql_calls(fake_github):
    fake_github.seed_repository(REPO, n_pulls=BEYOND_A_LIST_PAGE)
    repository = _repository("github", fake_github, "GitHub")
    fake_github.clear_log()
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 140
    assert len(fake_github.graphql_requests()) == 2  # pages of 100
    # No REST call per pull request: an open one's fingerprint is owed, fetched when a verdict needs it.
    assert run.api_calls == 2
    assert [r.path for r in fake_github.requests if r.path != "/graphql"] == []
    open_ones = PullRequest.objects.filter(repository=repository, state="open")
    assert all(set(pull.diff_ids_owed) == {pull.head_sha} for pull in open_ones)
    assert fake_github.graphql_points_used <= 2 * 50


@pytest.mark.slow(35)
def test_gitlab_backfill_of_140_merge_requests_takes_3_graphql_calls(fake_gitlab):
    fake_gitlab.seed_project(REPO, n_merge_requests=BEYOND_A_LIST_PAGE)
    repository = _repository("gitlab", fake_gitlab, "GitLab")
    fake_gitlab.reset_log()
    run = repository_sync(repository=repository)
    assert run.pull_requests_synced == 140
    assert len(fake_gitlab.graphql_requests()) == 3  # 50 merge requests to a call
    # 2 list pages, then only each one's commits and diffs by REST.
    assert run.api_calls == 2 + 3 + 2 * 140


# --- limits and failures --------------------------------------------------------------------------------------


def test_graphql_secondary_rate_limit_is_a_wait(fake_github):
    fake_github.seed_repository(REPO, n_pulls=5)
    repository = _repository("github", fake_github, "GitHub")
    fake_github.fail_next("/graphql", status=403, retry_after=7)
    with pytest.raises(VcsRateLimited) as raised:
        repository_sync(repository=repository)
    assert raised.value.retry_after == 7
    assert SyncRun.objects.get().status == SyncRun.Status.RATE_LIMITED


def test_graphql_point_budget_spent_is_a_wait_until_its_reset(fake_github):
    fake_github.seed_repository(REPO, n_pulls=5)
    repository = _repository("github", fake_github, "GitHub")
    fake_github.graphql_remaining = 0
    with pytest.raises(VcsRateLimited, match="GraphQL point budget"):
        repository_sync(repository=repository)
    assert not PullRequest.objects.filter(repository=repository).exists()


def test_sync_pauses_before_the_graphql_point_budget_runs_out(fake_github, settings):
    fake_github.seed_repository(REPO, n_pulls=12)
    repository = _repository("github", fake_github, "GitHub")
    settings.SYNC_GRAPHQL_POINTS_RESERVE = fake_github.graphql_remaining - 1  # one page leaves less than this
    with pytest.raises(VcsRateLimited, match="GraphQL points left"):
        repository_sync(repository=repository)
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.RATE_LIMITED
    assert run.pull_requests_synced == 1
    repository.refresh_from_db()
    assert repository.synced_until is None  # resumed from the start, passing over what is stored


def test_a_failed_graphql_call_stores_nothing_and_keeps_the_watermark(fake_github):
    fake_github.seed_repository(REPO, n_pulls=8)
    repository = _repository("github", fake_github, "GitHub")
    repository_sync(repository=repository)
    repository.refresh_from_db()
    watermark = repository.synced_until
    fake_github.add_commit(REPO, 8, message="A push the webhook missed")
    fake_github.touch_pull(REPO, 8)
    fake_github.fail_next("/graphql", status=502)
    with pytest.raises(VcsError):
        repository_sync(repository=repository)
    repository.refresh_from_db()
    assert repository.synced_until == watermark
    pull = PullRequest.objects.get(repository=repository, number=8)
    # The new head is not known, so its facts are not: the verdict keeps waiting (fail closed).
    assert pull.head_sha == pull.details_head_sha != fake_github._pull(REPO, 8).head_sha
