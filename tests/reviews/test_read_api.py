"""The read API: scoped to the caller's teams, paginated and filterable, with the verdict and the health
figures the team page shows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import ApiToken, Membership, PolicyEvaluation
from reviews.services.audit import SYSTEM
from reviews.services.tokens import api_token_create, api_token_revoke
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
def world():
    shop, search = TeamFactory(slug="shop"), TeamFactory(slug="search")
    member = User.objects.create_user("member", password="pw")
    MembershipFactory(team=shop, person=PersonFactory(display_name="Member", user=member), role=Membership.Role.MEMBER)
    ours = PullRequestFactory(repository=RepositoryFactory(team=shop), title="Ours", state="open")
    PolicyEvaluation.objects.create(pull_request=ours, head_sha=ours.head_sha, outcome="pending", description="0 of 1")
    theirs = PullRequestFactory(repository=RepositoryFactory(team=search), title="Theirs")
    ReviewFactory(pull_request=ours)
    ReviewFactory(pull_request=theirs)
    return {"shop": shop, "search": search, "member": member, "ours": ours, "theirs": theirs}


def token_client(team):
    _, secret = api_token_create(name="t", teams=[team])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.parametrize(
    "url", ["/api/v1/teams", "/api/v1/people", "/api/v1/repositories", "/api/v1/pulls", "/api/v1/reviews"]
)
def test_nothing_answers_anonymously(world, url):
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication credentials were not provided."}


def test_a_token_reads_only_its_teams_data(world):
    client = token_client(world["shop"])
    assert [t["slug"] for t in client.get("/api/v1/teams").json()["results"]] == ["shop"]
    pulls = client.get("/api/v1/pulls").json()["results"]
    assert [p["title"] for p in pulls] == ["Ours"]
    assert pulls[0]["verdict"]["outcome"] == "pending"
    assert client.get(f"/api/v1/pulls/{world['theirs'].pk}").status_code == 404
    assert client.get("/api/v1/teams/search/health").status_code == 404
    assert len(client.get("/api/v1/reviews").json()["results"]) == 1


def test_a_token_of_another_team_cannot_read_ours(world):
    client = token_client(world["search"])
    assert client.get(f"/api/v1/pulls/{world['ours'].pk}").status_code == 404
    assert [p["title"] for p in client.get("/api/v1/pulls").json()["results"]] == ["Theirs"]


def test_an_unknown_token_is_401(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer tdm_not-a-token")
    response = client.get("/api/v1/teams")
    assert response.status_code == 401
    assert response.json()["error"] == "Unknown or revoked API token."


def test_a_token_records_its_last_use_and_is_refused_once_revoked(world):
    token, secret = api_token_create(name="ci", teams=[world["shop"]])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert token.last_used_at is None
    assert client.get("/api/v1/teams").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None  # what the admin shows a lead deciding whether a token is still needed

    long_ago = timezone.now() - dt.timedelta(hours=2)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=long_ago)
    assert client.get("/api/v1/pulls").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at > long_ago  # each use after a quiet minute moves it

    api_token_revoke(token=token, actor=SYSTEM)
    last_use = ApiToken.objects.get(pk=token.pk).last_used_at
    for response in (
        client.get("/api/v1/teams"),
        client.get(f"/api/v1/pulls/{world['ours'].pk}"),
        client.post("/api/v1/deployments", {"service": "x"}, format="json"),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "Unknown or revoked API token."
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == last_use  # a refused call is not a use


def test_filters_on_pull_requests(world):
    client = token_client(world["shop"])
    assert client.get("/api/v1/pulls?state=merged").json()["count"] == 0
    assert client.get("/api/v1/pulls?state=open&team=shop").json()["count"] == 1
    bad = client.get("/api/v1/pulls?merged_after=yesterday")
    assert bad.status_code == 400
    assert "merged_after" in bad.json()["fields"]


def test_health_has_the_figures_of_the_page(world, client):
    now = timezone.now()
    repository = world["ours"].repository
    for hours in (2, 4):
        pr = PullRequestFactory(
            repository=repository, state="merged", created_at=now - dt.timedelta(days=2),
            ready_at=now - dt.timedelta(days=2), merged_at=now - dt.timedelta(days=1), additions=10, deletions=2,
        )  # fmt: skip
        ReviewFactory(pull_request=pr, submitted_at=now - dt.timedelta(days=2) + dt.timedelta(hours=hours))
    api = token_client(world["shop"]).get("/api/v1/teams/shop/health?days=30").json()
    assert api["current"]["merged"] == 2
    assert api["current"]["time_to_first_review"] == {"count": 2, "median_hours": 3.0, "p90_hours": 3.8}
    assert api["current"]["coverage"] == {"reviewed": 2, "paired_only": 0, "neither": 0}
    assert api["current"]["size_buckets"]["s"] == 2
    client.force_login(world["member"])
    page = client.get("/teams/shop/").content.decode()
    assert '<div class="value">2</div><div class="label">merged</div>' in page
    assert token_client(world["shop"]).get("/api/v1/teams/shop/health?days=abc").status_code == 400
    for odd in ("1_0", "\uff11\uff10", "+10", "10.0"):  # int() reads the first three; a period is ASCII digits
        refused = token_client(world["shop"]).get("/api/v1/teams/shop/health", {"days": odd})
        assert refused.status_code == 400 and "whole number of days" in str(refused.json()), odd


def test_openapi_schema_and_docs_are_served_to_signed_in_callers_only(world, client):
    assert client.get("/api/schema/").status_code in {401, 403}
    client.force_login(world["member"])
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/pulls" in schema.content
    assert b"apiToken" in schema.content
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "merged_before=0214-09-22T08:19:07%2B17:10",
        "merged_after=0163-03-23T11:33:44-03:15",
        "updated_after=2030-01-01T00:00:00%2B16:00",
        "merged_before=9999-12-31T00:00:00Z",
    ],
)
def test_a_moment_out_of_range_in_a_filter_is_a_400_naming_it(world, query):
    response = token_client(world["shop"]).get(f"/api/v1/pulls?{query}")
    assert response.status_code == 400, response.content
    assert query.split("=")[0] in str(response.json())
