"""The GitHub REST client (reviews.integrations.github_api) against the fake GitHub over real HTTP.

PyGithub is not mocked: it talks to tests/fakes/github.py on 127.0.0.1. No Django, no database.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator

import pytest

from reviews.integrations.github_api import (
    GitHubClient,
    GitHubError,
    GitHubNotFound,
    GitHubUnavailable,
    RateLimited,
)
from reviews.integrations.records import GitUserRecord, PayloadError
from tests.fakes.github import EPOCH, FakeGitHub

REPO = "octocat/Hello-World"
UTC = dt.UTC


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def make_client(github: FakeGitHub, **options: object) -> GitHubClient:
    return GitHubClient(github.url, github.token, seconds_between_writes=None, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(github: FakeGitHub) -> Iterator[GitHubClient]:
    with make_client(github) as client:
        yield client


def list_requests(github: FakeGitHub) -> list[str]:
    return [
        request.query.get("page", "1") for request in github.requests_to("/pulls") if request.path.endswith("/pulls")
    ]


# --- repository and listing ------------------------------------------------------------------------------------------


def test_repository_becomes_a_repository_record(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO, default_branch="main")

    repository = client.repository(REPO)

    assert repository.provider == "github"
    assert repository.external_id == "1296269"
    assert repository.full_path == REPO
    assert repository.default_branch == "main"
    assert repository.web_url == f"{github.web_url}/{REPO}"


def test_full_listing_follows_link_pagination(github: FakeGitHub, client: GitHubClient) -> None:
    github.seed_repository(REPO, n_pulls=250)

    pulls = list(client.pull_requests_since(REPO, None))

    assert [pull.number for pull in pulls] == list(range(250, 0, -1))  # most recently updated first
    assert list_requests(github) == ["1", "2", "3"]
    assert client.api_calls == 3
    first = github.requests_to("/pulls")[0]
    assert first.query == {"state": "all", "sort": "updated", "direction": "desc", "per_page": "100"}
    assert "If-None-Match" not in first.headers


def test_listed_pull_requests_carry_state_but_not_size(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_pull(REPO, number=1, state="merged", labels=["bug"], requested_reviewers=[])
    github.add_pull(REPO, number=2, state="closed")
    github.add_pull(REPO, number=3, state="open", draft=True, requested_reviewers=["alice"])

    pulls = {pull.number: pull for pull in client.pull_requests_since(REPO, None)}

    assert pulls[1].state == "merged"  # list items have merged_at, not `merged`
    assert pulls[1].labels == ("bug",)
    assert pulls[2].state == "closed"
    assert pulls[3].state == "open"
    assert pulls[3].draft is True
    assert [reviewer.login for reviewer in pulls[3].requested_reviewers or ()] == ["alice"]
    assert pulls[3].additions is None  # the list does not carry the figures: keep what is stored


def test_listing_stops_at_the_watermark(github: FakeGitHub, client: GitHubClient) -> None:
    github.seed_repository(REPO, n_pulls=250)
    watermark = next(p for p in client.pull_requests_since(REPO, None) if p.number == 240).updated_at
    github.clear_log()

    pulls = list(client.pull_requests_since(REPO, watermark))

    assert [pull.number for pull in pulls] == list(range(250, 240, -1))
    assert list_requests(github) == ["1"]


def test_listing_stops_at_the_watermark_on_a_later_page(github: FakeGitHub) -> None:
    github.seed_repository(REPO, n_pulls=250)
    client = make_client(github, per_page=50)
    watermark = EPOCH + dt.timedelta(minutes=10 * 139 + 5)  # pull request 140's updated_at

    pulls = list(client.pull_requests_since(REPO, watermark))

    assert [pull.number for pull in pulls] == list(range(250, 140, -1))
    assert list_requests(github) == ["1", "2", "3"]


def test_resync_of_unchanged_repository_costs_one_uncounted_304(github: FakeGitHub, client: GitHubClient) -> None:
    github.seed_repository(REPO, n_pulls=250)
    pulls = list(client.pull_requests_since(REPO, None))
    watermark = max(pull.updated_at for pull in pulls)
    remaining = github.rate_remaining
    resync = make_client(github, etags=dict(client.etags))

    again = list(resync.pull_requests_since(REPO, watermark))

    assert again == []
    assert resync.api_calls == 1
    assert resync.api_calls_rate_limited == 0
    last = github.requests[-1]
    assert last.status == 304
    assert last.headers["If-None-Match"] == client.etags[client.pulls_etag_key(REPO)]
    assert github.rate_remaining == remaining


def test_changed_pull_request_is_listed_on_resync(github: FakeGitHub, client: GitHubClient) -> None:
    github.seed_repository(REPO, n_pulls=30)
    watermark = max(pull.updated_at for pull in client.pull_requests_since(REPO, None))
    old_etag = client.etags[client.pulls_etag_key(REPO)]
    github.touch_pull(REPO, 7)

    pulls = list(client.pull_requests_since(REPO, watermark))

    assert [pull.number for pull in pulls] == [7]
    assert client.etags[client.pulls_etag_key(REPO)] != old_etag
    assert github.requests[-1].status == 200


def test_etag_is_not_kept_when_the_listing_is_abandoned(github: FakeGitHub, client: GitHubClient) -> None:
    github.seed_repository(REPO, n_pulls=30)

    for _ in client.pull_requests_since(REPO, None):
        break  # e.g. the caller failed while storing the first pull request

    assert client.etags == {}


def test_full_listing_is_never_conditional(github: FakeGitHub, client: GitHubClient) -> None:
    github.seed_repository(REPO, n_pulls=3)
    list(client.pull_requests_since(REPO, None))

    pulls = list(client.pull_requests_since(REPO, None))

    assert len(pulls) == 3
    assert "If-None-Match" not in github.requests[-1].headers


def test_watermark_must_be_timezone_aware(client: GitHubClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(client.pull_requests_since(REPO, dt.datetime(2024, 1, 1)))  # noqa: DTZ001


def test_malformed_api_answer_raises_payload_error_naming_the_item(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_pull(REPO, number=1)
    github.update_pull(REPO, 1, title=None)

    with pytest.raises(PayloadError, match=r"^pulls\[0\]\.title: expected string, got null$"):
        list(client.pull_requests_since(REPO, None))


# --- details -------------------------------------------------------------------------------------------------------


def test_pull_request_details_gather_everything_in_six_calls(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_pull(REPO, number=5, author="alice", title="Add payments retry", labels=["payments"])
    github.add_commit(REPO, 5, message="Retry payments\n\nCo-authored-by: Bob <Bob@Example.com>", author_login="alice")
    github.add_commit(REPO, 5, message="Typo", author_login=None, author_name="Anon", author_email="anon@example.com")
    github.add_file(REPO, 5, "payments/retry.py", additions=40, deletions=2, status="added")
    github.add_file(
        REPO, 5, "payments/new.py", additions=1, deletions=1, status="renamed", previous_filename="p/old.py"
    )
    first = github.add_review(REPO, 5, reviewer="bob", state="CHANGES_REQUESTED", body="Needs a test.")
    github.add_review_comment(
        REPO, 5, user="bob", body="Test this branch.", path="payments/retry.py", review_id=first["id"]
    )
    github.add_review(REPO, 5, reviewer="carol", state="APPROVED")
    github.add_issue_comment(REPO, 5, user="github-actions[bot]", body="Coverage 91%.")

    details = client.pull_request_details(REPO, 5)

    assert client.api_calls == 6
    pull = details.pull_request
    assert (pull.number, pull.title, pull.state) == (5, "Add payments retry", "open")
    assert pull.author is not None and pull.author.login == "alice"
    assert (pull.additions, pull.deletions, pull.changed_files) == (41, 3, 2)
    assert pull.labels == ("payments",)
    assert pull.head_sha == details.commits[-1].sha

    assert [(review.reviewer.login, review.state, review.comment_count) for review in details.reviews] == [
        ("bob", "changes_requested", 1),
        ("carol", "approved", 0),
    ]
    assert details.reviews[0].body == "Needs a test."
    assert details.reviews[0].commit_sha == pull.head_sha

    diff, conversation = details.comments
    assert (diff.kind, diff.path, diff.review_external_id) == ("diff", "payments/retry.py", str(first["id"]))
    assert diff.author.is_bot is False
    assert (conversation.kind, conversation.body) == ("conversation", "Coverage 91%.")
    assert conversation.author.is_bot is True

    paired, anonymous = details.commits
    assert paired.co_authors == (GitUserRecord(name="Bob", email="bob@example.com"),)
    assert paired.author_account is not None and paired.author_account.login == "alice"
    assert paired.authored_at.tzinfo == UTC
    assert anonymous.author == GitUserRecord(name="Anon", email="anon@example.com")
    assert anonymous.author_account is None
    assert anonymous.parents == (paired.sha,)

    assert [(f.path, f.status, f.additions, f.deletions, f.previous_path) for f in details.files] == [
        ("payments/retry.py", "added", 40, 2, ""),
        ("payments/new.py", "renamed", 1, 1, "p/old.py"),
    ]


def test_details_skip_lists_the_pull_request_counts_as_empty(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_pull(REPO, number=1)
    github.add_commit(REPO, 1)

    details = client.pull_request_details(REPO, 1)

    assert details.comments == [] and details.files == [] and details.reviews == []
    assert [request.path.rsplit("/", 1)[-1] for request in github.requests] == ["1", "reviews", "commits"]
    assert client.api_calls == 3


def test_pending_reviews_are_not_reviews(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_pull(REPO, number=1)
    github.add_review(REPO, 1, reviewer=github.login, state="PENDING")
    github.add_review(REPO, 1, reviewer="bob", state="COMMENTED")

    details = client.pull_request_details(REPO, 1)

    assert [review.reviewer.login for review in details.reviews] == ["bob"]


def test_details_follow_pagination_of_long_lists(github: FakeGitHub) -> None:
    github.add_pull(REPO, number=1)
    for index in range(5):
        github.add_file(REPO, 1, f"file_{index}.py")
    client = make_client(github, per_page=2)

    details = client.pull_request_details(REPO, 1)

    assert [changed.path for changed in details.files] == [f"file_{index}.py" for index in range(5)]
    assert [request.query.get("page", "1") for request in github.requests_to("/files")] == ["1", "2", "3"]


def test_merged_pull_request_details(github: FakeGitHub, client: GitHubClient) -> None:
    merged_at = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    github.add_pull(REPO, number=9, state="merged", merged_at=merged_at, merged_by="carol")

    pull = client.pull_request_details(REPO, 9).pull_request

    assert pull.state == "merged"
    assert pull.merged_at == merged_at
    assert pull.merged_by is not None and pull.merged_by.login == "carol"


def test_unknown_pull_request_raises_not_found(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)

    with pytest.raises(GitHubNotFound) as raised:
        client.pull_request_details(REPO, 404)

    assert raised.value.status == 404


# --- compare and statuses ------------------------------------------------------------------------------------------


def test_compare_returns_the_commits_between_two_shas_oldest_first(github: FakeGitHub) -> None:
    github.add_repo(REPO)
    base = github.add_commit(REPO, message="deployed before")["sha"]
    shipped = [github.add_commit(REPO, message=f"change {index}")["sha"] for index in range(5)]
    client = make_client(github, per_page=2)

    compared = client.compare(REPO, base, shipped[-1])

    assert [commit.sha for commit in compared.commits] == shipped
    assert len(github.requests_to("/compare/")) == 3  # five commits, two a page
    assert compared.etag and not compared.unchanged


def test_compare_asked_again_with_its_etag_is_a_304_that_costs_no_quota(github: FakeGitHub) -> None:
    github.add_repo(REPO)
    base = github.add_commit(REPO, message="deployed before")["sha"]
    head = github.add_commit(REPO, message="shipped")["sha"]
    client = make_client(github)
    first = client.compare(REPO, base, head)

    again = client.compare(REPO, base, head, etag=first.etag)

    assert again.unchanged and again.commits == ()
    assert again.etag == first.etag
    assert github.requests_to("/compare/")[-1].headers.get("If-None-Match") == first.etag
    assert client.api_calls == 2 and client.api_calls_rate_limited == 1


def test_compare_with_unknown_sha_raises_not_found(github: FakeGitHub, client: GitHubClient) -> None:
    head = github.add_commit(REPO)["sha"]

    with pytest.raises(GitHubNotFound):
        client.compare(REPO, "0" * 40, head)


def test_post_status_is_recorded_by_github(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)
    sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"

    status = client.post_status(
        REPO, sha, state="pending", description="1 of 2 approvals", target_url="https://tandem.example.com/pr/1"
    )

    assert github.statuses_posted == [
        {
            "repo": REPO,
            "sha": sha,
            "state": "pending",
            "description": "1 of 2 approvals",
            "target_url": "https://tandem.example.com/pr/1",
            "context": "tandem/review-policy",
        }
    ]
    assert (status.sha, status.state, status.context, status.source) == (
        sha,
        "pending",
        "tandem/review-policy",
        "status",
    )
    assert status.updated_at.tzinfo == UTC
    assert github.requests[-1].method == "POST"


def test_post_status_shortens_long_descriptions(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)

    client.post_status(REPO, "abc123", state="failure", description="x" * 300, target_url="")

    posted = github.statuses_posted[-1]
    assert len(posted["description"]) == 140
    assert "target_url" not in posted


def test_post_status_rejects_unknown_state_without_a_request(github: FakeGitHub, client: GitHubClient) -> None:
    with pytest.raises(ValueError, match="state must be one of"):
        client.post_status(REPO, "abc123", state="green", description="", target_url="")  # type: ignore[arg-type]

    assert github.requests == []


# --- rate limits and failures -----------------------------------------------------------------------------------


def test_rate_limit_headers_are_read(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)

    client.repository(REPO)
    client.repository(REPO)

    assert client.rate_limit_remaining == 4998
    assert client.rate_limit_reset == dt.datetime.fromtimestamp(github.rate_reset, tz=UTC)


def test_secondary_rate_limit_403_with_retry_after_raises_rate_limited(
    github: FakeGitHub, client: GitHubClient
) -> None:
    github.seed_repository(REPO, n_pulls=3)
    github.fail_next("/pulls", status=403, retry_after=30)

    with pytest.raises(RateLimited) as raised:
        list(client.pull_requests_since(REPO, None))

    assert raised.value.retry_after_seconds == 30
    assert raised.value.status == 403
    assert client.api_calls == 1


def test_429_with_retry_after_raises_rate_limited(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_pull(REPO, number=1)
    github.fail_next("/pulls/1/reviews", status=429, retry_after=7)

    with pytest.raises(RateLimited) as raised:
        client.pull_request_details(REPO, 1)

    assert raised.value.retry_after_seconds == 7
    assert raised.value.status == 429


def test_secondary_limit_without_retry_after_waits_a_minute(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)
    github.fail_next("/repos/", status=429)

    with pytest.raises(RateLimited) as raised:
        client.repository(REPO)

    assert raised.value.retry_after_seconds == 60


def test_exhausted_primary_limit_waits_until_the_reset(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)
    github.fail_next("/repos/", status=403)

    with pytest.raises(RateLimited) as raised:
        client.repository(REPO)

    expected = github.rate_reset - time.time()
    assert expected - 5 <= raised.value.retry_after_seconds <= expected + 1
    assert client.rate_limit_remaining == 0


def test_fake_enforces_its_primary_limit(github: FakeGitHub) -> None:
    limited = FakeGitHub(rate_limit=2).start()
    try:
        limited.add_repo(REPO)
        client = make_client(limited)
        client.repository(REPO)
        client.repository(REPO)

        with pytest.raises(RateLimited):
            client.repository(REPO)
    finally:
        limited.stop()


def test_forbidden_without_rate_limit_is_a_plain_error(github: FakeGitHub, client: GitHubClient) -> None:
    github.add_repo(REPO)
    github.fail_next("/repos/", status=422)

    with pytest.raises(GitHubError) as raised:
        client.repository(REPO)

    assert not isinstance(raised.value, RateLimited | GitHubUnavailable)
    assert raised.value.status == 422


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_raise_github_unavailable_without_retrying(
    github: FakeGitHub, client: GitHubClient, status: int
) -> None:
    github.add_pull(REPO, number=1)
    github.fail_next("/pulls/1", status=status)

    with pytest.raises(GitHubUnavailable) as raised:
        client.pull_request_details(REPO, 1)

    assert raised.value.status == status
    assert len(github.requests) == 1  # PyGithub's own retry is off: Tandem decides


def test_timeout_raises_github_unavailable(github: FakeGitHub) -> None:
    github.add_repo(REPO)
    github.delay_next("/repos/", 2.0)
    client = make_client(github, timeout=1)

    with pytest.raises(GitHubUnavailable):
        client.repository(REPO)


def test_refused_connection_raises_github_unavailable() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = GitHubClient(f"http://127.0.0.1:{port}", "token")

    with pytest.raises(GitHubUnavailable):
        client.repository(REPO)


def test_bad_token_is_rejected(github: FakeGitHub) -> None:
    github.add_repo(REPO)
    client = GitHubClient(github.url, "not-the-token")

    with pytest.raises(GitHubError) as raised:
        client.repository(REPO)

    assert raised.value.status == 401
    assert "Bad credentials" in str(raised.value)


def test_github_enterprise_base_url_with_api_prefix() -> None:
    with FakeGitHub(prefix="/api/v3") as enterprise:
        enterprise.seed_repository(REPO, n_pulls=120)
        client = make_client(enterprise)

        pulls = list(client.pull_requests_since(REPO, None))

        assert len(pulls) == 120
        assert enterprise.url.endswith("/api/v3")
        assert [request.status for request in enterprise.requests] == [200, 200]


def test_full_path_must_be_owner_and_name(client: GitHubClient) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        client.repository("just-a-name")


# --- the fake itself ---------------------------------------------------------------------------------------------


def test_fake_seeds_a_thousand_pull_requests() -> None:
    # How fast it seeds is the benchmarks' business (bench/), never a timed test on a noisy machine.
    fake = FakeGitHub()
    try:
        numbers = fake.seed_repository(REPO, n_pulls=1000)
    finally:
        fake.stop()

    assert len(numbers) == 1000
    assert len(set(numbers)) == 1000
