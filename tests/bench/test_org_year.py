"""bench/org_year.py, small: the history it builds is what linking and the deploy check read (its stored changes
are the pull requests the real link finds), and it refuses a database that already holds history."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.db import connection

from reviews.models import PullRequest, Review
from telemetry.models import Deployment, DeploymentChange, Incident
from telemetry.services import linking

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from org_year import build_org_year  # noqa: E402

pytestmark = [
    pytest.mark.django_db,
    # The bench writes a year with PostgreSQL's COPY; `make test` on a fresh machine runs on SQLite.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="bench/org_year.py writes with PostgreSQL's COPY"),
]


def test_a_small_year_links_as_the_real_linking_does():
    counts = build_org_year(pulls=900, deployments=120, seed=3)

    assert counts["pull_requests"] == PullRequest.objects.count() == 900
    assert Deployment.objects.count() == counts["deployments"] > 80
    assert Review.objects.filter(body="").exists()  # rubber stamps among the approvals
    assert Incident.objects.filter(resolved_at__isnull=True).count() == 1
    linked = Deployment.objects.filter(status="success", changes__isnull=False).distinct().order_by("pk")
    for deployment in list(linked.select_related("repository"))[20:30]:
        shipment = linking.deployment_shipment(deployment, deployment.repository, allow_vcs=False)
        stored = set(DeploymentChange.objects.filter(deployment=deployment).values_list("pull_request_id", flat=True))
        assert shipment.method == "graph"
        assert set(shipment.pull_request_ids) == stored
    with pytest.raises(RuntimeError, match="already holds history"):
        build_org_year(pulls=10, deployments=2)
