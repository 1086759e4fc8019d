"""`POST /api/v1/incidents` and `PATCH /api/v1/incidents/<id>`: idempotent by source + external id, validated
whole before anything is written, scoped to the caller's teams."""

from __future__ import annotations

import pytest

from telemetry.models import Incident
from tests.telemetry.conftest import T0, hours, make_incident, make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def services(actors):
    return make_service("checkout", actors.team), make_service("search-api", actors.other_team)


def report(client, **fields):
    body = {
        "title": "Checkout returns 500",
        "external_id": "INC-1",
        "services": ["checkout"],
        "severity": "sev2",
        "started_at": T0.isoformat(),
        **fields,
    }
    return client.post("/api/v1/incidents", body, format="json")


def test_a_report_creates_an_incident_and_a_retry_updates_it(actors, services, run_on_commit):
    client = actors.client("token")
    with run_on_commit():
        created = report(client)
    assert created.status_code == 201
    body = created.json()
    assert body["services"] == ["checkout"]
    assert body["status"] == "triggered"
    assert body["source"] == "api"
    assert Incident.objects.get().correlated_at is not None  # its suspects were ranked once it was stored

    updated = report(client, status="resolved", resolved_at=(T0 + hours(2)).isoformat(), title="Checkout down")
    assert updated.status_code == 200
    assert updated.json()["id"] == body["id"]
    incident = Incident.objects.get()
    assert (incident.title, incident.status, incident.resolved_at) == ("Checkout down", "resolved", T0 + hours(2))


def test_resolving_without_a_time_resolves_now(actors, services):
    response = report(actors.client("token"), status="resolved")
    assert response.status_code == 201
    assert response.json()["resolved_at"] is not None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"services": []}, "services"),
        ({"services": ["nope"]}, "services"),
        ({"services": ["search-api"]}, "services"),  # another team's service
        ({"severity": "catastrophic"}, "severity"),
        ({"started_at": "soon"}, "started_at"),
        ({"resolved_at": (T0 - hours(1)).isoformat()}, "resolved_at"),
        ({"external_id": ""}, "external_id"),
    ],
)
def test_bad_input_writes_nothing(actors, services, fields, field):
    response = report(actors.client("token"), **fields)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Incident.objects.count() == 0


def test_patch_changes_some_fields(actors, services, run_on_commit):
    incident = make_incident([services[0]], at=T0)
    client = actors.client("token")
    with run_on_commit():
        response = client.patch(
            f"/api/v1/incidents/{incident.pk}", {"status": "acknowledged", "severity": "sev1"}, format="json"
        )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["severity"]) == ("acknowledged", "sev1")
    assert Incident.objects.get().correlated_at is not None

    resolved = client.patch(f"/api/v1/incidents/{incident.pk}", {"status": "resolved"}, format="json").json()
    assert resolved["resolved_at"] is not None
    reopened = client.patch(f"/api/v1/incidents/{incident.pk}", {"status": "triggered"}, format="json").json()
    assert reopened["resolved_at"] is None


def test_a_bad_patch_writes_nothing(actors, services):
    incident = make_incident([services[0]], at=T0, title="Slow")
    client = actors.client("token")
    bad = client.patch(
        f"/api/v1/incidents/{incident.pk}",
        {"title": "Renamed", "resolved_at": (T0 - hours(3)).isoformat()},
        format="json",
    )
    assert bad.status_code == 400
    assert "resolved_at" in bad.json()["fields"]
    assert Incident.objects.get().title == "Slow"
    assert client.patch(f"/api/v1/incidents/{incident.pk}", {}, format="json").status_code == 400


def test_another_teams_incident_is_not_found(actors, services):
    incident = make_incident([services[1]], at=T0)
    client = actors.client("token")
    assert client.get(f"/api/v1/incidents/{incident.pk}").status_code == 404
    assert client.patch(f"/api/v1/incidents/{incident.pk}", {"status": "resolved"}, format="json").status_code == 404
    assert Incident.objects.get().status == "triggered"


def test_another_team_cannot_take_over_an_external_id(actors, services):
    assert report(actors.client("token")).status_code == 201
    response = report(actors.client("other_token"), services=["search-api"])
    assert response.status_code == 403
    assert list(Incident.objects.get().services.values_list("slug", flat=True)) == ["checkout"]


def test_incidents_are_listed_for_the_callers_teams(actors, services):
    make_incident([services[0]], at=T0 - hours(5), title="Old")
    make_incident([services[0]], at=T0, title="New", status="resolved", resolved_at=T0 + hours(1))
    make_incident([services[1]], at=T0, title="Theirs")
    shared = make_incident(list(services), at=T0 - hours(1), title="Shared")

    mine = actors.client("token").get("/api/v1/incidents").json()
    assert [i["title"] for i in mine["results"]] == ["New", "Shared", "Old"]
    resolved = actors.client("member").get("/api/v1/incidents", {"status": "resolved"}).json()
    assert [i["title"] for i in resolved["results"]] == ["New"]
    theirs = actors.client("other_token").get("/api/v1/incidents", {"service": "search-api"}).json()
    assert [i["title"] for i in theirs["results"]] == ["Theirs", "Shared"]
    assert actors.client("anonymous").get("/api/v1/incidents").status_code == 401
    detail = actors.client("member").get(f"/api/v1/incidents/{shared.pk}").json()
    assert detail["services"] == ["checkout", "search-api"]
    assert detail["suspects"] == []


def _slugs(incident: Incident) -> set[str]:
    return set(incident.services.values_list("slug", flat=True))


@pytest.mark.parametrize("who", ["token", "lead"])
def test_a_patch_replaces_only_the_callers_services_of_a_shared_incident(actors, services, who):
    shared = make_incident(list(services), at=T0, title="Shared")
    make_service("payments-web", actors.team)
    response = actors.client(who).patch(f"/api/v1/incidents/{shared.pk}", {"services": ["payments-web"]}, format="json")
    assert response.status_code == 200, response.content
    assert _slugs(shared) == {"payments-web", "search-api"}
    assert response.json()["services"] == ["payments-web", "search-api"]
    # The other team still sees the incident it shares.
    assert actors.client("other_token").get(f"/api/v1/incidents/{shared.pk}").status_code == 200


def test_reporting_a_shared_incident_again_keeps_the_other_teams_services(actors, services):
    shared = make_incident(list(services), at=T0, title="Shared")
    response = report(actors.client("token"), external_id=shared.external_id, title="Mine now")
    assert response.status_code == 200, response.content
    assert _slugs(shared) == {"checkout", "search-api"}
    again = report(actors.client("other_token"), external_id=shared.external_id, services=["search-api"])
    assert again.status_code == 200, again.content
    assert _slugs(shared) == {"checkout", "search-api"}


def test_a_superuser_replaces_every_service_of_an_incident(actors, services, django_user_model):
    shared = make_incident(list(services), at=T0, title="Shared")
    client = actors.client("anonymous")
    client.force_authenticate(user=django_user_model.objects.create_superuser("root", password="x"))  # noqa: S106
    response = client.patch(f"/api/v1/incidents/{shared.pk}", {"services": ["checkout"]}, format="json")
    assert response.status_code == 200, response.content
    assert _slugs(shared) == {"checkout"}
