"""The GitLab sync client against a fake GitLab speaking HTTP on 127.0.0.1 (no Django, no database)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator

import pytest
import requests

from reviews.integrations.gitlab_api import (
    GitLabClient,
    GitLabError,
    GitLabUnavailable,
    RateLimited,
    count_diff_lines,
)
from reviews.integrations.records import StatusState
from tests.fakes.gitlab import FakeGitLab

PATH = "acme/payments/api"  # a subgroup: the project path is URL-encoded as one segment
T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        server.add_project(PATH, project_id=4242, default_branch="trunk")
        yield server


@pytest.fixture
def client(fake: FakeGitLab) -> GitLabClient:
    return GitLabClient(fake.url, fake.token)


def seed_merge_requests(fake: FakeGitLab, count: int) -> None:
    for iid in range(1, count + 1):
        fake.add_merge_request(PATH, iid=iid, title=f"Change {iid}", created_at=minutes(iid), updated_at=minutes(iid))


def list_requests(fake: FakeGitLab) -> list[dict[str, list[str]]]:
    return [r.query for r in fake.requests if r.method == "GET" and r.decoded_path.endswith(f"{PATH}/merge_requests")]


# --- project and listing ----------------------------------------------------------------------------------------


def test_project_is_read_by_its_url_encoded_path(fake: FakeGitLab, client: GitLabClient) -> None:
    repository = client.project(PATH)

    assert (repository.provider, repository.external_id, repository.full_path) == ("gitlab", "4242", PATH)
    assert repository.default_branch == "trunk"
    assert repository.web_url == f"https://gitlab.example.com/{PATH}"
    assert fake.requests[-1].path == "/api/v4/projects/acme%2Fpayments%2Fapi"


def test_listing_walks_every_page_newest_first(fake: FakeGitLab) -> None:
    seed_merge_requests(fake, 45)
    client = GitLabClient(fake.url, fake.token, per_page=20)

    numbers = [pr.number for pr in client.merge_requests_since(PATH, None)]

    assert numbers == list(range(45, 0, -1))
    queries = list_requests(fake)
    assert len(queries) == 3
    first = queries[0]
    assert first["state"] == ["all"]
    assert first["order_by"] == ["updated_at"]
    assert first["sort"] == ["desc"]
    assert first["per_page"] == ["20"]
    assert first["pagination"] == ["keyset"]
    assert "updated_after" not in first
    assert all("cursor" in query for query in queries[1:])


def test_listing_falls_back_to_offset_pagination_when_keyset_is_refused() -> None:
    with FakeGitLab(keyset_merge_requests=False) as fake:  # gitlab.com: 405 for keyset on merge requests
        fake.add_project(PATH)
        seed_merge_requests(fake, 45)
        client = GitLabClient(fake.url, fake.token, per_page=20)

        numbers = [pr.number for pr in client.merge_requests_since(PATH, None)]
        again = [pr.number for pr in client.merge_requests_since(PATH, None)]

        assert numbers == again == list(range(45, 0, -1))
        queries = list_requests(fake)
        assert [q.get("pagination", [""])[0] for q in queries] == ["keyset", "", "", "", "", "", ""]
        assert [q.get("page", [""])[0] for q in queries[1:4]] == ["", "2", "3"]


def test_offset_pagination_can_be_chosen() -> None:
    with FakeGitLab() as fake:
        fake.add_project(PATH)
        seed_merge_requests(fake, 5)
        client = GitLabClient(fake.url, fake.token, per_page=2, pagination="offset")

        assert len(list(client.merge_requests_since(PATH, None))) == 5
        assert [q.get("page", ["1"])[0] for q in list_requests(fake)] == ["1", "2", "3"]
        assert all("pagination" not in q for q in list_requests(fake))


def test_keyset_pagination_refused_is_an_error_when_keyset_was_required() -> None:
    with FakeGitLab(keyset_merge_requests=False) as fake:
        fake.add_project(PATH)
        client = GitLabClient(fake.url, fake.token, pagination="keyset")

        with pytest.raises(GitLabError) as raised:
            list(client.merge_requests_since(PATH, None))

        assert raised.value.status_code == 405


def test_listing_is_lazy(fake: FakeGitLab) -> None:
    seed_merge_requests(fake, 45)
    client = GitLabClient(fake.url, fake.token, per_page=20)

    first = next(client.merge_requests_since(PATH, None))

    assert first.number == 45
    assert len(list_requests(fake)) == 1


def test_listed_merge_request_is_read_field_by_field(fake: FakeGitLab, client: GitLabClient) -> None:
    fake.add_merge_request(
        PATH,
        iid=7,
        title="Draft: Split payments",
        description="Body",
        author="alice",
        draft=True,
        labels=("backend", "risky"),
        reviewers=("bob",),
        source_branch="split",
        created_at=minutes(1),
        updated_at=minutes(5),
        sha="a" * 40,
    )
    fake.add_merge_request(
        PATH,
        iid=8,
        title="Merged one",
        author="carol",
        state="merged",
        merged_by="dave",
        merged_at=minutes(9),
        merge_commit_sha="b" * 40,
        created_at=minutes(2),
        updated_at=minutes(9),
    )

    merged, draft = list(client.merge_requests_since(PATH, None))

    assert draft.number == 7 and draft.state == "open" and draft.draft is True
    assert draft.title == "Draft: Split payments" and draft.body == "Body"
    assert draft.labels == ("backend", "risky")
    assert draft.requested_reviewers is not None and [u.login for u in draft.requested_reviewers] == ["bob"]
    assert draft.author is not None and draft.author.login == "alice" and draft.author.external_id != ""
    assert (draft.base_ref, draft.head_ref, draft.head_sha) == ("trunk", "split", "a" * 40)
    assert (draft.created_at, draft.updated_at) == (minutes(1), minutes(5))
    assert draft.web_url == f"https://gitlab.example.com/{PATH}/-/merge_requests/7"
    assert draft.additions is None and draft.deletions is None and draft.changed_files is None
    assert draft.merged_by is None and draft.merged_at is None
    assert draft.repository.external_id == "4242"
    assert merged.state == "merged" and merged.merged_at == minutes(9)
    assert merged.merged_by is not None and merged.merged_by.login == "dave"
    assert merged.merge_commit_sha == "b" * 40


def test_listing_since_a_watermark_returns_only_what_changed(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_merge_requests(fake, 30)
    watermark = max(pr.updated_at for pr in client.merge_requests_since(PATH, None))
    fake.touch_merge_request(PATH, 4, updated_at=minutes(100))
    fake.touch_merge_request(PATH, 11, updated_at=minutes(101), title="Renamed")

    changed = list(client.merge_requests_since(PATH, watermark))

    # GitLab's updated_after is "on or after": the merge request at the watermark comes back, unchanged.
    assert [(pr.number, pr.title) for pr in changed] == [(11, "Renamed"), (4, "Change 4"), (30, "Change 30")]
    assert list_requests(fake)[-1]["updated_after"] == ["2024-03-01T09:30:00.000000Z"]


def test_naive_watermark_is_taken_as_utc(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_merge_requests(fake, 3)

    changed = list(client.merge_requests_since(PATH, dt.datetime(2024, 3, 1, 9, 2)))

    assert [pr.number for pr in changed] == [3, 2]


# --- details ----------------------------------------------------------------------------------------------------


def seed_detailed(fake: FakeGitLab) -> None:
    fake.add_merge_request(PATH, iid=3, author="alice", created_at=minutes(0), updated_at=minutes(30))
    fake.add_commit(PATH, 3, sha="1" * 40, message="First step", authored_date=minutes(1))
    fake.add_commit(
        PATH,
        3,
        sha="2" * 40,
        authored_date=minutes(2),
        committer_name="Bob",
        committer_email="bob@example.com",
        message=(
            "Second step\n\nCo-authored-by: Bob Builder <Bob@Example.com>\nSigned-off-by: Alice <alice@example.com>"
        ),
    )
    fake.add_diff(PATH, 3, new_path="app.py", diff="@@ -1,3 +1,4 @@\n keep\n-old\n+new\n+newer\n--- not a header\n")
    fake.add_diff(
        PATH,
        3,
        new_path="docs/new.md",
        new_file=True,
        diff="--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1,2 @@\n+a\n+b\n",
    )
    fake.add_diff(PATH, 3, new_path="gone.txt", deleted_file=True, diff="@@ -1 +0,0 @@\n-bye\n")
    fake.add_diff(PATH, 3, old_path="old_name.py", new_path="new_name.py", renamed_file=True, diff="")
    fake.add_note(PATH, 3, author="bob", body="Looks fine", created_at=minutes(3))
    fake.add_note(PATH, 3, author="carol", body="Typo here", position_path="app.py", created_at=minutes(4))
    fake.add_approval(PATH, 3, user="bob", approved_at=minutes(5))


def test_details_count_additions_and_deletions_from_the_diffs(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)

    details = client.merge_request_details(PATH, 3)

    assert [(f.path, f.additions, f.deletions, f.status, f.previous_path) for f in details.files] == [
        ("app.py", 2, 2, "modified", ""),  # "--- not a header" inside a hunk is a deleted line
        ("docs/new.md", 2, 0, "added", ""),
        ("gone.txt", 0, 1, "removed", ""),
        ("new_name.py", 0, 0, "renamed", "old_name.py"),
    ]
    pr = details.pull_request
    assert (pr.additions, pr.deletions, pr.changed_files) == (4, 3, 4)
    assert pr.number == 3 and pr.author is not None and pr.author.login == "alice"


def test_details_read_commits_with_co_authors(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)

    details = client.merge_request_details(PATH, 3)

    second, first = details.commits  # GitLab lists the newest first
    assert first.sha == "1" * 40 and first.co_authors == ()
    assert second.parents == ("1" * 40,)
    assert [(c.name, c.email) for c in second.co_authors] == [("Bob Builder", "bob@example.com")]
    assert second.author.name == "Alice" and second.committer is not None and second.committer.name == "Bob"
    assert second.authored_at == minutes(2)
    assert details.pull_request.head_sha == "2" * 40


def test_details_flag_system_notes_and_diff_comments(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)

    comments = client.merge_request_details(PATH, 3).comments

    assert [(c.author.login, c.body, c.kind, c.is_system, c.path) for c in comments] == [
        ("bob", "Looks fine", "conversation", False, ""),
        ("carol", "Typo here", "diff", False, "app.py"),
        ("bob", "approved this merge request", "conversation", True, ""),
    ]
    assert comments[0].created_at == minutes(3)


def test_approvals_come_from_approval_state_with_their_time_from_the_system_note(
    fake: FakeGitLab, client: GitLabClient
) -> None:
    seed_detailed(fake)

    [review] = client.merge_request_details(PATH, 3).reviews

    assert review.reviewer.login == "bob"
    assert review.external_id == f"approval:{review.reviewer.external_id}"  # the webhook's id for the same approval
    assert review.state == "approved"
    assert review.submitted_at == minutes(5)
    assert review.commit_sha == "2" * 40
    assert fake.requests_to("/merge_requests/3/approval_state")
    assert not fake.requests_to("/merge_requests/3/approvals")


def test_approvals_fall_back_to_the_approvals_endpoint_and_remember_it() -> None:
    with FakeGitLab(approval_state=False) as fake:  # Free tier: approval_state answers 403
        fake.add_project(PATH)
        seed_detailed(fake)
        fake.add_merge_request(PATH, iid=4, updated_at=minutes(40))
        fake.add_approval(PATH, 4, user="erin", approved_at=minutes(41))
        client = GitLabClient(fake.url, fake.token)

        [first] = client.merge_request_details(PATH, 3).reviews
        [second] = client.merge_request_details(PATH, 4).reviews

        assert (first.reviewer.login, first.submitted_at) == ("bob", minutes(5))
        assert (second.reviewer.login, second.submitted_at) == ("erin", minutes(41))
        assert len(fake.requests_to("approval_state")) == 1  # asked once, then remembered
        assert len(fake.requests_to("/approvals")) == 2


def test_withdrawn_approval_is_no_longer_a_review(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)
    fake.remove_approval(PATH, 3, user="bob", at=minutes(6))

    assert client.merge_request_details(PATH, 3).reviews == []


def test_approval_given_before_a_push_is_on_the_commit_it_saw(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)  # approved at minute 5 on commit 2222…
    fake.add_commit(PATH, 3, sha="3" * 40, message="After review", authored_date=minutes(8), push_note=True)

    details = client.merge_request_details(PATH, 3)

    [review] = details.reviews
    assert details.pull_request.head_sha == "3" * 40
    assert review.commit_sha == "2" * 40


def test_the_last_push_is_the_newest_added_commits_note(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)
    assert client.merge_request_details(PATH, 3).pull_request.pushed_at is None  # no push since opening

    fake.add_commit(PATH, 3, sha="3" * 40, authored_date=minutes(8), push_note=True)
    fake.add_commit(PATH, 3, sha="4" * 40, authored_date=minutes(9), push_note=True)

    assert client.merge_request_details(PATH, 3).pull_request.pushed_at == minutes(9)


def test_a_listed_record_still_asks_whether_the_diff_is_ready(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_detailed(fake)
    [listed] = list(client.merge_requests_since(PATH, None))
    fake.reset_log()

    details = client.merge_request_details(PATH, 3, pull_request=listed)

    assert details.pull_request.additions == 4
    assert (details.files_not_ready, details.files_incomplete) == ("", "")
    paths = [r.decoded_path.rsplit("/", 1)[-1] for r in fake.requests]
    assert paths == ["3", "notes", "commits", "diffs", "approval_state"]


def test_old_gitlab_without_diffs_endpoint_uses_changes() -> None:
    with FakeGitLab(diffs_endpoint=False) as fake:
        fake.add_project(PATH)
        seed_detailed(fake)
        client = GitLabClient(fake.url, fake.token)

        details = client.merge_request_details(PATH, 3)
        client.merge_request_details(PATH, 3)

        assert (details.pull_request.additions, details.pull_request.deletions) == (4, 3)
        assert len(fake.requests_to("/diffs")) == 1  # 404 once, then /changes straight away
        assert len(fake.requests_to("/changes")) == 2


def test_many_diffs_are_read_across_pages(fake: FakeGitLab) -> None:
    fake.add_merge_request(PATH, iid=9)
    for number in range(7):
        fake.add_diff(PATH, 9, new_path=f"f{number}.py", diff="@@ -1 +1 @@\n-a\n+b\n")
    client = GitLabClient(fake.url, fake.token, per_page=3)

    details = client.merge_request_details(PATH, 9)

    assert details.pull_request.changed_files == 7
    assert len(fake.requests_to("/diffs")) == 3


def test_missing_merge_request_is_a_404_error(client: GitLabClient) -> None:
    with pytest.raises(GitLabError) as raised:
        client.merge_request_details(PATH, 999)

    assert raised.value.status_code == 404
    assert not isinstance(raised.value, GitLabUnavailable)


@pytest.mark.parametrize(
    ("diff", "counts"),
    [
        ("", (0, 0)),
        ("@@ -1 +1 @@\n-Title\n+README\n", (1, 1)),
        ("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n", (1, 1)),
        ("@@ -1,2 +1,2 @@\n-a\n+b\n\\ No newline at end of file\n", (1, 1)),
        ("@@ -1 +1,2 @@\n x\n+++ counts\n---- counts too\n", (1, 1)),
        ("Binary files a/logo.png and b/logo.png differ\n", (0, 0)),
    ],
)
def test_diff_lines_are_counted_like_gitlab_does(diff: str, counts: tuple[int, int]) -> None:
    assert count_diff_lines(diff) == counts


# --- compare and statuses ---------------------------------------------------------------------------------------


def test_compare_lists_the_commits_between_two_shas(fake: FakeGitLab, client: GitLabClient) -> None:
    fake.add_merge_request(PATH, iid=2)
    first = fake.add_commit(PATH, 2, message="one", authored_date=minutes(1))
    second = fake.add_commit(PATH, 2, message="two\n\nCo-authored-by: Dan <dan@example.com>", authored_date=minutes(2))
    third = fake.add_commit(PATH, 2, message="three", authored_date=minutes(3))

    commits = client.compare(PATH, first["id"], third["id"], etag='W/"ignored"').commits

    assert [c.sha for c in commits] == [second["id"], third["id"]]
    assert commits[0].co_authors[0].email == "dan@example.com"
    assert commits[1].parents == (second["id"],)
    assert fake.requests[-1].query == {"from": [first["id"]], "to": [third["id"]]}


@pytest.mark.parametrize(
    ("state", "gitlab_state"),
    [("success", "success"), ("pending", "pending"), ("failure", "failed"), ("error", "failed")],
)
def test_posted_status_is_recorded_in_gitlab_terms(
    fake: FakeGitLab, client: GitLabClient, state: StatusState, gitlab_state: str
) -> None:
    client.post_status(
        PATH, "c" * 40, state=state, description="2 of 2 approvals", target_url="https://tandem.example.com/e/1"
    )

    [posted] = fake.statuses_posted
    assert posted["project"] == PATH
    assert posted["sha"] == "c" * 40
    assert posted["status"] == gitlab_state
    assert posted["name"] == "tandem/review-policy"
    assert posted["description"] == "2 of 2 approvals"
    assert posted["target_url"] == "https://tandem.example.com/e/1"
    assert fake.requests[-1].path == f"/api/v4/projects/acme%2Fpayments%2Fapi/statuses/{'c' * 40}"


def test_a_new_reason_to_wait_shows_although_gitlab_refuses_pending_to_pending(
    fake: FakeGitLab, client: GitLabClient
) -> None:
    for reason in ("waiting for files", "0 of 1 approval", "0 of 2 approvals"):
        client.post_status(PATH, "d" * 40, state="pending", description=reason, target_url="", ref="feature")
        [shown] = [s for s in fake.statuses("d" * 40) if s["status"] in ("pending", "running")]
        assert shown["description"] == reason
    client.post_status(PATH, "d" * 40, state="success", description="ok", target_url="", ref="feature")

    assert [(s["status"], s["description"]) for s in fake.statuses_posted] == [
        ("pending", "waiting for files"),
        ("running", "0 of 1 approval"),  # pending -> running: still unfinished, with the new reason
        ("canceled", "Superseded by a newer verdict"),  # running -> pending is refused: finish it, start anew
        ("pending", "0 of 2 approvals"),
        ("success", "ok"),
    ]
    assert fake.statuses("d" * 40)[-1]["status"] == "success"


def test_a_status_gitlab_refuses_is_an_error_not_a_report(fake: FakeGitLab, client: GitLabClient) -> None:
    client.post_status(PATH, "d" * 40, state="pending", description="waiting", target_url="", ref="feature")
    client.post_status(PATH, "d" * 40, state="pending", description="still", target_url="", ref="feature")
    fake.fail_next("/statuses/", 400, times=3)  # whatever GitLab says no to is not swallowed
    with pytest.raises(GitLabError):
        client.post_status(PATH, "d" * 40, state="pending", description="again", target_url="", ref="feature")


def test_long_status_description_is_cut_to_gitlabs_limit(fake: FakeGitLab, client: GitLabClient) -> None:
    client.post_status(PATH, "e" * 40, state="failure", description="x" * 400, target_url="", name="tandem/other")

    assert len(fake.statuses_posted[0]["description"]) == 255
    assert fake.statuses_posted[0]["name"] == "tandem/other"


# --- rate limits, failures, accounting --------------------------------------------------------------------------


def test_429_raises_rate_limited_with_retry_after_and_no_retry(fake: FakeGitLab, client: GitLabClient) -> None:
    seed_merge_requests(fake, 3)
    fake.fail_next("/merge_requests", 429, retry_after=17)

    with pytest.raises(RateLimited) as raised:
        list(client.merge_requests_since(PATH, None))

    assert raised.value.retry_after == 17
    assert raised.value.status_code == 429
    assert len(list_requests(fake)) == 1  # python-gitlab did not sleep and retry on its own
    assert client.rate_limit_remaining == 0


def test_429_without_retry_after_waits_for_the_rate_limit_reset(fake: FakeGitLab, client: GitLabClient) -> None:
    fake.fail_next("/projects/", 429)

    with pytest.raises(RateLimited) as raised:
        client.project(PATH)

    assert 0 < raised.value.retry_after <= 61


def test_spent_rate_limit_window_raises_rate_limited() -> None:
    with FakeGitLab(rate_limit=2) as fake:
        fake.add_project(PATH)
        client = GitLabClient(fake.url, fake.token)
        client.project(PATH)
        client.project(PATH)

        with pytest.raises(RateLimited) as raised:
            client.project(PATH)

        assert raised.value.retry_after >= 1
        assert client.rate_limit_remaining == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_raise_gitlab_unavailable_without_retry(
    fake: FakeGitLab, client: GitLabClient, status: int
) -> None:
    seed_detailed(fake)
    fake.fail_next("/merge_requests/3/notes", status)

    with pytest.raises(GitLabUnavailable) as raised:
        client.merge_request_details(PATH, 3)

    assert raised.value.status_code == status
    assert len(fake.requests_to("/merge_requests/3/notes")) == 1


def test_server_error_on_a_later_page_surfaces_while_iterating(fake: FakeGitLab) -> None:
    seed_merge_requests(fake, 5)
    client = GitLabClient(fake.url, fake.token, per_page=2)
    listing = client.merge_requests_since(PATH, None)
    assert [next(listing).number, next(listing).number] == [5, 4]
    fake.fail_next("/merge_requests", 503)

    with pytest.raises(GitLabUnavailable):
        next(listing)


def test_unreachable_gitlab_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GitLabClient(f"http://127.0.0.1:{port}", "token")

    with pytest.raises(GitLabUnavailable):
        client.project(PATH)


def test_slow_gitlab_times_out_as_unavailable(fake: FakeGitLab) -> None:
    fake.delay_next("/projects/", 1.0)
    client = GitLabClient(fake.url, fake.token, timeout=0.2)

    with pytest.raises(GitLabUnavailable):
        client.project(PATH)


def test_wrong_token_is_a_401_error(fake: FakeGitLab) -> None:
    client = GitLabClient(fake.url, "not-the-token")

    with pytest.raises(GitLabError) as raised:
        client.project(PATH)

    assert raised.value.status_code == 401
    assert not isinstance(raised.value, RateLimited | GitLabUnavailable)


def test_bearer_token_is_accepted_by_the_fake(fake: FakeGitLab) -> None:
    response = requests.get(f"{fake.url}/api/v4/version", headers={"Authorization": f"Bearer {fake.token}"}, timeout=5)

    assert response.status_code == 200 and response.json()["version"]
    assert requests.get(f"{fake.url}/api/v4/user", timeout=5).json() == {"message": "401 Unauthorized"}


def test_every_http_request_is_counted(fake: FakeGitLab) -> None:
    seed_merge_requests(fake, 45)
    fake.add_approval(PATH, 3, user="bob")
    client = GitLabClient(fake.url, fake.token, per_page=20)

    listed = list(client.merge_requests_since(PATH, None))  # project + 3 pages
    client.merge_request_details(PATH, 3)  # merge request, notes, commits, diffs, approval_state
    fake.fail_next("/statuses/", 503)
    with pytest.raises(GitLabUnavailable):
        client.post_status(PATH, "f" * 40, state="success", description="", target_url="")  # failures count too

    assert len(listed) == 45
    assert client.api_calls == len(fake.requests) == 1 + 3 + 5 + 1


def test_rate_limit_headers_are_kept(fake: FakeGitLab, client: GitLabClient) -> None:
    assert client.rate_limit_remaining is None and client.rate_limit_reset is None

    client.project(PATH)

    assert client.rate_limit_remaining == fake.rate_limit - 1
    assert client.rate_limit_reset is not None
    assert client.rate_limit_reset > dt.datetime.now(dt.UTC)


def test_approval_state_without_rules_falls_back_to_the_approvals_endpoint() -> None:
    with FakeGitLab(approval_rules=False) as fake:  # Premium, but no approval rule configured
        fake.add_project(PATH)
        seed_detailed(fake)
        client = GitLabClient(fake.url, fake.token)

        [review] = client.merge_request_details(PATH, 3).reviews

        assert (review.reviewer.login, review.submitted_at) == ("bob", minutes(5))
        assert len(fake.requests_to("/approvals")) == 1


# --- the fake itself speaks GitLab's pagination -----------------------------------------------------------------


def test_fake_sends_gitlabs_offset_pagination_headers(fake: FakeGitLab) -> None:
    seed_merge_requests(fake, 5)
    url = f"{fake.url}/api/v4/projects/acme%2Fpayments%2Fapi/merge_requests"

    response = requests.get(url, params={"per_page": 2, "page": 2}, headers={"PRIVATE-TOKEN": fake.token}, timeout=5)

    assert response.status_code == 200
    assert [mr["iid"] for mr in response.json()] == [3, 2]  # created_at desc by default
    headers = response.headers
    assert (headers["X-Page"], headers["X-Per-Page"], headers["X-Total"], headers["X-Total-Pages"]) == (
        "2",
        "2",
        "5",
        "3",
    )
    assert (headers["X-Next-Page"], headers["X-Prev-Page"]) == ("3", "1")
    assert set(response.links) == {"next", "prev", "first", "last"}
    assert "page=3" in response.links["next"]["url"]
    assert response.links["next"]["url"].startswith(fake.url)
    assert int(headers["RateLimit-Remaining"]) < int(headers["RateLimit-Limit"])
    assert "RateLimit-Reset" in headers


def test_fake_sends_a_keyset_cursor_only_in_the_link_header(fake: FakeGitLab) -> None:
    seed_merge_requests(fake, 3)
    url = f"{fake.url}/api/v4/projects/4242/merge_requests"
    params = {"pagination": "keyset", "per_page": "2", "order_by": "updated_at", "sort": "desc"}

    first = requests.get(url, params=params, headers={"PRIVATE-TOKEN": fake.token}, timeout=5)
    second = requests.get(first.links["next"]["url"], headers={"PRIVATE-TOKEN": fake.token}, timeout=5)

    assert [mr["iid"] for mr in first.json()] == [3, 2]
    assert "X-Total" not in first.headers and "cursor=" in first.links["next"]["url"]
    assert [mr["iid"] for mr in second.json()] == [1]
    assert "next" not in second.links
