"""One API contract, checked over every operation the OpenAPI schema describes: every error is the one JSON shape
({"error": ..., "fields": {...}}), a method an endpoint does not take is a JSON 405, an unhandled error a JSON 500,
and an out-of-range integer in any query parameter or body field is a 400 naming it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, PersonFactory
from tests.reviews.admin_world import team_rows

pytestmark = pytest.mark.django_db

HUGE = "9" * 25
METHODS = ("get", "post", "put", "patch", "delete")


def _schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


SCHEMA = _schema()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _concrete(path: str, rows: dict[str, Any] | None = None) -> str:
    """The path with each parameter naming a row of the world (`rows`), or 1 and "payments" without one."""
    if rows is None:
        return re.sub(r"\{[^}]+\}", "1", path)
    return re.sub(r"([a-z-]+)/\{[^}]+\}", lambda match: f"{match.group(1)}/{rows[match.group(1)]}", path)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in SCHEMA["paths"].items() for method, op in ops.items()]


def _numeric_query_parameters() -> list[tuple[str, str, str]]:
    return [
        (path, method, parameter["name"])
        for path, method, op in _operations()
        for parameter in op.get("parameters", [])
        if parameter["in"] == "query" and parameter.get("schema", {}).get("type") in {"integer", "number"}
    ]


def _numeric_body_fields() -> list[tuple[str, str, str]]:
    found = []
    for path, method, op in _operations():
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body is None:
            continue
        for name, prop in _resolve(body).get("properties", {}).items():
            if _resolve(prop).get("type") in {"integer", "number"} and not _resolve(prop).get("readOnly"):
                found.append((path, method, name))
    return found


@pytest.fixture
def world() -> dict[str, Any]:
    """One row of every model in the team "payments"; path parameters name them, by the collection they are in."""
    rows = team_rows("payments")
    return {
        "teams": "payments",
        "services": rows["telemetry.Service"].slug,
        "pulls": rows["reviews.PullRequest"].pk,
        "overrides": rows["reviews.Override"].pk,
        "repositories": rows["reviews.Repository"].pk,
        "incidents": rows["telemetry.Incident"].pk,
        "suspects": rows["telemetry.SuspectChange"].pk,
        "pairing-sessions": rows["reviews.PairingSession"].pk,
        "people": rows["reviews.Person"].pk,
        "notifications": rows["telemetry.Notification"].pk,
        "participants": rows["reviews.Person"].pk,
        "versions": 1,
        "team": rows["team"],
    }


@pytest.fixture
def api(world, django_user_model) -> APIClient:
    """A member of the team who neither wrote its pull request nor overrode it (so may do its follow-up)."""
    user = django_user_model.objects.create_user(username="rita", password="x")  # noqa: S106
    MembershipFactory(team=world["team"], person=PersonFactory(display_name="Rita", user=user))
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client


def _assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert set(body) <= {"error", "fields"}, body
    return body


@pytest.mark.parametrize(("path", "method", "name"), _numeric_query_parameters())
def test_an_out_of_range_integer_query_parameter_is_a_400_naming_it(api, world, path, method, name):
    response = api.generic(method.upper(), f"{_concrete(path, world)}?{name}={HUGE}")
    body = _assert_error_shape(response, 400)
    assert name in body.get("fields", {}), body


@pytest.mark.parametrize("path", ["/api/v1/deployments", "/api/v1/incidents", "/api/v1/suspects", "/api/v1/teams"])
@pytest.mark.parametrize("query", ["page=0", "page=x", f"page={HUGE}", "page=2", "page_size=0", f"page_size={HUGE}"])
def test_a_page_that_is_not_one_is_a_400_naming_it(api, path, query):
    body = _assert_error_shape(api.get(f"{path}?{query}"), 400)
    assert query.split("=")[0] in body["fields"], body


def test_a_page_within_range_is_served(api):
    body = api.get("/api/v1/teams?page=1&page_size=1").json()
    assert [team["slug"] for team in body["results"]] == ["payments"]


@pytest.mark.parametrize(("path", "method", "name"), _numeric_body_fields())
def test_an_out_of_range_integer_in_a_body_is_a_400_naming_it(api, world, path, method, name):
    response = getattr(api, method)(_concrete(path, world), {name: int(HUGE)}, format="json")
    body = _assert_error_shape(response, 400)
    assert name in body.get("fields", {}), body


@pytest.mark.parametrize("path", sorted(SCHEMA["paths"]))
def test_a_method_an_endpoint_does_not_take_is_a_json_405(api, path):
    missing = next(method for method in METHODS if method not in SCHEMA["paths"][path])
    body = _assert_error_shape(api.generic(missing.upper(), _concrete(path)), 405)
    assert "fields" not in body


@pytest.mark.parametrize("path", sorted(p for p in SCHEMA["paths"] if "{id}" in p and "get" in SCHEMA["paths"][p]))
def test_an_id_nobody_has_is_a_json_404(api, path):
    _assert_error_shape(api.get(path.replace("{id}", "987654321")), 404)


def test_an_unhandled_error_in_an_api_view_is_a_json_500(api, monkeypatch):
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr("reviews.api.pairing.pairing_session_list", broken)
    body = _assert_error_shape(api.get("/api/v1/pairing-sessions"), 500)
    assert "database on fire" not in str(body)


def test_refusals_share_the_shape(api):
    _assert_error_shape(Client().get("/api/v1/teams"), 401)
    _assert_error_shape(api.get("/api/v1/nowhere"), 404)
    _assert_error_shape(api.post("/api/v1/pairing-sessions", "{", content_type="application/json"), 400)
