"""A payload with a value no column can store fails when it is parsed, with its reason: a permanent failure of
the delivery, never a database error on every retry. Limits live on the records and equal the models'."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps

from reviews.integrations import github, gitlab
from reviews.integrations import records as vcs_records
from reviews.integrations.records import PayloadError
from reviews.models import PullRequest, WebhookDelivery
from telemetry.integrations import opsgenie, pagerduty
from telemetry.integrations import records as incident_records
from telemetry.integrations.records import IncidentPayloadError
from telemetry.models import Incident

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T0 = dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC)


def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _with(payload: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node[key]
    node[last] = value
    # Through JSON and back, as a delivery arrives: "\ud800" becomes a lone surrogate in a str.
    return json.loads(json.dumps(changed))


def _pd_event() -> dict[str, Any]:
    return {
        "event": {
            "id": "5ac64822",
            "event_type": "incident.triggered",
            "resource_type": "incident",
            "occurred_at": "2025-03-10T12:00:00Z",
            "data": {
                "id": "PGR0VU2",
                "type": "incident",
                "number": 2,
                "status": "triggered",
                "created_at": "2025-03-10T12:00:00Z",
                "title": "A little bump in the road",
                "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                "service": {"id": "PF9KMXH", "summary": "API Service"},
            },
        }
    }


def _og_event() -> dict[str, Any]:
    return {
        "action": "Create",
        "alert": {
            "alertId": "052652ac-5d1c-464a-812a-7dd18bbfba8c",
            "message": "Checkout latency over 2 s",
            "tinyId": "23",
            "tags": ["service:checkout"],
            "createdAt": int(T0.timestamp() * 1000),
            "updatedAt": int(T0.timestamp() * 1_000_000_000),
            "priority": "P2",
        },
    }


LONG = "x" * 1001
# (payload path, poison, what the reason says)
GITHUB_POISON = [
    ("pull_request.title", LONG, "pull_request.title: 1001 characters, at most 1000"),
    ("pull_request.title", "fix\x00it", "pull_request.title: contains a NUL character"),
    ("pull_request.body", "lone \ud800 surrogate", "pull_request.body: contains a lone surrogate (U+D800)"),
    ("pull_request.number", 2**40, "pull_request.number: 1099511627776 is outside 0–2147483647"),
    ("pull_request.number", -1, "pull_request.number: -1 is outside"),
    ("pull_request.additions", -5, "pull_request.additions: -5 is outside"),
    ("pull_request.additions", 10**30, "pull_request.additions: a number is outside"),
    ("pull_request.created_at", "0001-01-01T00:00:00Z", "pull_request.created_at: year 1 is outside 2000–2100"),
    ("pull_request.created_at", "9999-12-31T23:59:59-05:00", "pull_request.created_at: year 9999"),
    ("pull_request.created_at", "2025-01-01T00:00:00+20:00", "pull_request.created_at: UTC offset"),
    ("pull_request.head.ref", "b" * 256, "pull_request.head_ref: 256 characters, at most 255"),
    ("pull_request.user.login", "u" * 256, "pull_request.author.login: 256 characters"),
    ("pull_request.number", "²", "pull_request.number: expected an integer"),
]
GITLAB_POISON = [
    ("object_attributes.title", LONG, "pull_request.title: 1001 characters"),
    ("object_attributes.title", "\x00", "NUL"),
    ("object_attributes.description", "\udfff", "lone surrogate (U+DFFF)"),
    ("object_attributes.iid", 2**40, "pull_request.number: 1099511627776 is outside"),
    ("object_attributes.iid", -3, "pull_request.number: -3 is outside"),
    ("object_attributes.id", "²", "object_attributes.id: expected an id of digits 0-9"),
    ("object_attributes.created_at", "0001-01-01T00:00:00Z", "object_attributes.created_at: year 1"),
    ("object_attributes.created_at", "0001-01-01T00:00:00+05:00", "object_attributes.created_at: year 1"),
    ("object_attributes.created_at", "2025-01-01T00:00:00+20:00", "object_attributes.created_at: UTC offset"),
    ("object_attributes.source_branch", "s" * 256, "head_ref: 256 characters"),
]
PAGERDUTY_POISON = [
    ("event.data.title", "t" * 501, "title: 501 characters, at most 500"),
    ("event.data.title", "a\x00", "title: contains a NUL character"),
    ("event.data.id", "i" * 201, "external_id: 201 characters, at most 200"),
    ("event.data.created_at", "0001-01-01T00:00:00Z", "event.data.created_at: year 1"),
    ("event.data.created_at", "2125-01-01T00:00:00Z", "event.data.created_at: year 2125"),
    ("event.occurred_at", "2025-01-01T00:00:00-16:30", "event.occurred_at: UTC offset"),
]
OPSGENIE_POISON = [
    ("alert.createdAt", 10**30, "alert.createdAt: "),
    ("alert.createdAt", 1, "alert.createdAt: year 1970"),
    ("alert.updatedAt", 1e300, "alert.updatedAt: "),
    ("alert.alertId", "a" * 201, "external_id: 201 characters"),
    ("alert.message", "\ud83d", "title: contains a lone surrogate"),
]


@pytest.mark.parametrize(("path", "poison", "reason"), GITHUB_POISON)
def test_github_poison_is_a_payload_error_naming_the_value(path, poison, reason):
    payload = _with(_load("github/pull_request.opened.json"), path, poison)
    with pytest.raises(PayloadError, match=None) as raised:
        github.parse_webhook("pull_request", payload)
    assert reason in str(raised.value)


@pytest.mark.parametrize(("path", "poison", "reason"), GITLAB_POISON)
def test_gitlab_poison_is_a_payload_error_naming_the_value(path, poison, reason):
    payload = _with(_load("gitlab_docs/mr_ready.json"), path, poison)
    with pytest.raises(PayloadError) as raised:
        gitlab.parse_webhook("Merge Request Hook", payload)
    assert reason in str(raised.value)


@pytest.mark.parametrize(("path", "poison", "reason"), PAGERDUTY_POISON)
def test_pagerduty_poison_is_an_incident_payload_error(path, poison, reason):
    with pytest.raises(IncidentPayloadError) as raised:
        pagerduty.parse_webhook(_with(_pd_event(), path, poison))
    assert reason in str(raised.value)


@pytest.mark.parametrize(("path", "poison", "reason"), OPSGENIE_POISON)
def test_opsgenie_poison_is_an_incident_payload_error(path, poison, reason):
    with pytest.raises(IncidentPayloadError) as raised:
        opsgenie.parse_webhook(_with(_og_event(), path, poison))
    assert reason in str(raised.value)


def test_the_unpoisoned_payloads_parse():
    assert github.parse_webhook("pull_request", _load("github/pull_request.opened.json")).pull_request
    assert gitlab.parse_webhook("Merge Request Hook", _load("gitlab_docs/mr_ready.json")).pull_request
    assert pagerduty.parse_webhook(_pd_event()).record
    assert opsgenie.parse_webhook(_og_event()).record


@pytest.mark.django_db
def test_a_poison_github_delivery_fails_for_good_with_its_reason(client, settings, django_capture_on_commit_callbacks):
    settings.GITHUB_WEBHOOK_SECRET = "gh-secret"
    body = json.dumps(_with(_load("github/pull_request.opened.json"), "pull_request.title", LONG)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhooks/github/",
            data=body,
            content_type="application/json",
            HTTP_X_GITHUB_EVENT="pull_request",
            HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
            HTTP_X_HUB_SIGNATURE_256="sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest(),
        )
    assert response.status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.error == "Invalid payload: pull_request.title: 1001 characters, at most 1000"
    assert not PullRequest.objects.exists()


@pytest.mark.django_db
def test_a_poison_pagerduty_delivery_is_a_400_that_writes_no_incident(client, settings):
    settings.PAGERDUTY_WEBHOOK_SECRET = "pd-secret"
    body = json.dumps(_with(_pd_event(), "event.data.created_at", "0001-01-01T00:00:00Z")).encode()
    response = client.post(
        "/webhooks/pagerduty/",
        data=body,
        content_type="application/json",
        HTTP_X_PAGERDUTY_SIGNATURE="v1=" + hmac.new(b"pd-secret", body, hashlib.sha256).hexdigest(),
    )
    assert response.status_code == 400
    assert "event.data.created_at: year 1 is outside 2000–2100" in response.json()["error"]
    assert not Incident.objects.exists()


# Which column each bounded record field is stored in: the record's limit must be the column's.
STORED_IN = {
    (vcs_records.UserRecord, "login"): ("reviews.Identity", "value"),
    (vcs_records.UserRecord, "external_id"): ("reviews.Identity", "external_id"),
    (vcs_records.UserRecord, "name"): ("reviews.Identity", "display_name"),
    (vcs_records.UserRecord, "email"): ("reviews.Identity", "value"),
    (vcs_records.GitUserRecord, "name"): ("reviews.Person", "display_name"),
    (vcs_records.GitUserRecord, "email"): ("reviews.Identity", "value"),
    (vcs_records.RepositoryRecord, "external_id"): ("reviews.Repository", "external_id"),
    (vcs_records.RepositoryRecord, "full_path"): ("reviews.Repository", "full_path"),
    (vcs_records.RepositoryRecord, "default_branch"): ("reviews.Repository", "default_branch"),
    (vcs_records.RepositoryRecord, "web_url"): ("reviews.Repository", "web_url"),
    (vcs_records.ChangedFileRecord, "path"): ("reviews.ChangedFile", "path"),
    (vcs_records.ChangedFileRecord, "status"): ("reviews.ChangedFile", "status"),
    (vcs_records.ChangedFileRecord, "previous_path"): ("reviews.ChangedFile", "previous_path"),
    (vcs_records.PullRequestRecord, "external_id"): ("reviews.PullRequest", "external_id"),
    (vcs_records.PullRequestRecord, "title"): ("reviews.PullRequest", "title"),
    (vcs_records.PullRequestRecord, "base_ref"): ("reviews.PullRequest", "base_ref"),
    (vcs_records.PullRequestRecord, "head_ref"): ("reviews.PullRequest", "head_ref"),
    (vcs_records.PullRequestRecord, "head_sha"): ("reviews.PullRequest", "head_sha"),
    (vcs_records.PullRequestRecord, "merge_commit_sha"): ("reviews.PullRequest", "merge_commit_sha"),
    (vcs_records.PullRequestRecord, "web_url"): ("reviews.PullRequest", "web_url"),
    (vcs_records.ReviewRecord, "external_id"): ("reviews.Review", "external_id"),
    (vcs_records.ReviewRecord, "commit_sha"): ("reviews.Review", "commit_sha"),
    (vcs_records.CommentRecord, "external_id"): ("reviews.Comment", "external_id"),
    (vcs_records.CommentRecord, "path"): ("reviews.Comment", "path"),
    (vcs_records.CommitRecord, "sha"): ("reviews.Commit", "sha"),
    (vcs_records.StatusRecord, "sha"): ("reviews.CommitStatus", "sha"),
    (vcs_records.StatusRecord, "context"): ("reviews.CommitStatus", "context"),
    (vcs_records.StatusRecord, "description"): ("reviews.CommitStatus", "description"),
    (vcs_records.StatusRecord, "target_url"): ("reviews.CommitStatus", "target_url"),
    (vcs_records.StatusRecord, "external_id"): ("reviews.CommitStatus", "external_id"),
    (vcs_records.StatusRecord, "source"): ("reviews.CommitStatus", "source"),
    (vcs_records.DeploymentRecord, "external_id"): ("telemetry.Deployment", "external_id"),
    (vcs_records.DeploymentRecord, "environment"): ("telemetry.Deployment", "environment"),
    (vcs_records.DeploymentRecord, "sha"): ("telemetry.Deployment", "sha"),
    (vcs_records.DeploymentRecord, "status"): ("telemetry.Deployment", "status"),
    (vcs_records.DeploymentRecord, "ref"): ("telemetry.Deployment", "ref"),
    (vcs_records.DeploymentRecord, "url"): ("telemetry.Deployment", "url"),
    (vcs_records.ProtectionRuleRecord, "environment"): ("telemetry.DeployCheck", "environment"),
    (vcs_records.ProtectionRuleRecord, "sha"): ("telemetry.DeployCheck", "sha"),
    (vcs_records.ProtectionRuleRecord, "callback_url"): ("telemetry.DeployCheck", "callback_url"),
    (vcs_records.ProtectionRuleRecord, "ref"): ("telemetry.Deployment", "ref"),
    (vcs_records.WebhookEvent, "ref"): ("reviews.PullRequest", "base_ref"),
    (vcs_records.InstallationRecord, "account_login"): ("reviews.AppInstallation", "account_login"),
    (vcs_records.InstallationRecord, "account_type"): ("reviews.AppInstallation", "account_type"),
    (vcs_records.InstallationRecord, "repository_selection"): ("reviews.AppInstallation", "repository_selection"),
    (vcs_records.InstallationRecord, "suspended_by"): ("reviews.AppInstallation", "suspended_by"),
    (vcs_records.InstallationEvent, "sender"): ("reviews.AppInstallation", "suspended_by"),
    (incident_records.IncidentRecord, "source"): ("telemetry.Incident", "source"),
    (incident_records.IncidentRecord, "external_id"): ("telemetry.Incident", "external_id"),
    (incident_records.IncidentRecord, "title"): ("telemetry.Incident", "title"),
    (incident_records.IncidentRecord, "url"): ("telemetry.Incident", "url"),
}


def test_every_bounded_record_field_has_its_columns_limit():
    bounded = {
        (record, field.name): field.metadata["max_length"]
        for module in (vcs_records, incident_records)
        for record in vars(module).values()
        if dataclasses.is_dataclass(record)
        for field in dataclasses.fields(record)
        if "max_length" in field.metadata
    }
    assert set(bounded) == set(STORED_IN)
    for (record, name), (model, column) in STORED_IN.items():
        expected = apps.get_model(model)._meta.get_field(column).max_length
        assert bounded[record, name] == expected, f"{record.__name__}.{name} vs {model}.{column}"
