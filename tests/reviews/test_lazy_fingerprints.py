"""The diff fingerprint a GraphQL backfill leaves owed (issue 15, "sync without waste"), against the fake GitHub.

GitHub's GraphQL has no patches, so a backfill stores an open pull request's files without them and marks its head's
fingerprint owed: no REST call per pull request. The fingerprint is fetched (one compare call) only when a verdict
needs it, when a push moved the head away from an approval; until it is known that approval does not count, the
status says what it waits for, and a failed fetch is retried on the facts' backoff, never read as a rebase.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid

import pytest
from django.utils import timezone

from reviews.models import PolicyEvaluation, PullRequest
from reviews.policy.engine import REBASE_UNKNOWN, STALE
from reviews.services.sync import repository_for_sync, repository_sync

pytestmark = pytest.mark.django_db

SECRET = "lazy-secret"
REPO = "acme/shop"
OLD, REBASED, CHANGED = "a" * 40, "b" * 40, "c" * 40

PATCH_V1 = (
    "@@ -10,3 +10,4 @@ def total(cart):\n-    return sum(cart)\n+    amount = sum(cart)\n+    return round(amount, 2)"
)
PATCH_V1_REBASED = PATCH_V1.replace("@@ -10,3 +10,4 @@", "@@ -42,3 +42,4 @@")
PATCH_V2 = PATCH_V1.replace("round(amount, 2)", "round(amount, 4)")


@pytest.fixture
def flow(client, django_capture_on_commit_callbacks, fake_github, github_connection):
    """A repository backfilled through GraphQL, then driven by webhooks built from the fake's state."""
    github_connection.webhook_secret = SECRET
    github_connection.save()
    repo_json = fake_github.add_repo(REPO)

    class Flow:
        fake = fake_github

        def backfill(self) -> int:
            """A full sync through GraphQL, with the evaluations it queues; its API calls."""
            repository = repository_for_sync(provider="github", full_path=REPO, connection=github_connection)
            self.fake.clear_log()
            with django_capture_on_commit_callbacks(execute=True):
                run = repository_sync(repository=repository, full=True, graphql=True)
            return run.api_calls

        def send(self, event: str, payload: dict) -> None:
            body = json.dumps({**payload, "repository": repo_json, "sender": {"login": "ada", "id": 1}}).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(
                    "/webhooks/github/",
                    data=body,
                    content_type="application/json",
                    HTTP_X_GITHUB_EVENT=event,
                    HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
                    HTTP_X_HUB_SIGNATURE_256=signature,
                )
            assert response.status_code == 202, response.content

        def push(self, number: int, head_sha: str, patch: str, *, base_sha: str | None = None) -> None:
            pull = fake_github.push(REPO, number, head_sha=head_sha, files=[("shop/cart.py", patch)], base_sha=base_sha)
            self.send("pull_request", {"action": "synchronize", "number": number, "pull_request": pull})

        def last_status(self) -> dict:
            return fake_github.statuses_posted[-1]

        def beat(self) -> int:
            """The backoff runs out and the beat job that fetches missing facts runs."""
            from reviews.tasks import fetch_missing_facts

            PullRequest.objects.update(facts_retry_at=timezone.now() - dt.timedelta(seconds=1))
            with django_capture_on_commit_callbacks(execute=True):
                return fetch_missing_facts()

    return Flow()


def _approved_pull_request(fake, number: int = 1) -> None:
    fake.add_pull(REPO, number=number, author="ada", head_sha=OLD)
    fake.add_file(REPO, number, "shop/cart.py", additions=2, deletions=1, patch=PATCH_V1)
    fake.add_review(REPO, number, reviewer="bob", state="APPROVED")


def _discarded(number: int = 1) -> list[tuple[str, str]]:
    trace = PolicyEvaluation.objects.filter(pull_request__number=number).latest("evaluated_at").trace
    return [(item["login"], item["reason"]) for item in trace["rules"][0]["approvals_discarded"]]


def test_a_backfill_makes_no_rest_call_per_pull_request_and_owes_the_open_heads_fingerprint(flow):
    _approved_pull_request(flow.fake, 1)
    flow.fake.add_pull(REPO, number=2, author="ada", state="merged")
    flow.fake.add_file(REPO, 2, "shop/cart.py", patch=PATCH_V1)

    calls = flow.backfill()
    assert calls == len(flow.fake.graphql_requests()) == 1
    assert not flow.fake.requests_to("/files") and not flow.fake.requests_to("/compare/")
    opened = PullRequest.objects.get(number=1)
    assert opened.diff_ids == {} and set(opened.diff_ids_owed) == {OLD}
    assert PullRequest.objects.get(number=2).diff_ids_owed == {}  # merged: no later push needs it
    # The approval is of the head itself: no fingerprint is read, none is fetched, and it counts.
    assert flow.last_status()["state"] == "success"


def test_a_push_after_a_backfill_fetches_the_old_heads_fingerprint_once_and_keeps_the_approval_across_a_rebase(
    flow,
):
    _approved_pull_request(flow.fake)
    flow.backfill()
    flow.fake.clear_log()
    old_base = flow.fake._pull(REPO, 1).base_sha

    flow.push(1, REBASED, PATCH_V1_REBASED, base_sha="f" * 40)  # the same change on a newer base
    status = flow.last_status()
    assert (status["state"], status["sha"]) == ("success", REBASED)
    compares = flow.fake.requests_to("/compare/")
    # One call, for the old head on the base it was on when the backfill saw it.
    assert [request.path.rsplit("/", 1)[-1] for request in compares] == [f"{old_base}...{OLD}"]
    pull_request = PullRequest.objects.get(number=1)
    assert pull_request.diff_ids_owed == {}
    assert pull_request.diff_ids[OLD] == pull_request.diff_ids[REBASED]

    flow.push(1, CHANGED, PATCH_V2)  # a real change: stale, and nothing more to fetch for it
    assert (flow.last_status()["state"], flow.last_status()["sha"]) == ("pending", CHANGED)
    assert len(flow.fake.requests_to("/compare/")) == 1
    assert _discarded() == [("bob", STALE)]


def test_a_real_change_pushed_after_a_backfill_makes_the_approval_stale(flow):
    _approved_pull_request(flow.fake)
    flow.backfill()
    flow.fake.clear_log()

    flow.push(1, CHANGED, PATCH_V2)
    status = flow.last_status()
    assert (status["state"], status["sha"]) == ("pending", CHANGED)
    assert status["description"].startswith("Needs 1 approval")
    assert len(flow.fake.requests_to("/compare/")) == 1
    assert _discarded() == [("bob", STALE)]


def test_a_failed_fingerprint_fetch_leaves_the_approval_uncounted_until_a_retry_fetches_it(flow):
    _approved_pull_request(flow.fake)
    flow.backfill()
    flow.fake.fail_next("/compare/", 502)

    flow.push(1, REBASED, PATCH_V1_REBASED)
    status = flow.last_status()
    assert (status["state"], status["sha"]) == ("pending", REBASED)  # never green on an unknown
    assert status["description"].startswith(f"Waiting for the diff of {OLD[:7]} from GitHub to tell a rebase")
    assert len(status["description"]) <= 140
    assert _discarded() == [("bob", REBASE_UNKNOWN)]
    pull_request = PullRequest.objects.get(number=1)
    assert "502" in pull_request.fingerprint_error and pull_request.facts_attempts == 1
    assert set(pull_request.diff_ids_owed) == {OLD}

    assert flow.beat() == 1  # the backoff ran out: the evaluation fetches it again
    status = flow.last_status()
    assert (status["state"], status["sha"]) == ("success", REBASED)
    pull_request.refresh_from_db()
    assert (pull_request.fingerprint_error, pull_request.diff_ids_owed, pull_request.facts_retry_at) == ("", {}, None)
    assert flow.beat() == 0  # nothing missing any more


def test_a_fingerprint_the_compare_cannot_give_whole_makes_the_approval_stale_not_pending_forever(flow):
    _approved_pull_request(flow.fake)
    flow.backfill()
    # The compare now lists another file than GitHub showed for that head: the fingerprint cannot be trusted.
    flow.fake._pull(REPO, 1).files.append(flow.fake._pull(REPO, 1).files[0].__class__("x.py", "added", 1, 0))

    flow.push(1, REBASED, PATCH_V1_REBASED)
    assert (flow.last_status()["state"], flow.last_status()["sha"]) == ("pending", REBASED)
    assert _discarded() == [("bob", STALE)]
    assert PullRequest.objects.get(number=1).diff_ids_owed == {}
    assert flow.beat() == 0
