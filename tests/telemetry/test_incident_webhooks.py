"""PagerDuty V3 and Opsgenie alert webhooks become incidents of Tandem services: verified, idempotent, tolerant
of disorder; a malformed payload is a 400 that writes nothing."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json

import pytest

from telemetry.integrations import opsgenie, pagerduty
from telemetry.models import Incident, SuspectChange
from tests.telemetry.conftest import T0, hours, make_deployment, make_service

pytestmark = pytest.mark.django_db

PD_SECRET = "pd-signing-secret"
OG_TOKEN = "og-shared-token"


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.PAGERDUTY_WEBHOOK_SECRET = PD_SECRET
    settings.OPSGENIE_WEBHOOK_TOKEN = OG_TOKEN


def pd_event(event_type: str = "incident.triggered", *, occurred_at: dt.datetime = T0, **data) -> dict:
    """A V3 webhook payload shaped as PagerDuty documents it (developer-docs, webhooks/01-Overview)."""
    incident = {
        "id": "PGR0VU2",
        "type": "incident",
        "self": "https://api.pagerduty.com/incidents/PGR0VU2",
        "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
        "number": 2,
        "status": event_type.split(".")[1] if event_type != "incident.priority_updated" else "triggered",
        "incident_key": "d3640fbd41094207a1c11e58e46b1662",
        "created_at": "2025-03-10T12:00:00Z",
        "title": "A little bump in the road",
        "service": {
            "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
            "id": "PF9KMXH",
            "self": "https://api.pagerduty.com/services/PF9KMXH",
            "summary": "API Service",
            "type": "service_reference",
        },
        "assignees": [],
        "escalation_policy": {"id": "PUS0KTE", "summary": "Default", "type": "escalation_policy_reference"},
        "teams": [{"id": "PFCVPS0", "summary": "Engineering", "type": "team_reference"}],
        "priority": {"id": "PSO75BM", "summary": "P1", "type": "priority_reference"},
        "urgency": "high",
        "conference_bridge": None,
        "resolve_reason": None,
        **data,
    }
    return {
        "event": {
            "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
            "agent": {"id": "PLH1HKV", "summary": "Tenex Engineer", "type": "user_reference"},
            "client": {"name": "PagerDuty"},
            "data": incident,
        }
    }


def pd_sign(body: bytes, *secrets: str) -> str:
    return ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets or (PD_SECRET,))


@pytest.fixture
def pd(client, run_on_commit):
    def post(payload: dict | bytes, *, signature: str | None = "sign"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {}
        if signature == "sign":
            headers["HTTP_X_PAGERDUTY_SIGNATURE"] = pd_sign(body)
        elif signature is not None:
            headers["HTTP_X_PAGERDUTY_SIGNATURE"] = signature
        with run_on_commit():
            return client.post("/webhooks/pagerduty/", data=body, content_type="application/json", **headers)

    return post


# --- PagerDuty ------------------------------------------------------------------------------------------------------


def test_triggered_acknowledged_resolved_is_one_incident(pd, actors):
    service = make_service("api-service", actors.team)  # PagerDuty's "API Service", by slug
    assert pd(pd_event("incident.triggered")).status_code == 201
    assert pd(pd_event("incident.acknowledged", occurred_at=T0 + hours(0.25))).status_code == 200
    response = pd(pd_event("incident.resolved", occurred_at=T0 + hours(2)))
    assert response.status_code == 200
    assert response.json()["status"] == "updated"
    incident = Incident.objects.get()
    assert (incident.source, incident.external_id) == ("pagerduty", "PGR0VU2")
    assert incident.title == "A little bump in the road"
    assert incident.severity == "sev1"  # priority P1
    assert incident.status == "resolved"
    assert incident.started_at == T0
    assert incident.acknowledged_at == T0 + hours(0.25)
    assert incident.resolved_at == T0 + hours(2)
    assert incident.url == "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert list(incident.services.all()) == [service]
    assert incident.correlated_at is not None


def test_an_older_event_never_overwrites_a_newer_one(pd, actors):
    pd(pd_event("incident.resolved", occurred_at=T0 + hours(2)))
    response = pd(pd_event("incident.acknowledged", occurred_at=T0 + hours(1)))
    assert response.json()["status"] == "stale"
    incident = Incident.objects.get()
    assert incident.status == "resolved"
    assert incident.resolved_at == T0 + hours(2)


def test_a_redelivered_event_changes_nothing(pd, actors):
    payload = pd_event("incident.triggered")
    pd(payload)
    fields = ["pk", "title", "status", "severity", "started_at", "acknowledged_at", "resolved_at", "source_updated_at"]
    before = Incident.objects.values(*fields).get()
    assert pd(payload).status_code == 200
    assert Incident.objects.values(*fields).get() == before


def test_services_are_found_by_their_pagerduty_id(pd, actors):
    service = make_service("checkout", actors.team)
    service.incident_keys = ["pagerduty:PF9KMXH"]
    service.save()
    make_service("unrelated", actors.team)
    pd(pd_event())
    assert list(Incident.objects.get().services.all()) == [service]


def test_a_reopened_incident_is_no_longer_resolved(pd, actors):
    pd(pd_event("incident.resolved", occurred_at=T0 + hours(1)))
    pd(pd_event("incident.reopened", occurred_at=T0 + hours(3)))
    incident = Incident.objects.get()
    assert (incident.status, incident.resolved_at) == ("triggered", None)


def test_urgency_gives_the_severity_without_a_priority(pd, actors):
    pd(pd_event(priority=None, urgency="low"))
    assert Incident.objects.get().severity == "sev3"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "Missing X-PagerDuty-Signature"),
        ("v1=" + "0" * 64, "does not match"),
        ("v0=whatever", "does not match"),
    ],
)
def test_a_bad_signature_is_refused(pd, signature, reason):
    response = pd(pd_event(), signature=signature)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert Incident.objects.count() == 0


def test_any_of_several_signatures_may_match_during_a_rotation(pd, settings):
    settings.PAGERDUTY_WEBHOOK_SECRET = "new-secret"
    body = json.dumps(pd_event()).encode()
    assert pd(body, signature=pd_sign(body, "old-secret", "new-secret")).status_code == 201
    assert pd(body, signature=pd_sign(body, "old-secret")).status_code == 401


def test_an_unset_secret_refuses_everything(pd, settings):
    settings.PAGERDUTY_WEBHOOK_SECRET = ""
    response = pd(pd_event())
    assert response.status_code == 401
    assert "not configured" in response.json()["error"]


def test_the_signature_covers_the_raw_body(pd):
    body = json.dumps(pd_event()).encode()
    tampered = body.replace(b"A little bump", b"A large crater")
    assert pd(tampered, signature=pd_sign(body)).status_code == 401


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("event"),
        lambda p: p["event"].pop("occurred_at"),
        lambda p: p["event"]["data"].pop("id"),
        lambda p: p["event"]["data"].__setitem__("created_at", "last tuesday"),
        lambda p: p["event"]["data"].__setitem__("type", "incident_note"),
        lambda p: p["event"]["data"].__setitem__("service", "API"),
        lambda p: p["event"].__setitem__("occurred_at", "2025-03-10T12:00:00"),  # no offset
    ],
)
def test_a_malformed_payload_is_a_400_that_writes_nothing(pd, mutate):
    payload = copy.deepcopy(pd_event())
    mutate(payload)
    response = pd(payload)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid payload:")
    assert Incident.objects.count() == 0


def test_not_json_is_a_400(pd):
    assert pd(b"{not json").status_code == 400
    assert pd(b"[1, 2]").status_code == 400


def test_events_that_change_no_state_are_ignored(pd):
    note = {
        "event": {
            "id": "01",
            "event_type": "incident.annotated",
            "resource_type": "incident",
            "occurred_at": "2025-03-10T12:00:00Z",
            "data": {"type": "incident_note", "content": "hi"},
        }
    }
    response = pd(note)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert pd({"event": {"event_type": "pagey.ping", "data": {}}}).json()["status"] == "ignored"
    assert Incident.objects.count() == 0


def test_a_webhook_incident_is_ranked_against_the_services_deployments(pd, actors, repository, history):
    service = make_service("api-service", actors.team, [(repository, [])])
    make_deployment(service, history.head, at=T0 - hours(40), repository=repository)
    history.merge(1, at=T0 - hours(10))
    deployment = make_deployment(service, history.head, at=T0 - hours(5), repository=repository)
    from telemetry.services.linking import deployment_changes_link

    deployment_changes_link(deployment_id=deployment.pk)
    pd(pd_event())
    suspect = SuspectChange.objects.get()
    assert suspect.pull_request.number == 1
    assert suspect.deployment == deployment


def test_signature_verification_is_constant_time_and_versioned():
    body = b'{"a": 1}'
    good = "v1=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    assert pagerduty.verify_signature(["s"], body, good)
    assert pagerduty.verify_signature(["t", "s"], body, f"v1=abc, {good}")
    assert not pagerduty.verify_signature(["s"], body, good.replace("v1=", "v2="))
    assert not pagerduty.verify_signature([], body, good)


# --- Opsgenie -------------------------------------------------------------------------------------------------------


def og_event(action: str = "Create", *, updated: dt.datetime = T0, **alert) -> dict:
    """The Webhook integration's alert action data, as Opsgenie documents it (createdAt in ms, updatedAt in ns)."""
    return {
        "source": {"name": "web", "type": "API"},
        "alert": {
            "updatedAt": int(updated.timestamp() * 1_000_000_000),
            "tags": ["service:checkout", "prod"],
            "teams": ["team1"],
            "recipients": ["recipient1"],
            "message": "Checkout latency over 2 s",
            "username": "fili@ifountain.com",
            "alertId": "052652ac-5d1c-464a-812a-7dd18bbfba8c",
            "source": "fili@ifountain.com",
            "alias": "aliastest",
            "tinyId": "23",
            "createdAt": int(T0.timestamp() * 1000),
            "userId": "daed1180-0ce8-438b-8f8e-57e1a5920a2d",
            "entity": "",
            "priority": "P2",
            **alert,
        },
        "action": action,
        "integrationId": "37c8f316-17c6-49d7-899b-9c7e540c048d",
        "integrationName": "Integration1",
    }


@pytest.fixture
def og(client, run_on_commit):
    def post(payload: dict | bytes, *, token: str | None = OG_TOKEN, header: str = "HTTP_X_TANDEM_TOKEN"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {header: token} if token is not None else {}
        with run_on_commit():
            return client.post("/webhooks/opsgenie/", data=body, content_type="application/json", **headers)

    return post


def test_create_acknowledge_close_is_one_incident(og, actors):
    service = make_service("checkout", actors.team)
    assert og(og_event("Create")).status_code == 201
    og(og_event("Acknowledge", updated=T0 + hours(0.5)))
    og(og_event("AddNote", updated=T0 + hours(0.75)))
    og(og_event("Close", updated=T0 + hours(1)))
    incident = Incident.objects.get()
    assert (incident.source, incident.external_id) == ("opsgenie", "052652ac-5d1c-464a-812a-7dd18bbfba8c")
    assert incident.title == "Checkout latency over 2 s"
    assert incident.severity == "sev2"
    assert incident.started_at == T0
    assert incident.acknowledged_at == T0 + hours(0.5)
    assert (incident.status, incident.resolved_at) == ("resolved", T0 + hours(1))
    assert list(incident.services.all()) == [service]


def test_opsgenie_services_by_entity_or_incident_key(og, actors):
    by_entity = make_service("search-api", actors.other_team)
    by_key = make_service("payments", actors.team)
    by_key.incident_keys = ["opsgenie:payments-prod"]
    by_key.save()
    og(og_event(tags=["payments-prod"], entity="search-api"))
    assert set(Incident.objects.get().services.all()) == {by_entity, by_key}


def test_the_token_may_come_as_a_bearer_token(og, actors):
    assert og(og_event(), header="HTTP_AUTHORIZATION", token=f"Bearer {OG_TOKEN}").status_code == 201


@pytest.mark.parametrize(("token", "reason"), [(None, "Missing"), ("wrong", "does not match")])
def test_a_bad_token_is_refused(og, token, reason):
    response = og(og_event(), token=token)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert Incident.objects.count() == 0


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("alert"),
        lambda p: p["alert"].pop("alertId"),
        lambda p: p["alert"].__setitem__("createdAt", "yesterday"),
        lambda p: p["alert"].__setitem__("tags", "service:checkout"),
        lambda p: p.__setitem__("action", 7),
    ],
)
def test_a_malformed_alert_is_a_400_that_writes_nothing(og, mutate):
    payload = copy.deepcopy(og_event())
    mutate(payload)
    response = og(payload)
    assert response.status_code == 400
    assert Incident.objects.count() == 0


def test_opsgenie_epoch_units_are_told_apart():
    event = opsgenie.parse_webhook(og_event(updated=T0 + hours(1)))
    assert event.record is not None
    assert event.record.started_at == T0  # milliseconds
    assert event.record.occurred_at == T0 + hours(1)  # nanoseconds


# --- stored deliveries ----------------------------------------------------------------------------------------------


def test_every_incident_webhook_is_stored_and_a_retry_is_answered_once(pd, actors):
    from reviews.models import WebhookDelivery

    make_service("api-service", actors.team)
    payload = pd_event("incident.triggered")
    assert pd(payload).status_code == 201
    retry = pd(payload)
    assert retry.status_code == 200
    assert retry.json()["status"] == "duplicate"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.provider, delivery.event, delivery.status) == ("pagerduty", "incident.triggered", "processed")
    assert json.loads(delivery.body) == payload
    assert Incident.objects.count() == 1


def test_a_malformed_incident_webhook_is_kept_as_failed_and_can_be_replayed(pd, actors):
    from reviews.models import WebhookDelivery
    from reviews.services.webhooks import webhook_delivery_requeue
    from reviews.tasks import process_webhook_delivery

    make_service("api-service", actors.team)
    payload = pd_event("incident.triggered")
    del payload["event"]["occurred_at"]
    response = pd(payload)
    assert response.status_code == 400
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.error.startswith("Invalid payload:")
    assert not Incident.objects.exists()
    # The cause is fixed (here: the stored body corrected), and the delivery is replayed as the admin would.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(body=json.dumps(pd_event("incident.triggered")))
    delivery.refresh_from_db()
    assert webhook_delivery_requeue(delivery=delivery)
    assert process_webhook_delivery.delay(delivery.pk).get() == "processed"
    delivery.refresh_from_db()
    assert delivery.status == "processed"
    assert Incident.objects.get().external_id == "PGR0VU2"


# --- nothing acknowledged is lost ------------------------------------------------------------------------------------


class _FailsOnce:
    def __init__(self, real):
        self.real, self.failed = real, False

    def __call__(self, **kwargs):
        if not self.failed:
            self.failed = True
            from django.db import OperationalError

            raise OperationalError("could not serialize access")
        return self.real(**kwargs)


def test_a_transient_failure_is_stored_for_retry_and_the_senders_retry_is_applied(pd, actors, monkeypatch):
    from reviews.models import WebhookDelivery
    from telemetry import webhooks

    service = make_service("api-service", actors.team)
    monkeypatch.setattr(webhooks, "incident_record_apply", _FailsOnce(webhooks.incident_record_apply))
    payload = pd_event("incident.triggered")
    first = pd(payload)
    assert first.status_code == 202  # stored: the sender need not retry, and it is not lost if it does
    assert first.json()["status"] == "queued"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert "OperationalError: could not serialize access" in delivery.error
    assert not Incident.objects.exists()

    retried = pd(payload)  # PagerDuty retries the same body
    assert retried.status_code == 201
    assert list(Incident.objects.get().services.all()) == [service]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PROCESSED, 2)
    assert pd(payload).json()["status"] == "duplicate"  # done now: a third copy changes nothing


def test_a_transient_failure_the_sender_never_retries_is_applied_by_the_dispatcher(pd, actors, monkeypatch):
    from django.utils import timezone

    from reviews.models import WebhookDelivery
    from reviews.tasks import dispatch_due_deliveries
    from telemetry import webhooks

    make_service("api-service", actors.team)
    monkeypatch.setattr(webhooks, "incident_record_apply", _FailsOnce(webhooks.incident_record_apply))
    og_payload = pd_event("incident.triggered")
    assert pd(og_payload).status_code == 202
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert dispatch_due_deliveries() == 1
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.PROCESSED
    assert Incident.objects.get().external_id == "PGR0VU2"
