"""`POST /webhooks/gitlab/`: token-verified, stored before the answer, processed once; every payload that
real GitLab instances sent (shared/fixtures/gitlab) lands in the provider-neutral rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from reviews.models import Comment, Commit, CommitStatus, PullRequest, Repository, Review, WebhookDelivery
from reviews.webhooks import rejected_count
from tests.conftest import FIXTURES_DIR

REAL = FIXTURES_DIR / "gitlab"
DOCS = Path(__file__).resolve().parent.parent / "fixtures" / "gitlab_docs"
TOKEN = "gitlab-webhook-token"
HEADER_FOR_KIND = {
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "release": "Release Hook",
    "pipeline": "Pipeline Hook",
    "build": "Job Hook",
    "deployment": "Deployment Hook",
}

pytestmark = pytest.mark.django_db


def real(name: str) -> dict:
    return json.loads((REAL / f"{name}.json").read_text())


def docs(name: str) -> dict:
    return json.loads((DOCS / f"{name}.json").read_text())


def when(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def webhook_token(settings):
    settings.GITLAB_WEBHOOK_TOKEN = TOKEN


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(payload: dict | bytes, *, event: str | None = None, token: str | None = TOKEN, **headers: str):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if event is None:
            event = HEADER_FOR_KIND[payload["object_kind"]]  # type: ignore[index]
        extra = {"HTTP_X_GITLAB_EVENT": event}
        if token is not None:
            extra["HTTP_X_GITLAB_TOKEN"] = token
        extra.update(headers)
        extra.setdefault("HTTP_X_GITLAB_EVENT_UUID", str(uuid.uuid4()))
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/webhooks/gitlab/", data=body, content_type="application/json", **extra)

    return post


def test_missing_token_is_401_and_stores_nothing(deliver):
    before = rejected_count("gitlab")
    response = deliver(real("mr_open_real"), token=None)
    assert response.status_code == 401
    assert "X-Gitlab-Token" in response.json()["error"]
    assert WebhookDelivery.objects.count() == 0
    assert rejected_count("gitlab") == before + 1


def test_wrong_token_is_401(deliver):
    assert deliver(real("mr_open_real"), token="guess").status_code == 401
    assert WebhookDelivery.objects.count() == 0


def test_body_that_is_not_json_is_400(deliver):
    response = deliver(b"<html>", event="Merge Request Hook")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Body is not valid JSON")


SHARED_FIXTURES = sorted(path.stem for path in REAL.glob("*.json"))


def test_all_26_shared_fixtures_are_present():
    assert len(SHARED_FIXTURES) == 26


@pytest.mark.parametrize("name", SHARED_FIXTURES)
def test_every_real_gitlab_payload_is_ingested(deliver, name):
    payload = real(name)
    response = deliver(payload)
    assert response.status_code == 202, response.content
    delivery = WebhookDelivery.objects.get()
    expected = "ignored" if payload["object_kind"] in {"tag_push", "release"} else "processed"
    assert delivery.status == expected, delivery.error
    if expected == "processed":
        assert Repository.objects.get().full_path == payload["project"]["path_with_namespace"]
    if payload["object_kind"] == "merge_request":
        row = PullRequest.objects.get()
        attributes = payload["object_attributes"]
        assert row.number == attributes["iid"]
        assert row.title == attributes["title"]
        assert row.head_ref == attributes["source_branch"]
        assert row.base_ref == attributes["target_branch"]
        assert row.state == {"opened": "open", "merged": "merged", "closed": "closed"}[attributes["state"]]


def test_the_service_hook_header_is_accepted(deliver):
    assert deliver(real("mr_update_oldrev"), event="Service Hook").status_code == 202
    assert WebhookDelivery.objects.get().status == "processed"
    assert PullRequest.objects.count() == 1


def test_merge_request_open_field_by_field(deliver):
    payload = real("mr_open_real")
    deliver(payload)
    attributes = payload["object_attributes"]
    row = PullRequest.objects.get()
    assert row.repository.external_id == str(payload["project"]["id"])
    assert row.repository.connection.provider == "gitlab"
    assert row.external_id == str(attributes["id"])
    assert row.body == attributes["description"]
    assert row.draft is attributes["draft"]
    assert row.head_sha == attributes["last_commit"]["id"]
    assert row.created_at == when(attributes["created_at"])
    assert row.updated_at == when(attributes["updated_at"])
    assert row.ready_at == row.created_at
    assert row.web_url == attributes["url"]
    assert row.additions is None  # hooks do not say; sync fills it in
    assert row.author.identities.filter(kind="gitlab", value=payload["user"]["username"].lower()).exists()


def test_update_with_oldrev_is_a_new_push(deliver):
    payload = real("mr_update_oldrev")
    deliver(payload)
    row = PullRequest.objects.get()
    assert row.last_pushed_at == when(payload["object_attributes"]["updated_at"])
    assert row.head_sha == payload["object_attributes"]["last_commit"]["id"]


def test_labels_and_reviewers_follow_updates(deliver):
    labels = real("mr_update_labels")
    deliver(labels)
    assert PullRequest.objects.get().labels == sorted(label["title"] for label in labels["labels"])
    reviewers = real("mr_update_reviewers")
    reviewers["object_attributes"]["updated_at"] = "2025-08-06 01:30:00 UTC"
    deliver(reviewers)
    row = PullRequest.objects.get()
    assert row.requested_reviewers.count() == len(reviewers.get("reviewers", []))


def test_draft_change_marks_the_merge_request_draft(deliver):
    deliver(real("mr_update_draft_goscm"))
    row = PullRequest.objects.get()
    assert row.draft is True
    assert row.ready_at is None


def test_merge_and_close_events(deliver):
    merged = real("mr_merge")
    deliver(merged)
    row = PullRequest.objects.get()
    assert row.state == "merged"
    assert row.merged_at is not None
    closed = real("mr_close_goscm")
    deliver(closed)
    assert PullRequest.objects.get(repository__external_id=str(closed["project"]["id"])).state == "closed"


def test_an_older_merge_request_event_never_moves_state_backwards(deliver):
    deliver(real("mr_merge_goscm"))
    deliver(real("mr_open_goscm"))
    assert PullRequest.objects.get().state == "merged"


def test_approved_is_an_approving_review_and_unapproval_withdraws_it(deliver):
    approval = docs("mr_approval")
    deliver(approval)
    review = Review.objects.get()
    assert review.state == "approved"
    assert review.reviewer.identities.filter(kind="gitlab", value=approval["user"]["username"].lower()).exists()
    unapproval = docs("mr_unapproval")
    deliver(unapproval)
    review.refresh_from_db()
    assert review.state == "dismissed"


def test_real_approved_event_records_the_approval(deliver):
    payload = real("mr_approved")
    deliver(payload)
    review = Review.objects.get()
    assert review.state == "approved"
    assert review.commit_sha == payload["object_attributes"]["last_commit"]["id"]


def test_unapproved_without_a_prior_approval_changes_nothing(deliver):
    deliver(real("mr_unapproved"))
    assert Review.objects.count() == 0
    assert PullRequest.objects.count() == 1


def test_notes_on_merge_requests_are_review_activity(deliver):
    conversation = real("note_mr_real")
    deliver(conversation)
    diff = real("note_mr_diff_real")
    deliver(diff)
    notes = {c.external_id: c for c in Comment.objects.all()}
    assert notes[str(conversation["object_attributes"]["id"])].kind == "conversation"
    line = notes[str(diff["object_attributes"]["id"])]
    assert line.kind == "diff"
    assert line.body == diff["object_attributes"]["note"]
    assert all(not c.is_system for c in notes.values())
    assert PullRequest.objects.get().number == conversation["merge_request"]["iid"]


def test_notes_on_commits_are_ignored(deliver):
    deliver(docs("note_commit"))
    assert WebhookDelivery.objects.get().status == "ignored"
    assert Comment.objects.count() == 0


def test_push_stores_commits_and_co_authors(deliver):
    payload = docs("push_coauthored")
    deliver(payload)
    assert Commit.objects.count() == len(payload["commits"])
    assert Commit.objects.filter(co_authors__isnull=False).exists()


def test_branch_deletion_push_stores_no_commits(deliver):
    deliver(real("push_branch_delete_real"))
    assert WebhookDelivery.objects.get().status == "processed"
    assert Commit.objects.count() == 0


def test_pipeline_and_job_hooks_feed_commit_statuses(deliver):
    pipeline = docs("pipeline_hook")
    deliver(pipeline)
    assert CommitStatus.objects.filter(sha=pipeline["object_attributes"]["sha"], source="pipeline").count() == 1
    job = docs("job_hook")
    deliver(job)
    status = CommitStatus.objects.get(source="job", context=job["build_name"], sha=job["sha"])
    assert status.state in {"success", "pending", "failure", "error"}


def test_deployment_hook_is_handed_to_telemetry(deliver):
    from telemetry.models import Deployment

    assert deliver(docs("deployment_hook")).status_code == 202
    assert WebhookDelivery.objects.get().status == "processed"
    assert Deployment.objects.count() == 1


def test_deduplicated_by_event_uuid(deliver):
    payload = real("mr_open_real")
    assert deliver(payload, HTTP_X_GITLAB_EVENT_UUID="same").status_code == 202
    response = deliver(payload, HTTP_X_GITLAB_EVENT_UUID="same")
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    assert WebhookDelivery.objects.count() == 1


def test_deduplicated_by_body_when_gitlab_sends_no_uuid(client, django_capture_on_commit_callbacks):
    body = json.dumps(real("mr_open_goscm")).encode()
    statuses = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/webhooks/gitlab/",
                data=body,
                content_type="application/json",
                HTTP_X_GITLAB_EVENT="Merge Request Hook",
                HTTP_X_GITLAB_TOKEN=TOKEN,
            )
        statuses.append(response.status_code)
    assert statuses == [202, 200]
    assert WebhookDelivery.objects.get().delivery_id.startswith("sha256:")


def test_a_signed_payload_with_wrong_types_fails_cleanly(deliver):
    payload = real("mr_open_real")
    payload["object_attributes"]["iid"] = "three"
    assert deliver(payload).status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.error.startswith("Invalid payload:")
    assert PullRequest.objects.count() == 0
    assert Repository.objects.count() == 0


def test_unknown_event_header_is_stored_and_ignored(deliver):
    assert deliver({"object_kind": "wiki_page"}, event="Wiki Page Hook").status_code == 202
    assert WebhookDelivery.objects.get().status == "ignored"


def test_an_event_by_someone_else_keeps_the_known_author(deliver):
    deliver(real("mr_open_real"))
    author = PullRequest.objects.get().author
    assert author is not None
    later = real("mr_open_real")
    later["object_attributes"]["action"] = "update"
    later["object_attributes"]["updated_at"] = "2025-08-06 09:00:00 UTC"
    later["user"] = {"id": 999, "name": "Someone Else", "username": "someone", "email": "[REDACTED]"}
    deliver(later)
    assert PullRequest.objects.get().author == author
