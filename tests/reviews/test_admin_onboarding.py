"""A lead brings a new person into their team without a superuser: the person, their role, their login, their
accounts and addresses, on one page. They cannot grab someone else's person or identity on the way."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import Identity, Membership, Person
from tests.factories import ConnectionFactory, MembershipFactory, PersonFactory, TeamFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/reviews/person/add/"


@pytest.fixture
def world() -> dict[str, Any]:
    shop, search = TeamFactory(slug="shop", name="Shop"), TeamFactory(slug="search", name="Search")
    lead = User.objects.create_user("lead", password="pw", is_staff=True)
    MembershipFactory(team=shop, person=PersonFactory(display_name="Lead", user=lead), role=Membership.Role.LEAD)
    other = PersonFactory(display_name="Theirs")
    MembershipFactory(team=search, person=other)
    github = ConnectionFactory(provider="github", name="GitHub", base_url="https://api.github.com")
    return {"shop": shop, "search": search, "lead": lead, "other": other, "github": github}


def _form(world: dict[str, Any], *, team: Any = None, role: str = "member", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "display_name": "Sam New",
        "login_username": "sam",
        "login_email": "sam@example.com",
        "login_password": "",
        "identities-TOTAL_FORMS": "0",
        "identities-INITIAL_FORMS": "0",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-0-team": (team or world["shop"]).pk,
        "memberships-0-role": role,
        "memberships-0-joined_at_0": "2025-03-10",
        "memberships-0-joined_at_1": "09:00:00",
    }
    data.update(extra)
    return data


def _identities(*rows: tuple[str, str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"identities-TOTAL_FORMS": str(len(rows)), "identities-INITIAL_FORMS": "0"}
    for index, (kind, value, connection) in enumerate(rows):
        data.update(
            {
                f"identities-{index}-kind": kind,
                f"identities-{index}-value": value,
                f"identities-{index}-connection": connection.pk if connection else "",
            }
        )
    return data


def test_a_lead_adds_a_person_with_login_accounts_and_role_and_then_sees_them(client, world):
    unresolved = Identity.objects.create(kind="email", value="sam@example.com")  # from a synced commit
    client.force_login(world["lead"])
    data = _form(world, **_identities(("github", "Sam-GH", world["github"]), ("email", "SAM@example.com", None)))

    response = client.post(ADD, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    sam = Person.objects.get(display_name="Sam New")
    assert sam.memberships.get().team == world["shop"]
    assert sam.user.username == "sam" and not sam.user.is_staff and not sam.user.has_usable_password()
    assert set(sam.identities.values_list("kind", "value")) == {("github", "sam-gh"), ("email", "sam@example.com")}
    unresolved.refresh_from_db()
    assert unresolved.person == sam  # the known address was claimed, not duplicated
    assert sam.display_name in client.get("/admin/reviews/person/").content.decode()
    assert client.get(f"/admin/reviews/person/{sam.pk}/change/").status_code == 200


def test_a_new_lead_gets_a_login_that_reaches_the_admin(client, world):
    client.force_login(world["lead"])
    data = _form(world, role="lead", login_username="newlead", login_password="a long passphrase 42")
    assert client.post(ADD, data).status_code == 302
    user = User.objects.get(username="newlead")
    assert user.is_staff and not user.is_superuser
    client.force_login(user)
    assert "Sam New" in client.get("/admin/reviews/person/").content.decode()


def test_a_person_is_added_only_into_one_of_the_leads_teams(client, world):
    client.force_login(world["lead"])
    into_theirs = client.post(ADD, _form(world, team=world["search"]))
    assert into_theirs.status_code == 200
    no_team = _form(world, **{"memberships-TOTAL_FORMS": "0"})
    assert client.post(ADD, no_team).status_code == 200
    assert not Person.objects.filter(display_name="Sam New").exists()
    assert not User.objects.filter(username="sam").exists()


def test_a_lead_cannot_attach_an_identity_linked_to_someone_else(client, world):
    taken = Identity.objects.create(kind="github", value="theirs", connection=world["github"], person=world["other"])
    client.force_login(world["lead"])
    response = client.post(ADD, _form(world, **_identities(("github", "THEIRS", world["github"]))))
    assert response.status_code == 200
    assert "already linked to someone else" in response.content.decode()
    assert not Person.objects.filter(display_name="Sam New").exists()
    taken.refresh_from_db()
    assert taken.person == world["other"]


def test_a_lead_cannot_bring_in_an_existing_person_of_another_team_or_of_none(client, world):
    loner = PersonFactory(display_name="Synced, in no team")
    client.force_login(world["lead"])
    for person in (world["other"], loner):
        response = client.post(
            "/admin/reviews/membership/add/",
            {"person": person.pk, "team": world["shop"].pk, "role": "member", "joined_at_0": "2025-03-10"},
        )
        assert response.status_code == 200
        assert not Membership.objects.filter(person=person, team=world["shop"]).exists()


def test_a_login_that_is_taken_is_refused(client, world):
    client.force_login(world["lead"])
    response = client.post(ADD, _form(world, login_username="LEAD"))
    assert response.status_code == 200
    assert "This login is taken." in response.content.decode()
    assert not Person.objects.filter(display_name="Sam New").exists()


@pytest.mark.parametrize("away_until", ["0001-01-01", "1999-12-31", "2101-01-01"])
def test_an_away_date_outside_the_apis_years_is_refused(client, world, away_until):
    client.force_login(world["lead"])
    response = client.post(ADD, _form(world, away_until=away_until))
    assert response.status_code == 200
    assert "Must be between the years 2000 and 2100." in response.content.decode()
    assert not Person.objects.filter(display_name="Sam New").exists()


def test_an_away_date_within_the_years_is_kept(client, world):
    client.force_login(world["lead"])
    response = client.post(ADD, _form(world, away_until="2100-12-31"))
    assert response.status_code == 302
    assert str(Person.objects.get(display_name="Sam New").away_until) == "2100-12-31"
