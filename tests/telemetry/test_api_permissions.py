"""Who may read what: every telemetry endpoint is scoped to the caller's teams (visible_teams). A token of the team
and its members read; another team's token and an outsider see nothing of it; anonymous callers are refused."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from telemetry.models import SuspectChange
from tests.telemetry.conftest import T0, hours, make_deployment, make_incident, make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(actors, repository, history):
    service = make_service("checkout", actors.team, [(repository, [])])
    pull_request = history.merge(1, at=T0 - hours(3))
    deployment = make_deployment(service, history.head, at=T0 - hours(2), repository=repository)
    incident = make_incident([service], at=T0)
    suspect = SuspectChange.objects.create(
        incident=incident, deployment=deployment, pull_request=pull_request, score=1, rank=1
    )
    return {"deployment": deployment, "incident": incident, "suspect": suspect}


LISTS = ["/api/v1/deployments", "/api/v1/incidents", "/api/v1/suspects"]


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(
    ("who", "visible"), [("token", 1), ("member", 1), ("lead", 1), ("other_token", 0), ("outsider", 0)]
)
def test_lists_show_only_the_callers_teams(actors, rows, url, who, visible):
    response = actors.client(who).get(url)
    assert response.status_code == 200
    assert response.json()["count"] == visible


@pytest.mark.parametrize(
    "url", [*LISTS, "/api/v1/teams/payments/dora", "/api/v1/services/checkout/dora", "/api/v1/incidents/1"]
)
def test_anonymous_callers_are_refused(actors, rows, url):
    response = actors.client("anonymous").get(url)
    assert response.status_code == 401
    assert response.json()["error"]


def test_an_unknown_token_is_refused(actors, rows):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer tdm_not-a-token")
    assert client.get("/api/v1/deployments").status_code == 401


@pytest.mark.parametrize(("who", "status"), [("token", 200), ("member", 200), ("other_token", 404), ("outsider", 404)])
def test_an_incident_and_the_dora_pages_are_404_outside_the_team(actors, rows, who, status):
    client = actors.client(who)
    assert client.get(f"/api/v1/incidents/{rows['incident'].pk}").status_code == status
    assert client.get("/api/v1/teams/payments/dora").status_code == status
    assert client.get("/api/v1/services/checkout/dora").status_code == status


def test_a_superuser_sees_every_team(actors, rows):
    admin = get_user_model().objects.create_superuser(username="root", password="x")  # noqa: S106
    client = APIClient()
    client.force_authenticate(user=admin)
    for url in LISTS:
        assert client.get(url).json()["count"] == 1
    assert client.get("/api/v1/teams/search/dora").status_code == 200
