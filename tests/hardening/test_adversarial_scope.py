"""Adversarial review of issue 17's steering: a NUL character in any parameter of the team page, its drill-down,
its CSV or the health API is a clear 400 naming the parameter, never a 500 from PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import Membership, Repository
from tests.factories import (
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(client):
    team = TeamFactory(slug="shop", name="Shop")
    user = User.objects.create_user("lead", password="pw")
    MembershipFactory(team=team, person=PersonFactory(display_name="lead", user=user), role=Membership.Role.LEAD)
    RepositoryFactory(team=team, full_path="acme/shop")
    client.force_login(user)
    return user


NUL_QUERIES = ["label=a%00b", "author_team=sh%00op", "metric=violation&reason=x%00"]


@pytest.mark.parametrize("query", NUL_QUERIES)
@pytest.mark.parametrize("path", ["/teams/shop/", "/teams/shop/pulls/", "/teams/shop/pulls.csv"])
def test_a_nul_in_a_page_parameter_is_a_message_not_a_500(client, lead, path, query):
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize("query", NUL_QUERIES[:2])
def test_a_nul_in_an_api_filter_is_a_400_naming_it(lead, query):
    api = APIClient()
    api.force_authenticate(user=lead)
    response = api.get(f"/api/v1/teams/shop/health?{query}")
    assert response.status_code == 400
    field = query.split("=")[0]
    assert field in response.json()["fields"]


@pytest.mark.parametrize("prefix", ["\t", "\r", " \t"])
def test_a_title_or_name_that_starts_a_formula_after_a_tab_or_return_is_neutralised_in_the_csv(client, lead, prefix):
    """OWASP's list of formula triggers includes a leading tab and carriage return, not only = + - @."""
    ready = timezone.now() - dt.timedelta(days=3)
    PullRequestFactory(
        repository=Repository.objects.get(full_path="acme/shop"), state="merged", created_at=ready, ready_at=ready,
        merged_at=ready + dt.timedelta(hours=5), additions=4, deletions=0,
        title=f'{prefix}=HYPERLINK("http://evil.example","x")', author=PersonFactory(display_name=f"{prefix}@SUM(1)"),
    )  # fmt: skip
    response = client.get("/teams/shop/pulls.csv?metric=merged")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0]["Title"].startswith("'")
    assert rows[0]["Author"].startswith("'")


@pytest.mark.parametrize("metric", ["rubber_stamps", "reviews_given", "waiting_on"])
def test_a_reviewer_filter_naming_another_teams_person_never_shows_their_name(client, lead, metric):
    """`reviewer=<id>` on a drill-down names the person in the heading: an id of someone who neither belongs to the
    team nor reviewed (or was asked to review) any of its changes is refused, so ids cannot be walked for names."""
    outsider = PersonFactory(display_name="Outsider Olga")
    MembershipFactory(team=TeamFactory(slug="search"), person=outsider)
    response = client.get(f"/teams/shop/pulls/?metric={metric}&reviewer={outsider.pk}")
    assert response.status_code == 400
    assert "Outsider Olga" not in response.content.decode()


def test_a_reviewer_from_outside_the_team_who_reviewed_its_change_can_still_be_drilled_into(client, lead):
    outsider = PersonFactory(display_name="Visiting Vera")
    MembershipFactory(team=TeamFactory(slug="search"), person=outsider)
    ready = timezone.now() - dt.timedelta(days=3)
    pull_request = PullRequestFactory(
        repository=Repository.objects.get(full_path="acme/shop"), state="merged", created_at=ready, ready_at=ready,
        merged_at=ready + dt.timedelta(hours=5), additions=4, deletions=0,
    )  # fmt: skip
    ReviewFactory(pull_request=pull_request, reviewer=outsider, submitted_at=ready + dt.timedelta(hours=1))
    response = client.get(f"/teams/shop/pulls/?metric=reviews_given&reviewer={outsider.pk}")
    assert response.status_code == 200
    assert "Visiting Vera" in response.content.decode()
