"""Adversarial review of issue 17's steering: a NUL character in any parameter of the team page, its drill-down,
its CSV or the health API is a clear 400 naming the parameter, never a 500 from PostgreSQL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from reviews.models import Membership
from tests.factories import MembershipFactory, PersonFactory, RepositoryFactory, TeamFactory

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
