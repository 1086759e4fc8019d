"""`POST /webhooks/github/`: verified, stored before the answer, processed once, in any order."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

from reviews.integrations.records import CommitRecord, GitUserRecord
from reviews.models import (
    ChangedFile,
    Comment,
    Commit,
    CommitStatus,
    Connection,
    Identity,
    PullRequest,
    Repository,
    Review,
    WebhookDelivery,
)
from reviews.services.pull_requests import commit_upsert
from reviews.webhooks import rejected_count

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"

pytestmark = pytest.mark.django_db


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Post a webhook as GitHub does and run what it queued (inline, as the embedded default does)."""

    def post(event: str, payload: dict | bytes, *, delivery: str | None = None, signature: str | None = "sign"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"HTTP_X_GITHUB_EVENT": event, "HTTP_X_GITHUB_DELIVERY": delivery or str(uuid.uuid4())}
        if signature == "sign":
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body)
        elif signature is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/webhooks/github/", data=body, content_type="application/json", **headers)

    return post


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- verification and acknowledgement ------------------------------------------------------------------


def test_missing_signature_is_401_and_stores_nothing(deliver):
    before = rejected_count("github")
    response = deliver("pull_request", fixture("pull_request.opened"), signature=None)
    assert response.status_code == 401
    assert "X-Hub-Signature-256" in response.json()["error"]
    assert WebhookDelivery.objects.count() == 0
    assert rejected_count("github") == before + 1


def test_wrong_signature_is_401_and_stores_nothing(deliver):
    response = deliver("pull_request", fixture("pull_request.opened"), signature=sign(b"other body"))
    assert response.status_code == 401
    assert response.json() == {"error": "Signature does not match the webhook secret."}
    assert WebhookDelivery.objects.count() == 0
    assert PullRequest.objects.count() == 0


def test_no_secret_configured_refuses_everything(deliver, settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    assert deliver("pull_request", fixture("pull_request.opened")).status_code == 401


def test_a_connections_own_secret_verifies_and_names_the_connection(deliver, settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    enterprise = Connection.objects.create(
        provider="github", name="GHE", base_url="https://ghe.example.com/api/v3", webhook_secret=SECRET
    )
    assert deliver("pull_request", fixture("pull_request.opened")).status_code == 202
    assert Repository.objects.get().connection == enterprise


def test_body_that_is_not_json_is_400(deliver):
    response = deliver("pull_request", b"not json {")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Body is not valid JSON")
    assert WebhookDelivery.objects.count() == 0


def test_body_that_is_a_json_list_is_400(deliver):
    assert deliver("pull_request", b"[1, 2]").status_code == 400


def test_ping_answers_200(deliver):
    response = deliver("ping", fixture("ping"))
    assert response.status_code == 200
    assert response.json()["status"] == "pong"
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.IGNORED


def test_delivery_is_stored_with_headers_and_raw_body_then_processed(deliver):
    body = json.dumps(fixture("pull_request.opened"), indent=1).encode()
    response = deliver("pull_request", body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert response.status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert response.json() == {"status": "accepted", "delivery": delivery.pk}
    assert delivery.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert delivery.event == "pull_request"
    assert delivery.action == "opened"
    assert delivery.body == body.decode()
    assert delivery.headers["X-GitHub-Event"] == "pull_request"
    assert "X-Hub-Signature-256" not in delivery.headers
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    assert delivery.attempts == 1


def test_redelivery_answers_200_and_is_processed_once(deliver):
    payload = fixture("pull_request.opened")
    assert deliver("pull_request", payload, delivery="same-id").status_code == 202
    PullRequest.objects.update(title="edited locally to detect reprocessing")
    response = deliver("pull_request", payload, delivery="same-id")
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    assert WebhookDelivery.objects.count() == 1
    assert PullRequest.objects.get().title == "edited locally to detect reprocessing"


def test_unhandled_event_is_stored_and_ignored(deliver):
    assert deliver("star", fixture("star.created")).status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.IGNORED
    assert "star" in delivery.error


# --- pull requests ---------------------------------------------------------------------------------------


def test_pull_request_opened_creates_repository_and_pull_request_field_by_field(deliver):
    payload = fixture("pull_request.opened")
    deliver("pull_request", payload)
    pr = payload["pull_request"]
    repository = Repository.objects.get()
    assert repository.external_id == str(payload["repository"]["id"])
    assert repository.full_path == payload["repository"]["full_name"]
    assert repository.default_branch == payload["repository"]["default_branch"]
    assert repository.team is None
    assert repository.connection.provider == "github"
    row = PullRequest.objects.get()
    assert row.repository == repository
    assert row.number == pr["number"]
    assert row.external_id == str(pr["id"])
    assert row.title == pr["title"]
    assert row.body == (pr["body"] or "")
    assert row.state == "open"
    assert row.draft is False
    assert row.base_ref == pr["base"]["ref"]
    assert row.head_ref == pr["head"]["ref"]
    assert row.head_sha == pr["head"]["sha"]
    assert (row.additions, row.deletions, row.changed_files) == (pr["additions"], pr["deletions"], pr["changed_files"])
    assert row.labels == sorted(label["name"] for label in pr["labels"])
    assert row.web_url == pr["html_url"]
    assert row.created_at == when(pr["created_at"])
    assert row.updated_at == when(pr["updated_at"])
    assert row.ready_at == when(pr["created_at"])
    assert row.merged_at is None
    author = Identity.objects.get(kind="github", value=pr["user"]["login"].lower())
    assert row.author == author.person
    assert author.external_id == str(pr["user"]["id"])
    assert row.author.is_bot is False


def test_bot_author_is_recorded_as_a_bot(deliver):
    deliver("pull_request", fixture("pull_request.opened.bot"))
    assert PullRequest.objects.get().author.is_bot is True


def test_every_pull_request_action_is_processed(deliver):
    actions = [
        "opened", "edited", "labeled", "unlabeled", "review_requested", "review_request_removed", "assigned",
        "converted_to_draft", "ready_for_review", "synchronize", "closed", "reopened",
    ]  # fmt: skip
    for action in actions:
        assert deliver("pull_request", fixture(f"pull_request.{action}")).status_code == 202
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"processed"}
    assert PullRequest.objects.count() == 1


def test_draft_then_ready_starts_the_review_clock_when_it_leaves_draft(deliver):
    deliver("pull_request", fixture("pull_request.converted_to_draft"))
    row = PullRequest.objects.get()
    assert row.draft is True
    assert row.ready_at is None
    ready = fixture("pull_request.ready_for_review")
    deliver("pull_request", ready)
    row.refresh_from_db()
    assert row.draft is False
    assert row.ready_at == when(ready["pull_request"]["updated_at"])


def test_synchronize_records_the_push_and_new_head(deliver):
    deliver("pull_request", fixture("pull_request.opened"))
    payload = fixture("pull_request.synchronize")
    deliver("pull_request", payload)
    row = PullRequest.objects.get()
    assert row.head_sha == payload["pull_request"]["head"]["sha"]
    assert row.last_pushed_at == when(payload["pull_request"]["updated_at"])


def test_closed_with_merge_records_merge(deliver):
    merged = fixture("pull_request.closed.merged")
    deliver("pull_request", merged)
    row = PullRequest.objects.get()
    assert row.state == "merged"
    assert row.merged_at == when(merged["pull_request"]["merged_at"])
    assert row.merge_commit_sha == merged["pull_request"]["merge_commit_sha"]


def test_closed_without_merge_records_close(deliver):
    closed = fixture("pull_request.closed")
    deliver("pull_request", closed)
    row = PullRequest.objects.get()
    assert row.state == "closed"
    assert row.merged_at is None
    assert row.closed_at == when(closed["pull_request"]["closed_at"])


def test_an_older_event_arriving_late_never_moves_state_backwards(deliver):
    merged = fixture("pull_request.closed.merged")
    deliver("pull_request", merged)
    deliver("pull_request", fixture("pull_request.opened"))  # older updated_at
    row = PullRequest.objects.get()
    assert row.state == "merged"
    assert row.updated_at == when(merged["pull_request"]["updated_at"])


def test_labels_follow_labeled_and_unlabeled(deliver):
    labeled = fixture("pull_request.labeled")
    deliver("pull_request", labeled)
    assert PullRequest.objects.get().labels == sorted(label["name"] for label in labeled["pull_request"]["labels"])
    unlabeled = fixture("pull_request.unlabeled")
    deliver("pull_request", unlabeled)
    assert PullRequest.objects.get().labels == sorted(label["name"] for label in unlabeled["pull_request"]["labels"])


def test_review_requested_records_the_requested_reviewers(deliver):
    payload = fixture("pull_request.review_requested")
    deliver("pull_request", payload)
    requested = {r["login"].lower() for r in payload["pull_request"]["requested_reviewers"]}
    assert requested
    logins = set(
        Identity.objects.filter(person__review_requests__isnull=False, kind="github").values_list("value", flat=True)
    )
    assert logins == requested


# --- reviews and comments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("pull_request_review.submitted.approved", "approved"),
        ("pull_request_review.submitted.changes_requested", "changes_requested"),
        ("pull_request_review.submitted.commented", "commented"),
        ("pull_request_review.dismissed", "dismissed"),
    ],
)
def test_reviews_are_stored_field_by_field(deliver, name, state):
    payload = fixture(name)
    deliver("pull_request_review", payload)
    review = Review.objects.get()
    assert review.state == state
    assert review.external_id == str(payload["review"]["id"])
    assert review.commit_sha == payload["review"]["commit_id"]
    assert review.submitted_at == when(payload["review"]["submitted_at"])
    assert review.body == (payload["review"]["body"] or "")
    reviewer = Identity.objects.get(kind="github", value=payload["review"]["user"]["login"].lower())
    assert review.reviewer == reviewer.person
    assert review.pull_request.number == payload["pull_request"]["number"]


def test_a_review_that_arrives_before_its_pull_request_is_kept(deliver):
    deliver("pull_request_review", fixture("pull_request_review.submitted.approved"))
    deliver("pull_request", fixture("pull_request.opened"))
    row = PullRequest.objects.get()
    assert row.reviews.get().state == "approved"
    assert row.additions == fixture("pull_request.opened")["pull_request"]["additions"]


def test_dismissal_after_approval_dismisses_the_same_review(deliver):
    approved = fixture("pull_request_review.submitted.approved")
    dismissed = fixture("pull_request_review.dismissed")
    dismissed["review"]["id"] = approved["review"]["id"]  # a dismissal names the review it dismisses
    deliver("pull_request_review", approved)
    deliver("pull_request_review", dismissed)
    assert list(Review.objects.values_list("state", flat=True)) == ["dismissed"]


def test_review_comment_is_a_line_comment(deliver):
    payload = fixture("pull_request_review_comment.created")
    deliver("pull_request_review_comment", payload)
    comment = Comment.objects.get()
    assert comment.kind == "diff"
    assert comment.external_id == str(payload["comment"]["id"])
    assert comment.body == payload["comment"]["body"]
    assert comment.path == payload["comment"]["path"]
    assert comment.created_at == when(payload["comment"]["created_at"])
    assert comment.is_system is False


# --- pushes, statuses, checks ----------------------------------------------------------------------------


def test_push_stores_commits_with_co_authors_resolved_to_identities(deliver):
    payload = fixture("push")
    deliver("push", payload)
    assert Commit.objects.count() == len(payload["commits"])
    co_authored = [c for c in payload["commits"] if "co-authored-by:" in c["message"].lower()]
    assert co_authored
    commit = Commit.objects.get(sha=co_authored[0]["id"])
    assert commit.message == co_authored[0]["message"]
    assert commit.authored_at == when(co_authored[0]["timestamp"])
    assert commit.author_identity.value == co_authored[0]["author"]["email"].lower()
    assert commit.co_authors.count() >= 1
    assert all(identity.kind == "email" for identity in commit.co_authors.all())


def test_push_to_a_pull_requests_branch_adds_the_commits_to_it(deliver):
    payload = fixture("push")
    opened = fixture("pull_request.opened")
    opened["pull_request"]["head"]["ref"] = payload["ref"].removeprefix("refs/heads/")
    deliver("pull_request", opened)
    deliver("push", payload)
    assert PullRequest.objects.get().commits.count() == len(payload["commits"])


def test_a_push_never_erases_the_parents_sync_stored(deliver):
    payload = fixture("push")
    deliver("push", payload)
    synced, pushed_only = (Commit.objects.get(sha=commit["id"]) for commit in payload["commits"][:2])
    assert (synced.parents, synced.parents_known) == ([], False)  # a push payload lists no parents
    # Sync (a pull request's commits, a compare) then reads the commit from the API, parents and all.
    record = CommitRecord(
        sha=synced.sha,
        message=synced.message,
        author=GitUserRecord(name="Codertocat", email=synced.author_identity.value),
        authored_at=synced.authored_at,
        parents=("f" * 40,),
    )
    commit_upsert(repository=synced.repository, record=record)

    deliver("push", payload)  # the same push again (a redelivery)

    synced.refresh_from_db()
    pushed_only.refresh_from_db()
    assert (synced.parents, synced.parents_known) == (["f" * 40], True)
    assert (pushed_only.parents, pushed_only.parents_known) == ([], False)


def test_status_event_is_stored(deliver):
    payload = fixture("status")
    deliver("status", payload)
    status = CommitStatus.objects.get()
    assert status.sha == payload["sha"]
    assert status.context == payload["context"]
    assert status.state == payload["state"]
    assert status.source == "status"


def test_check_run_and_check_suite_feed_commit_statuses(deliver):
    run = fixture("check_run.completed")
    deliver("check_run", run)
    status = CommitStatus.objects.get(source="check_run")
    assert status.context == run["check_run"]["name"]
    assert status.sha == run["check_run"]["head_sha"]
    assert status.state == ("success" if run["check_run"]["conclusion"] == "success" else "failure")
    deliver("check_suite", fixture("check_suite.completed"))
    assert CommitStatus.objects.filter(source="check_suite").count() == 1


def test_an_older_status_never_overwrites_a_newer_one(deliver):
    newer = fixture("status")
    older = copy.deepcopy(newer)
    older["state"] = "pending"
    older["id"] = newer["id"] - 1
    older["updated_at"] = "2000-01-01T00:00:00Z"
    deliver("status", newer)
    deliver("status", older)
    assert CommitStatus.objects.get().state == newer["state"]


def test_deployment_events_are_handed_to_telemetry(deliver):
    from telemetry.models import Deployment

    payload = fixture("deployment_status.success")
    assert deliver("deployment_status", payload).status_code == 202
    assert WebhookDelivery.objects.get().status == "processed"
    assert Deployment.objects.get().sha == payload["deployment"]["sha"]


# --- bad payloads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["pull_request"].pop("number"),
        lambda p: p["pull_request"].__setitem__("number", "two"),
        lambda p: p.pop("repository"),
        lambda p: p["pull_request"].__setitem__("created_at", "yesterday"),
        lambda p: p["pull_request"].__setitem__("user", "octocat"),
    ],
    ids=["missing number", "number is a string", "missing repository", "bad timestamp", "user is not an object"],
)
def test_a_signed_payload_with_missing_keys_or_wrong_types_fails_cleanly(deliver, mutate):
    payload = fixture("pull_request.opened")
    mutate(payload)
    response = deliver("pull_request", payload)
    assert response.status_code == 202  # stored and acknowledged; the failure is recorded on the delivery
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.error.startswith("Invalid payload:")
    assert PullRequest.objects.count() == 0
    assert Repository.objects.count() == 0


def test_failed_delivery_can_be_replayed_after_the_cause_is_fixed(deliver, django_capture_on_commit_callbacks):
    from reviews.services.webhooks import webhook_delivery_requeue
    from reviews.tasks import process_webhook_delivery

    payload = fixture("pull_request.opened")
    deliver("pull_request", payload)
    delivery = WebhookDelivery.objects.get()
    # Simulate a half-processed event (its verdict is on the record, so its rows stay): delivery marked failed.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", error="OperationalError: gone away")
    delivery.refresh_from_db()
    assert webhook_delivery_requeue(delivery=delivery)
    assert process_webhook_delivery.delay(delivery.pk).get() == "processed"
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    assert delivery.attempts == 2
    assert PullRequest.objects.count() == 1
    # A processed delivery is not processed again.
    assert process_webhook_delivery.delay(delivery.pk).get() == "skipped"


def test_changed_files_are_left_to_sync(deliver):
    deliver("pull_request", fixture("pull_request.opened"))
    assert ChangedFile.objects.count() == 0


def test_admin_action_reprocesses_failed_deliveries(deliver, client, admin_client, django_capture_on_commit_callbacks):
    from django.contrib.auth.models import User

    from tests.factories import MembershipFactory, PersonFactory, TeamFactory

    payload = fixture("pull_request.opened")
    payload["pull_request"]["number"] = "broken"
    deliver("pull_request", payload)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    # The cause is fixed (here: the stored body corrected), then the operator replays it from the admin: deliveries
    # are the instance's, a superuser's to replay; a team's lead is refused.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(body=json.dumps(fixture("pull_request.opened")))
    replay = {"action": "reprocess", "_selected_action": [delivery.pk]}
    lead = User.objects.create_user("lead", password="pw", is_staff=True)
    MembershipFactory(team=TeamFactory(), person=PersonFactory(user=lead), role="lead")
    client.force_login(lead)
    assert client.post("/admin/reviews/webhookdelivery/", replay).status_code == 403
    assert WebhookDelivery.objects.get().status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/reviews/webhookdelivery/", replay, follow=True)
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    assert PullRequest.objects.count() == 1


def test_a_delivery_acknowledged_while_the_broker_was_down_is_picked_up_later(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from reviews.tasks import dispatch_due_deliveries, process_webhook_delivery

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(process_webhook_delivery, "delay", broker_down)
    body = json.dumps(fixture("pull_request.opened")).encode()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = client.post(
            "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="pull_request",
            HTTP_X_GITHUB_DELIVERY="lost-in-transit", HTTP_X_HUB_SIGNATURE_256=sign(body),
        )  # fmt: skip
    assert len(queued) == 1  # it tried to queue the delivery, and the broker refused
    assert response.status_code == 202  # acknowledged: stored, even though it could not be queued
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"
    assert dispatch_due_deliveries() == 0  # leased: its own hand-over may still be on the way
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert dispatch_due_deliveries() == 1
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    assert PullRequest.objects.count() == 1
