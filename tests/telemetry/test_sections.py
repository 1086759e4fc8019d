"""Telemetry's sections on the review side's pages: DORA tiles and incidents with suspects on the team page,
deployments and suspicions on the pull request page; the team page's query count does not grow with them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.models import Membership
from telemetry.models import DeploymentChange, SuspectChange
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
def shop(client):
    team = TeamFactory(slug="shop", name="Shop")
    user = User.objects.create_user("member", password="pw")
    MembershipFactory(team=team, person=PersonFactory(user=user), role=Membership.Role.MEMBER)
    client.force_login(user)
    repository = RepositoryFactory(team=team)
    service = ServiceFactory(team=team, name="Checkout")
    return team, repository, service


def _incident_with_suspect(repository, service, index: int):
    now = timezone.now()
    pull_request = PullRequestFactory(
        repository=repository, title=f"Risky change {index}", state="merged", merged_at=now - dt.timedelta(days=2)
    )
    deployment = DeploymentFactory(service=service, finished_at=now - dt.timedelta(days=1, hours=index))
    DeploymentChange.objects.create(
        deployment=deployment, commit=CommitFactory(repository=repository), pull_request=pull_request
    )
    incident = IncidentFactory(title=f"Checkout down {index}", started_at=now - dt.timedelta(hours=20 - index))
    incident.services.add(service)
    SuspectChange.objects.create(
        incident=incident, deployment=deployment, pull_request=pull_request, score=42.0, rank=1,
        reasons=[{"factor": "recency", "points": 25.0, "text": "deployed 4 h before the incident started"}],
    )  # fmt: skip
    return pull_request


def test_team_page_shows_dora_tiles_and_incidents_with_their_suspects(client, shop):
    team, repository, service = shop
    _incident_with_suspect(repository, service, 1)
    page = client.get("/teams/shop/").content.decode()
    assert "Delivery (DORA)" in page
    assert 'data-metric="change-failure-rate"' in page
    assert "Checkout down 1" in page
    assert "Risky change 1" in page
    assert "deployed 4 h before the incident started (25)" in page
    assert "two or more approvals" in page
    # The definitions say what `frequency_band` and `pairing_partners` compute.
    assert "elite: the median whole week has more deployments than days, over 7" in page
    assert "Whole weeks are 7-day spans from the period's start" in page
    assert "from 30 minutes before its first commit to its last" in page


def test_pull_request_page_shows_where_it_shipped_and_its_suspicions(client, shop):
    team, repository, service = shop
    pull_request = _incident_with_suspect(repository, service, 1)
    page = client.get(f"/pulls/{pull_request.pk}/").content.decode()
    assert "In production" in page
    assert "Checkout production" in page
    assert "Checkout down 1" in page


def test_team_page_queries_do_not_grow_with_incidents(client, shop):
    team, repository, service = shop
    _incident_with_suspect(repository, service, 1)
    with CaptureQueriesContext(connection) as small:
        client.get("/teams/shop/")
    for index in range(2, 12):
        _incident_with_suspect(repository, service, index)
    with CaptureQueriesContext(connection) as large:
        client.get("/teams/shop/")
    assert len(large.captured_queries) == len(small.captured_queries)


def test_team_page_labels_the_partial_week_and_says_why_a_link_found_nothing(client, shop):
    team, repository, service = shop
    DeploymentFactory(
        service=service,
        sha="a" * 40,
        finished_at=timezone.now() - dt.timedelta(days=1),
        link_method="graph",
        link_error="No pull request: the same commit (aaaaaaaaaaaa) as the previous deployment.",
    )
    page = client.get("/teams/shop/?days=30").content.decode()
    # 30 days: four whole weeks and two days that are not a whole week.
    assert "the band comes from the 4 whole weeks of the period" in page
    assert "the last 2 days are a partial week, counted in the rate and left out of the band" in page
    assert "No pull request: the same commit (aaaaaaaaaaaa) as the previous deployment." in page
    assert "* a partial week" in page
