"""Ranking one incident's suspects runs a fixed number of queries, whatever the history's size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews.models import Person
from telemetry.models import SuspectChange
from telemetry.services.correlation import incident_correlate
from tests.telemetry.conftest import T0, hours, make_incident, make_service
from tests.telemetry.scale import build_history

pytestmark = pytest.mark.django_db

MAX_QUERIES = 29  # four of them the verdict's facts, to count the approvals it counted


def correlate_counting(incident_id: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        incident_correlate(incident_id=incident_id)
    return len(queries)


def test_the_queries_of_one_correlation_do_not_grow_with_history(actors, repository):
    service = make_service("checkout", actors.team, [(repository, [])])
    people = [Person.objects.create(display_name=f"Dev {n}") for n in range(6)]
    # The last two days: five deployments of four pull requests each, all inside the 72-hour window.
    next_number = build_history(
        service=service,
        repository=repository,
        people=people,
        deployments=5,
        pull_requests_per_deployment=4,
        end=T0 - hours(1),
        spacing=hours(8),
    )
    incident = make_incident([service], at=T0)
    incident_correlate(incident_id=incident.pk)  # the first ranking creates rows; measure re-rankings
    small = correlate_counting(incident.pk)
    assert SuspectChange.objects.filter(incident=incident).count() == 20

    # Months more history before the window: 400 deployments, 2,000 pull requests, 8 confirmed incidents.
    build_history(
        service=service,
        repository=repository,
        people=people,
        deployments=400,
        pull_requests_per_deployment=5,
        end=T0 - hours(100),
        spacing=hours(6),
        first_number=next_number,
    )
    large = correlate_counting(incident.pk)

    assert small == large
    assert large <= MAX_QUERIES
    assert SuspectChange.objects.filter(incident=incident).count() == 20
    # The longer history was searched: earlier confirmed causes now weigh on files they share.
    assert SuspectChange.objects.filter(incident=incident, reasons__icontains="confirmed_files").exists()
