"""`POST /api/v1/deployments`: any CI/CD reports deployments; a retried report updates, never duplicates."""

from __future__ import annotations

import pytest

from telemetry.models import Deployment, DeploymentChange
from tests.telemetry.conftest import T0, hours, make_deployment, make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(actors, repository):
    return make_service("checkout", actors.team, [(repository, [])])


def report(client, **fields):
    body = {
        "service": "checkout",
        "environment": "Production",
        "sha": "a" * 40,
        "status": "success",
        "external_id": "run-1",
        "started_at": (T0 - hours(1)).isoformat(),
        "finished_at": T0.isoformat(),
        **fields,
    }
    return client.post("/api/v1/deployments", body, format="json")


def test_a_report_creates_a_deployment_then_a_retry_updates_it(actors, service, run_on_commit):
    client = actors.client("token")
    with run_on_commit():
        created = report(client, status="in_progress", finished_at=None)
    assert created.status_code == 201
    body = created.json()
    assert body["service"] == "checkout"
    assert body["environment"] == "production"
    assert body["repository"] == "acme/shop"  # the service's only repository
    assert body["status"] == "in_progress"
    assert body["finished_at"] is None

    with run_on_commit():
        updated = report(client)
    assert updated.status_code == 200
    assert updated.json()["id"] == body["id"]
    assert updated.json()["status"] == "success"
    assert Deployment.objects.count() == 1
    # A successful deployment is linked once the report is stored.
    assert Deployment.objects.get().changes_linked_at is not None


def test_a_successful_report_without_a_finish_time_finishes_now(actors, service):
    response = report(actors.client("token"), finished_at=None, started_at=None)
    assert response.status_code == 201
    assert response.json()["finished_at"] is not None


def test_the_same_external_id_from_another_source_is_another_deployment(actors, service):
    client = actors.client("token")
    assert report(client).status_code == 201
    assert report(client, source="argo").status_code == 201
    assert Deployment.objects.count() == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sha": "not-a-sha"}, "sha"),
        ({"status": "exploded"}, "status"),
        ({"service": ""}, "service"),
        ({"external_id": ""}, "external_id"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": T0.isoformat(), "finished_at": (T0 - hours(1)).isoformat()}, "finished_at"),
        ({"service": "no-such-service"}, "service"),
        ({"repository": "acme/elsewhere"}, "repository"),
        ({"environment": "  "}, "environment"),
    ],
)
def test_bad_input_is_a_clear_400(actors, service, fields, field):
    response = report(actors.client("token"), **fields)
    assert response.status_code == 400
    body = response.json()
    assert body["error"]
    assert field in body["fields"]
    assert Deployment.objects.count() == 0


def test_a_missing_field_is_named(actors, service):
    response = actors.client("token").post("/api/v1/deployments", {"service": "checkout"}, format="json")
    assert response.status_code == 400
    assert {"sha", "status", "external_id"} <= set(response.json()["fields"])


def test_another_teams_service_is_unknown_to_a_token(actors, service):
    response = report(actors.client("other_token"))
    assert response.status_code == 400
    assert "service" in response.json()["fields"]
    assert Deployment.objects.count() == 0


def test_another_team_cannot_take_over_an_external_id(actors, service):
    assert report(actors.client("token")).status_code == 201
    make_service("search-api", actors.other_team)
    response = report(actors.client("other_token"), service="search-api")
    assert response.status_code == 403
    assert Deployment.objects.get().service == service


def test_anonymous_callers_are_refused(actors, service):
    response = report(actors.client("anonymous"))
    assert response.status_code == 401
    assert Deployment.objects.count() == 0


def test_a_short_sha_is_made_whole_from_the_synced_commits(actors, service, history, run_on_commit):
    history.merge(1, at=T0 - hours(3))
    with run_on_commit():
        response = report(actors.client("token"), sha=history.head[:10])
    assert response.status_code == 201
    assert response.json()["sha"] == history.head
    assert DeploymentChange.objects.filter(pull_request__number=1).exists()


def test_a_repository_is_named_by_path_or_id(actors, service, repository):
    client = actors.client("token")
    assert report(client, repository="acme/shop").json()["repository"] == "acme/shop"
    assert report(client, repository=str(repository.pk), external_id="run-2").json()["repository"] == "acme/shop"


def test_deployments_are_listed_newest_first_with_filters_and_pages(actors, service):
    other = make_service("search-api", actors.other_team)
    for n in range(3):
        make_deployment(service, f"{n:040x}", at=T0 - hours(10 - n))
    make_deployment(service, "e" * 40, at=T0, environment="staging")
    make_deployment(other, "f" * 40, at=T0)
    client = actors.client("token")

    everything = client.get("/api/v1/deployments").json()
    assert everything["count"] == 4  # not the other team's
    assert [d["environment"] for d in everything["results"]][0] == "staging"

    production = client.get("/api/v1/deployments", {"environment": "production"}).json()
    assert [d["sha"][-1] for d in production["results"]] == ["2", "1", "0"]

    since = client.get("/api/v1/deployments", {"since": (T0 - hours(8.5)).isoformat()}).json()
    assert since["count"] == 2

    paged = client.get("/api/v1/deployments", {"page_size": 1, "page": 2}).json()
    assert paged["count"] == 4
    assert "next" in paged and "previous" in paged

    assert client.get("/api/v1/deployments", {"status": "nope"}).status_code == 400
    assert actors.client("other_token").get("/api/v1/deployments").json()["count"] == 1
