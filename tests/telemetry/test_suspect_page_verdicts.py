"""A lead confirms or rejects a suspect change from the team page: the API's permission and service, by form."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from reviews.models import AuditEvent, Membership, Team
from telemetry.models import Deployment, DeploymentChange, SuspectChange, SuspectVerdict
from tests.factories import (
    CommitFactory,
    DeploymentFactory,
    IncidentFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ServiceFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    team, other = TeamFactory(slug="shop", name="Shop"), TeamFactory(slug="search", name="Search")
    users = {}
    for name, which, role in (
        ("lead", team, Membership.Role.LEAD),
        ("member", team, Membership.Role.MEMBER),
        ("other_lead", other, Membership.Role.LEAD),
    ):
        users[name] = User.objects.create_user(name, password="pw")
        MembershipFactory(team=which, person=PersonFactory(display_name=name, user=users[name]), role=role)
    repository = RepositoryFactory(team=team)
    service = ServiceFactory(team=team, name="Checkout")
    now = timezone.now()
    pull_request = PullRequestFactory(repository=repository, state="merged", merged_at=now - dt.timedelta(days=2))
    deployment = DeploymentFactory(service=service, finished_at=now - dt.timedelta(days=1))
    DeploymentChange.objects.create(
        deployment=deployment, commit=CommitFactory(repository=repository), pull_request=pull_request
    )
    incident = IncidentFactory(title="Checkout down", started_at=now - dt.timedelta(hours=20))
    incident.services.add(service)
    suspect = SuspectChange.objects.create(
        incident=incident, deployment=deployment, pull_request=pull_request, score=42.0, rank=1
    )
    return {**users, "suspect": suspect}


def _signed_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_a_lead_confirms_a_suspect_from_the_team_page(world):
    client, suspect = _signed_in(world["lead"]), world["suspect"]
    page = client.get("/teams/shop/").content.decode()
    assert f'data-suspect="{suspect.pk}" data-verdict="confirm"' in page
    response = client.post(f"/suspects/{suspect.pk}/confirm/", {"csrfmiddlewaretoken": _csrf(page)})
    assert response.status_code == 302
    assert response["Location"] == f"/teams/shop/#incident-{suspect.incident_id}"
    suspect.refresh_from_db()
    assert suspect.verdict == "confirmed" and suspect.decided_by.display_name == "lead"
    assert Deployment.objects.get(pk=suspect.deployment_id).caused_incident
    assert AuditEvent.objects.filter(action="suspect.verdict", source="web").count() == 1
    page = client.get("/teams/shop/").content.decode()
    assert "confirmed cause" in page and 'data-verdict="confirm"' not in page
    client.post(f"/suspects/{suspect.pk}/reject/", {"csrfmiddlewaretoken": _csrf(page)})
    suspect.refresh_from_db()
    assert suspect.verdict == "rejected"
    assert SuspectVerdict.objects.filter(suspect=suspect).count() == 2


def test_a_member_who_does_not_lead_is_refused_and_sees_no_buttons(world):
    client, suspect = _signed_in(world["member"]), world["suspect"]
    page = client.get("/teams/shop/").content.decode()
    assert "data-verdict=" not in page
    response = client.post(f"/suspects/{suspect.pk}/confirm/", {"csrfmiddlewaretoken": _csrf(page)})
    assert response.status_code == 403
    suspect.refresh_from_db()
    assert suspect.verdict == "suspected"


def test_another_teams_lead_finds_nothing(world):
    client, suspect = _signed_in(world["other_lead"]), world["suspect"]
    token = _csrf(client.get("/teams/search/").content.decode())
    assert client.post(f"/suspects/{suspect.pk}/confirm/", {"csrfmiddlewaretoken": token}).status_code == 404


def test_the_form_needs_its_csrf_token_and_a_post(world):
    client, suspect = _signed_in(world["lead"]), world["suspect"]
    assert client.post(f"/suspects/{suspect.pk}/confirm/").status_code == 403
    assert client.get(f"/suspects/{suspect.pk}/confirm/").status_code == 405
    suspect.refresh_from_db()
    assert suspect.verdict == "suspected"


def test_an_incident_shared_with_another_team_offers_its_lead_no_buttons_on_our_suspect(world):
    """An incident that hit both teams' services shows on both team pages; only the lead of the team whose
    deployment the suspect is may decide on it, so the other team's lead sees it without buttons that would 403."""
    suspect = world["suspect"]
    suspect.incident.services.add(ServiceFactory(team=Team.objects.get(slug="search"), name="Search"))
    client = _signed_in(world["other_lead"])
    page = client.get("/teams/search/").content.decode()
    assert "Checkout down" in page
    assert f'data-suspect="{suspect.pk}"' not in page
    assert client.post(f"/suspects/{suspect.pk}/confirm/", {"csrfmiddlewaretoken": _csrf(page)}).status_code == 403
    suspect.refresh_from_db()
    assert suspect.verdict == "suspected"
