"""One inbox for every provider's webhooks (reviews/inbox.py): receive → verify → store → claim → apply → finish.

The four views are adapters over the one path: each request's database work is pinned here per provider, so the
shared path can neither grow a query nor lose a step for one provider."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

from reviews.models import Connection, WebhookDelivery
from tests.conftest import FIXTURES_DIR

pytestmark = pytest.mark.django_db

GITHUB = Path(__file__).resolve().parent.parent / "fixtures" / "github"
T0 = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.GITHUB_WEBHOOK_SECRET = "gh-secret"
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"
    settings.PAGERDUTY_WEBHOOK_SECRET = "pd-secret"
    settings.OPSGENIE_WEBHOOK_TOKEN = "og-token"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }


def _hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _github(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = (GITHUB / "pull_request.opened.json").read_bytes()
    return body, {
        "HTTP_X_HUB_SIGNATURE_256": "sha256=" + _hmac("gh-secret", body),
        "HTTP_X_GITHUB_EVENT": "pull_request",
        "HTTP_X_GITHUB_DELIVERY": delivery,
    }


def _gitlab(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = (FIXTURES_DIR / "gitlab" / "mr_open_real.json").read_bytes()
    return body, {
        "HTTP_X_GITLAB_TOKEN": "gl-token",
        "HTTP_X_GITLAB_EVENT": "Merge Request Hook",
        "HTTP_X_GITLAB_EVENT_UUID": delivery,
    }


def _pagerduty(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": {
                "id": f"event-{delivery}",
                "event_type": "incident.triggered",
                "resource_type": "incident",
                "occurred_at": "2025-03-10T12:00:00Z",
                "data": {
                    "id": f"P-{delivery}",
                    "type": "incident",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "status": "triggered",
                    "created_at": "2025-03-10T12:00:00Z",
                    "title": "A little bump in the road",
                    "service": {"id": "PF9KMXH", "summary": "API Service", "type": "service_reference"},
                    "urgency": "high",
                },
            }
        }
    ).encode()
    return body, {"HTTP_X_PAGERDUTY_SIGNATURE": "v1=" + _hmac("pd-secret", body)}


def _opsgenie(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "action": "Create",
            "alert": {
                "alertId": f"alert-{delivery}",
                "message": "Checkout latency over 2 s",
                "createdAt": int(T0.timestamp() * 1000),
                "updatedAt": int(T0.timestamp() * 1_000_000_000),
                "priority": "P2",
            },
        }
    ).encode()
    return body, {"HTTP_X_TANDEM_TOKEN": "og-token"}


REQUESTS = {"github": _github, "gitlab": _gitlab, "pagerduty": _pagerduty, "opsgenie": _opsgenie}

# Queries of one request once the connections are known, per provider: (a new delivery, the same one again).
# GitHub and GitLab store the row in one statement and leave the rest to a worker; a duplicate is read back.
# PagerDuty and Opsgenie apply the incident before answering: store, claim, read the claimed row, the incident's
# upsert and its services, finish. Measured before the views became adapters over one inbox; they may only fall.
QUERY_BUDGETS = {"github": (1, 2), "gitlab": (1, 2), "pagerduty": (21, 2), "opsgenie": (20, 2)}


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def send(provider: str, delivery: str):
        body, headers = REQUESTS[provider](delivery)
        with django_capture_on_commit_callbacks(execute=False):
            return client.post(f"/webhooks/{provider}/", data=body, content_type="application/json", **headers)

    return send


@pytest.mark.parametrize("provider", REQUESTS)
def test_each_provider_stays_within_its_query_budget(post, provider, django_assert_max_num_queries):
    Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    Connection.objects.create(provider="gitlab", name="GitLab", base_url="https://gitlab.com")
    assert post(provider, "warm-up").status_code in {200, 201, 202}  # reads the connections once
    new, again = QUERY_BUDGETS[provider]
    with django_assert_max_num_queries(new):
        first = post(provider, "first")
    assert first.status_code in {201, 202}, first.content
    with django_assert_max_num_queries(again):
        second = post(provider, "first")
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert WebhookDelivery.objects.filter(provider=provider).count() == 2


@pytest.mark.parametrize("provider", REQUESTS)
def test_a_rejected_sender_costs_no_query_and_stores_nothing(client, provider, django_assert_num_queries):
    body, _ = REQUESTS[provider]("x")
    with django_assert_num_queries(0):
        response = client.post(f"/webhooks/{provider}/", data=body, content_type="application/json")
    assert response.status_code == 401
    assert "error" in response.json()
    assert not WebhookDelivery.objects.exists()
