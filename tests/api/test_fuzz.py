"""Fuzzing the API from its own OpenAPI description (schemathesis): whatever a caller sends, no answer is a 5xx.

Bounded (a few examples per operation) so it runs in every CI run; each operation is called both by a team's
token and by the signed-in lead of that team (overrides and follow-ups are done by people, not tokens), over data
in which every path id exists."""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviews.models import Membership
from reviews.services.tokens import api_token_create
from tests.factories import (
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)
from tests.telemetry.conftest import make_incident, make_service

pytestmark = pytest.mark.django_db

# Examples per operation: bounded so that every CI run can afford it.
EXAMPLES = 12


@pytest.fixture
def api_world(db, django_user_model):
    team = TeamFactory(slug="shop")
    lead = django_user_model.objects.create_user("lead", password="pw")
    MembershipFactory(team=team, person=PersonFactory(display_name="Lead", user=lead), role=Membership.Role.LEAD)
    repository = RepositoryFactory(team=team)
    pull_request = PullRequestFactory(repository=repository, state="open")
    ReviewFactory(pull_request=pull_request)
    service = make_service("shop", team, [(repository, [])])
    incident = make_incident([service], at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    _, secret = api_token_create(name="fuzz", teams=[team])
    # Path parameters that name real rows, by the collection they are in: fuzzed ids mostly meet a 404 first.
    known = {"teams": "shop", "services": "shop", "pulls": pull_request.pk, "repositories": repository.pk}
    return {"token": secret, "lead": lead, "known": {**known, "incidents": incident.pk}}


@pytest.fixture
def api_schema(api_world):
    from django.core import signals
    from django.db import close_old_connections

    from config.wsgi import application

    # As Django's test client does: the test's transaction must outlive each request it makes.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/?format=json", application, headers={"Authorization": f"Bearer {api_world['token']}"}
        )
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _content_type(response) -> str:  # type: ignore[no-untyped-def]
    values = {name.lower(): value for name, value in response.headers.items()}.get("content-type", [""])
    return str(values[0] if isinstance(values, list) else values)


@pytest.mark.slow(50)
def test_no_request_gets_a_server_error(api_schema, api_world):
    headers = {"Authorization": f"Bearer {api_world['token']}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20  # the whole API, not an empty schema

    for operation in operations:

        @given(case=operation.as_strategy(), real_row=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case, real_row):  # type: ignore[no-untyped-def]
            if real_row and case.path_parameters:
                collection = case.path.split("/")[3]  # /api/v1/<collection>/{...}
                if collection in api_world["known"]:
                    case.path_parameters = {name: api_world["known"][collection] for name in case.path_parameters}
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query or ''}: {response.status_code}")
            elif response.status_code >= 400 and "json" not in _content_type(response):
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} is not JSON")

        call()
    assert failures == [], "\n".join(sorted(set(failures)))
