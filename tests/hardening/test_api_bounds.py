"""Out-of-range times, dates and ids anywhere in the API are a 400 naming the field (404 for a path id), never a
500 and never a value a background task trips over later."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from reviews.models import Connection, Membership, Person, Repository, Team
from reviews.services.tokens import api_token_create
from telemetry.models import Service, ServiceRepository

pytestmark = pytest.mark.django_db

HUGE = "9" * 25


@pytest.fixture
def api(django_user_model):
    team = Team.objects.create(slug="payments", name="Payments")
    connection = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    repository = Repository.objects.create(connection=connection, external_id="1", full_path="acme/shop", team=team)
    service = Service.objects.create(slug="checkout", name="Checkout", team=team)
    ServiceRepository.objects.create(service=service, repository=repository)
    user = django_user_model.objects.create_user(username="lena", password="x")  # noqa: S106
    Membership.objects.create(team=team, person=Person.objects.create(display_name="Lena", user=user), role="lead")
    _, secret = api_token_create(name="ci", teams=[team])
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


INCIDENT = {"title": "Down", "external_id": "inc-1", "services": ["checkout"], "started_at": "2025-03-10T12:00:00Z"}
DEPLOYMENT = {"service": "checkout", "sha": "a" * 40, "status": "success", "external_id": "run-1"}

BAD_BODIES = [
    ("/api/v1/incidents", {**INCIDENT, "started_at": "0001-01-01T00:00:00Z"}, "started_at"),
    ("/api/v1/incidents", {**INCIDENT, "started_at": "0001-01-01T00:00:00+05:00"}, "started_at"),
    ("/api/v1/incidents", {**INCIDENT, "started_at": "9999-12-31T23:00:00-05:00"}, "started_at"),
    ("/api/v1/incidents", {**INCIDENT, "started_at": "1999-12-31"}, "started_at"),
    ("/api/v1/incidents", {**INCIDENT, "started_at": "2101-01-01T00:00:00Z"}, "started_at"),
    ("/api/v1/incidents", {**INCIDENT, "resolved_at": "2025-03-10T12:00:00+20:00"}, "resolved_at"),
    ("/api/v1/deployments", {**DEPLOYMENT, "finished_at": "0001-01-01T00:00:00Z"}, "finished_at"),
    ("/api/v1/deployments", {**DEPLOYMENT, "repository": "²"}, "repository"),
    ("/api/v1/deployments", {**DEPLOYMENT, "repository": HUGE}, "repository"),
    ("/api/v1/policies/simulate", {"pull_request": 2**70}, "pull_request"),
    ("/api/v1/policies/simulate", {"pull_request": "²"}, "pull_request"),
    ("/api/v1/pairing-sessions", {"participants": [{"person": "github:a"}], "repository": 2**70}, "repository"),
    ("/api/v1/pairing-sessions", {"participants": [{"person": 2**70}, {"person": "github:a"}]}, "participants"),
    ("/api/v1/pairing-sessions", {"participants": [{"person": "²"}, {"person": "github:a"}]}, "participants"),
    ("/api/v1/pairing-sessions", {"participants": [{"person": HUGE}, {"person": "github:a"}]}, "participants"),
    ("/api/v1/pairing-sessions", {"participants": [{"person": "github:a"}], "started_at": "0001-01-01"}, "started_at"),
]


@pytest.mark.parametrize(("url", "body", "field"), BAD_BODIES)
def test_an_out_of_range_value_in_a_body_is_a_400_naming_the_field(api, url, body, field):
    # json.dumps escapes what DRF's renderer cannot encode (a lone surrogate), as a real client's body would.
    response = api.post(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json().get("fields", {}), response.json()


BAD_QUERIES = [
    ("/api/v1/pulls?repository=" + HUGE, "repository"),
    ("/api/v1/pulls?author=" + HUGE, "author"),
    ("/api/v1/reviews?pull_request=" + HUGE, "pull_request"),
    ("/api/v1/pairing-sessions?repository=" + HUGE, "repository"),
    ("/api/v1/pairing-sessions?started_after=0001-01-01T00:00:00%2B05:00", "started_after"),
    ("/api/v1/deployments?since=0001-01-01", "since"),
    ("/api/v1/deployments?since=9999-12-31T23:59:59-10:00", "since"),
    ("/api/v1/teams/payments/pairing?since=0001-01-01", "since"),
    ("/api/v1/teams/payments/pairing?until=9999-12-31", "until"),
    ("/api/v1/suspects?incident=" + HUGE, "incident"),
    ("/api/v1/suspects?incident=%C2%B2", "incident"),
    ("/api/v1/teams/payments/dora?until=0001-01-01", "until"),
    ("/api/v1/teams/payments/dora?until=9999-12-31", "until"),
    ("/api/v1/teams/payments/dora?since=9999-12-31", "since"),
    ("/api/v1/teams/payments/dora?since=0001-01-01T00:00:00%2B05:00", "since"),
    ("/api/v1/teams/payments/dora?until=2025-03-10T12:00:00%2B20:00", "until"),
    ("/api/v1/services/checkout/dora?until=0001-01-01", "until"),
    ("/api/v1/services/checkout/dora?until=9999-12-31", "until"),
    ("/api/v1/services/checkout/dora?since=9999-12-31", "since"),
]


@pytest.mark.parametrize(("url", "field"), BAD_QUERIES)
def test_an_out_of_range_query_parameter_is_a_400_naming_it(api, url, field):
    response = api.get(url)
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert field in body.get("fields", body), body


@pytest.mark.parametrize(
    "url", [f"/api/v1/pulls/{HUGE}", f"/api/v1/incidents/{HUGE}", f"/api/v1/pairing-sessions/{HUGE}"]
)
def test_an_out_of_range_path_id_is_a_404(api, url):
    assert api.get(url).status_code == 404


def test_a_date_in_range_is_still_taken(api):
    response = api.post("/api/v1/incidents", {**INCIDENT, "started_at": "2025-03-10"}, format="json")
    assert response.status_code == 201, response.content[:300]


@pytest.mark.parametrize(
    "document",
    [
        "[" * 20_000 + "]" * 20_000,
        "{a: " * 10_000 + "1" + "}" * 10_000,
        "- " * 20_000 + "x",
        "rules:\n" + "- " * 100 + "x",
    ],
    ids=["flow sequences", "flow mappings", "block sequences", "just over the limit"],
)
def test_a_policy_document_nested_too_deep_is_a_clear_400(api, document):
    response = api.post("/api/v1/policies/simulate", {"document": document, "snapshot": {}}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "nests deeper than 64 levels" in response.content.decode()


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"])
def test_an_away_date_out_of_range_is_a_400_naming_it(api, day):
    person = Person.objects.get(display_name="Lena")
    response = api.put(f"/api/v1/people/{person.pk}/away", {"away_until": day}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "away_until" in response.json()["fields"], response.json()
    person.refresh_from_db()
    assert person.away_until is None


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/incidents", {**INCIDENT, "severity": "high\ud800"}),
        (
            "/api/v1/policies/simulate",
            {"document": 'rules:\n  - name: a\n    if: {paths: ["a\ud800"]}\n', "snapshot": {}},
        ),
    ],
    ids=["incident", "policy document"],
)
def test_a_lone_surrogate_echoed_in_a_refusal_is_no_500(url, body, api):
    # A lone surrogate is a valid JSON escape, not text: a 400 that names what was sent must still render.
    api.raise_request_exception = False
    response = api.post(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert json.loads(response.content)["error"]
