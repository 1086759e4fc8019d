"""The DORA keys per week: what the team page's delivery charts draw."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reviews.models import Membership
from telemetry.models import SuspectChange
from telemetry.selectors.dora import team_dora
from tests.factories import (
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


def test_weekly_keys_count_each_week_on_its_own():
    team = TeamFactory(slug="shop")
    service = ServiceFactory(team=team)
    monday = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    failed = DeploymentFactory(service=service, finished_at=monday + dt.timedelta(days=1))
    DeploymentFactory(service=service, finished_at=monday + dt.timedelta(days=2))
    DeploymentFactory(service=service, finished_at=monday + dt.timedelta(days=8))
    incident = IncidentFactory(
        started_at=monday + dt.timedelta(days=1, hours=1), resolved_at=monday + dt.timedelta(days=1, hours=4)
    )
    incident.services.add(service)
    pull_request = PullRequestFactory(repository=RepositoryFactory(team=team))
    SuspectChange.objects.create(
        incident=incident, deployment=failed, pull_request=pull_request, score=1, rank=1, verdict="confirmed"
    )
    report = team_dora(team=team, since=monday, until=monday + dt.timedelta(days=10))
    first, second = report.weekly
    assert (first["week"], first["partial"], first["deployments"], first["failed"]) == (monday.date(), False, 2, 1)
    assert first["change_failure_rate"] == 50
    assert first["time_to_restore"] == 3.0
    assert (second["partial"], second["days"], second["deployments"], second["change_failure_rate"]) == (
        True,
        3.0,
        1,
        0,
    )
    assert second["time_to_restore"] is None


def test_team_page_draws_the_four_keys_per_week(client):
    team = TeamFactory(slug="shop", name="Shop")
    user = User.objects.create_user("member", password="pw")
    MembershipFactory(team=team, person=PersonFactory(user=user), role=Membership.Role.MEMBER)
    DeploymentFactory(service=ServiceFactory(team=team), finished_at=timezone.now() - dt.timedelta(days=2))
    client.force_login(user)
    page = client.get("/teams/shop/").content.decode()
    for title in (
        "Production deployments per week",
        "Median lead time for changes per week",
        "Change failure rate per week",
        "Median time to restore per week",
    ):
        assert f"<caption>{title}</caption>" in page
