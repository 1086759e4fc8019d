"""Policies over the API: read by the team, changed by its leads, validated with line numbers, simulated,
and overridden only by whom the policy allows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from reviews.models import Membership, Override, Policy
from reviews.services.tokens import api_token_create
from tests.factories import MembershipFactory, PersonFactory, PullRequestFactory, RepositoryFactory, TeamFactory

pytestmark = pytest.mark.django_db

GOOD = "rules:\n  - name: two reviewers\n    require: {approvals: 2}\n"


@pytest.fixture
def world():
    team, other = TeamFactory(slug="shop"), TeamFactory(slug="search")
    repository = RepositoryFactory(team=team)
    actors = {}
    for name, which, role in (
        ("lead", team, Membership.Role.LEAD),
        ("member", team, Membership.Role.MEMBER),
        ("other_lead", other, Membership.Role.LEAD),
    ):
        user = User.objects.create_user(name, password="pw")
        person = PersonFactory(display_name=name, user=user)
        MembershipFactory(team=which, person=person, role=role)
        actors[name] = user
    pull_request = PullRequestFactory(repository=repository, author=PersonFactory(), head_sha="a" * 40)
    return {"team": team, "other": other, "repository": repository, "pull_request": pull_request, **actors}


def as_user(user):
    client = APIClient()
    client.force_login(user)
    return client


def as_token(team):
    _, secret = api_token_create(name="ci", teams=[team])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_anonymous_gets_401(world):
    response = APIClient().get("/api/v1/teams/shop/policy")
    assert response.status_code == 401
    assert "error" in response.json()


def test_member_reads_the_default_policy_in_force(world):
    response = as_user(world["member"]).get("/api/v1/teams/shop/policy")
    assert response.status_code == 200
    assert response.json()["source"] == "default"
    assert "approvals: 1" in response.json()["document"]


def test_other_teams_policy_is_not_visible(world):
    assert as_user(world["other_lead"]).get("/api/v1/teams/shop/policy").status_code == 404
    assert as_token(world["other"]).get("/api/v1/teams/shop/policy").status_code == 404


def test_lead_changes_the_policy_and_the_repository_inherits_it(world):
    response = as_user(world["lead"]).put("/api/v1/teams/shop/policy", {"document": GOOD}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["source"] == "team"
    inherited = as_user(world["member"]).get(f"/api/v1/repositories/{world['repository'].pk}/policy").json()
    assert inherited == {**inherited, "document": GOOD, "source": "team"}


def test_member_and_other_lead_cannot_change_it(world):
    assert (
        as_user(world["member"]).put("/api/v1/teams/shop/policy", {"document": GOOD}, format="json").status_code == 403
    )
    response = as_user(world["other_lead"]).put("/api/v1/teams/shop/policy", {"document": GOOD}, format="json")
    assert response.status_code == 404
    assert not Policy.objects.exists()


def test_a_token_of_the_team_may_change_it(world):
    assert (
        as_token(world["team"]).put("/api/v1/teams/shop/policy", {"document": GOOD}, format="json").status_code == 200
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("rules:\n  - name: a\n    require: {approvals: 1\n", "line"),
        ("rules:\n  - name: a\n    requires: {approvals: 1}\n", "line 3"),
        ("rules:\n  - name: a\n    require: {approvals: two}\n", "line 3"),
        ('rules:\n  - name: a\n    if: {paths: ["re:payments/(v1"]}\n    require: {approvals: 1}\n', "line 3"),
        ("rules:\n  - name: a\n    require: {approvals: 5000}\n", "too large"),
    ],
    ids=["syntax", "unknown key", "wrong type", "bad regex", "absurd size"],
)
def test_bad_documents_are_refused_with_the_line_and_nothing_is_stored(world, document, expected):
    response = as_user(world["lead"]).put("/api/v1/teams/shop/policy", {"document": document}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid input."
    assert any(expected in message for message in body["fields"]["document"]), body
    assert not Policy.objects.exists()


def test_simulate_a_document_on_a_pull_request_has_no_side_effects(world):
    response = as_user(world["member"]).post(
        "/api/v1/policies/simulate", {"document": GOOD, "pull_request": world["pull_request"].pk}, format="json"
    )
    assert response.status_code == 200
    trace = response.json()
    assert trace["outcome"] == "pending"
    assert trace["summary"].startswith("Needs 2 approvals")
    assert not world["pull_request"].evaluations.exists()


def test_simulate_a_snapshot(world):
    snapshot = {
        "head_sha": "b" * 40,
        "now": "2026-11-26T00:00:00+00:00",
        "author": {"id": "1", "names": ["ada"]},
        "reviews": [
            {
                "id": "r1",
                "reviewer": {"id": "2", "names": ["bob"]},
                "state": "approved",
                "commit_sha": "b" * 40,
                "submitted_at": "2026-11-25T00:00:00+00:00",
            }
        ],
    }
    response = as_token(world["team"]).post("/api/v1/policies/simulate", {"snapshot": snapshot}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "approved"
    bad = as_token(world["team"]).post("/api/v1/policies/simulate", {"snapshot": {"head_sha": 5}}, format="json")
    assert bad.status_code == 400
    assert "snapshot" in bad.json()["fields"]


def test_simulate_needs_exactly_one_subject(world):
    response = as_user(world["member"]).post("/api/v1/policies/simulate", {"document": GOOD}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "Give either a pull_request id or a snapshot."


def test_lead_overrides_with_a_reason_and_a_followup_falls_due(world, django_capture_on_commit_callbacks):
    url = f"/api/v1/pulls/{world['pull_request'].pk}/override"
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(world["lead"]).post(url, {"reason": "Hotfix", "incident_reference": "INC-7"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["by"] == "lead"
    override = Override.objects.get()
    assert (override.followup_due_at - override.created_at).total_seconds() == 48 * 3600
    evaluation = world["pull_request"].evaluations.latest("evaluated_at")
    assert evaluation.outcome == "overridden"


def test_override_refused_for_members_tokens_and_empty_reasons(world):
    url = f"/api/v1/pulls/{world['pull_request'].pk}/override"
    assert as_user(world["member"]).post(url, {"reason": "please"}, format="json").status_code == 403
    assert as_token(world["team"]).post(url, {"reason": "please"}, format="json").status_code == 403
    response = as_user(world["lead"]).post(url, {"reason": ""}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["fields"]
    assert as_user(world["other_lead"]).post(url, {"reason": "x"}, format="json").status_code == 404
    assert not Override.objects.exists()
