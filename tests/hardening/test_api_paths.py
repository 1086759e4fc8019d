"""One trailing-slash policy for all of /api/: every path answers with and without its final slash, in place (a
POST keeps its body), while pages outside /api/ keep Django's redirect."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config.api_paths import api_path
from reviews.models import Membership, Person, Team
from tests.factories import IdentityFactory

pytestmark = pytest.mark.django_db


def _api_paths() -> list[str]:
    """Every API path of the schema, its parameters filled in."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(re.sub(r"\{[^}]+\}", "1", path) for path in schema["paths"])


API_PATHS = _api_paths()


def test_the_schema_lists_the_api():
    assert "/api/v1/teams" in API_PATHS
    assert len(API_PATHS) > 30


@pytest.mark.parametrize("path", API_PATHS)
def test_every_api_path_answers_with_and_without_a_final_slash(path):
    client = Client()
    without, with_slash = client.get(path.rstrip("/")), client.get(path.rstrip("/") + "/")
    assert without.status_code == with_slash.status_code == 401  # anonymous: refused, not "no such page"
    assert with_slash.json() == without.json()


@pytest.mark.parametrize("path", ["/api/schema", "/api/schema/", "/api/v1/teams/", "/api/v1/teams"])
def test_a_signed_in_caller_gets_the_same_answer_either_way(path, django_user_model):
    user = django_user_model.objects.create_superuser(username="root", password="x")  # noqa: S106
    client = Client()
    client.force_login(user)
    assert client.get(path, HTTP_ACCEPT="application/json").status_code == 200


def test_a_post_to_a_path_with_a_final_slash_keeps_its_body(django_user_model):
    team = Team.objects.create(slug="payments", name="Payments")
    people = []
    for login in ("ann", "bo"):
        person = Person.objects.create(display_name=login)
        Membership.objects.create(team=team, person=person)
        IdentityFactory(person=person, kind="github", value=login)
        people.append(person)
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_superuser(username="root", password="x"))  # noqa: S106
    body = {"participants": [{"person": "github:ann", "role": "driver"}, {"person": "github:bo"}]}
    response = client.post("/api/v1/pairing-sessions/", body, format="json")
    assert response.status_code == 201, response.json()
    assert [p["person"]["display_name"] for p in response.json()["participants"]] == ["ann", "bo"]


def test_unknown_api_paths_stay_404_and_pages_keep_their_redirect():
    assert api_path("/api/v1/no-such-thing/") == "/api/v1/no-such-thing/"
    assert Client().get("/api/v1/no-such-thing/").status_code == 404
    assert Client().get("/api/v1/no-such-thing/").json()["error"]
    response = Client().get("/teams")
    assert response.status_code == 301
    assert response["Location"] == "/teams/"
