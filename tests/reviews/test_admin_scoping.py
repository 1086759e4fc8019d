"""The admin for leads: a lead sees and changes only their teams' rows; superusers see everything."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from reviews.models import ApiToken, Membership, Policy
from tests.factories import (
    IdentityFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    shop, search = TeamFactory(slug="shop", name="Shop"), TeamFactory(slug="search", name="Search")
    users = {}
    for name, team, role, staff in (
        ("lead", shop, Membership.Role.LEAD, True),
        ("member", shop, Membership.Role.MEMBER, False),
        ("other_lead", search, Membership.Role.LEAD, True),
    ):
        user = User.objects.create_user(name, password="pw", is_staff=staff)
        MembershipFactory(team=team, person=PersonFactory(display_name=name, user=user), role=role)
        users[name] = user
    users["root"] = User.objects.create_superuser("root", password="pw")
    ours = PullRequestFactory(repository=RepositoryFactory(team=shop), title="Our change")
    theirs = PullRequestFactory(repository=RepositoryFactory(team=search), title="Their change")
    return {"shop": shop, "search": search, "ours": ours, "theirs": theirs, **users}


def test_lead_sees_only_their_teams_pull_requests(client, world):
    client.force_login(world["lead"])
    page = client.get("/admin/reviews/pullrequest/").content.decode()
    assert "Our change" in page
    assert "Their change" not in page
    assert client.get(f"/admin/reviews/pullrequest/{world['ours'].pk}/change/").status_code == 200
    assert client.get(f"/admin/reviews/pullrequest/{world['theirs'].pk}/change/").status_code == 302  # "doesn't exist"


def test_lead_of_another_team_cannot_open_ours(client, world):
    client.force_login(world["other_lead"])
    response = client.get(f"/admin/reviews/pullrequest/{world['ours'].pk}/change/", follow=True)
    assert "Our change" not in response.content.decode()


def test_superuser_sees_everything(client, world):
    client.force_login(world["root"])
    page = client.get("/admin/reviews/pullrequest/").content.decode()
    assert "Our change" in page and "Their change" in page


def test_members_and_anonymous_visitors_do_not_get_in(client, world):
    assert client.get("/admin/reviews/pullrequest/").status_code == 302
    client.force_login(world["member"])
    assert client.get("/admin/reviews/pullrequest/").status_code == 302


def test_lead_can_write_a_policy_only_for_their_team(client, world):
    client.force_login(world["lead"])
    document = "rules:\n  - name: one\n    require: {approvals: 1}\n"
    refused = client.post("/admin/reviews/policy/add/", {"team": world["search"].pk, "document": document})
    assert refused.status_code == 200  # the form says the choice is not available
    assert not Policy.objects.exists()
    accepted = client.post("/admin/reviews/policy/add/", {"team": world["shop"].pk, "document": document})
    assert accepted.status_code == 302
    assert Policy.objects.get().team == world["shop"]


def test_connections_and_deliveries_are_for_superusers(client, world):
    client.force_login(world["lead"])
    assert client.get("/admin/reviews/connection/").status_code == 403
    assert client.get("/admin/reviews/webhookdelivery/").status_code == 403


def test_lead_sees_unresolved_identities_to_attach_them(client, world):
    unresolved = IdentityFactory(person=None, kind="email", connection=None, value="someone@example.com")
    client.force_login(world["lead"])
    page = client.get("/admin/reviews/identity/").content.decode()
    assert unresolved.value in page


def test_lead_creates_a_token_for_their_team_and_sees_its_secret_once(client, world):
    client.force_login(world["lead"])
    response = client.post("/admin/reviews/apitoken/add/", {"name": "ci", "teams": [world["shop"].pk]}, follow=True)
    assert response.status_code == 200
    assert "tdm_" in response.content.decode()
    token = ApiToken.objects.get()
    assert list(token.teams.all()) == [world["shop"]]
    refused = client.post("/admin/reviews/apitoken/add/", {"name": "x", "teams": [world["search"].pk]})
    assert refused.status_code == 200
    assert ApiToken.objects.count() == 1
