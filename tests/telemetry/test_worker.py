"""A real Celery worker, against Redis, links a deployment through a rate-limited compare API: it waits the time
GitHub asks for, retries, and links."""

from __future__ import annotations

import os
import time

import pytest

from reviews.models import Connection, PullRequest, Repository
from telemetry.models import Deployment, DeploymentChange
from telemetry.tasks import link_deployment_changes
from tests.conftest import send_to_worker
from tests.telemetry.conftest import T0, hours, make_deployment, make_service

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset: no broker to run a worker on"),
]


def test_a_real_worker_retries_a_rate_limited_compare_and_links(transactional_db, worker_queue, fake_github):
    from reviews.models import Team

    team = Team.objects.create(slug="shop-team", name="Shop")
    fake_github.add_repo("acme/shop")
    shas = [fake_github.add_commit("acme/shop", message=f"c{n}")["sha"] for n in range(3)]
    github = Connection.objects.create(
        provider="github", name="fake", base_url=fake_github.url, api_token=fake_github.token
    )
    repository = Repository.objects.create(connection=github, external_id="77", full_path="acme/shop", team=team)
    service = make_service("shop", team, [(repository, [])])
    make_deployment(service, shas[0], at=T0 - hours(30), repository=repository)
    PullRequest.objects.create(
        repository=repository,
        number=3,
        title="three",
        state="merged",
        base_ref="main",
        merge_commit_sha=shas[2],
        created_at=T0 - hours(25),
        updated_at=T0 - hours(12),
        merged_at=T0 - hours(12),
    )
    deployment = make_deployment(service, shas[2], at=T0 - hours(10), repository=repository)
    fake_github.fail_next("/compare/", status=429, retry_after=1)

    send_to_worker(link_deployment_changes, [deployment.pk], worker_queue)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deployment.refresh_from_db()
        if deployment.changes_linked_at is not None:
            break
        time.sleep(0.25)
    assert deployment.link_method == "compare", deployment.link_error
    assert deployment.link_error == ""
    assert len(fake_github.requests_to("/compare/")) == 2  # refused once, then answered
    assert DeploymentChange.objects.filter(deployment=deployment, pull_request__number=3).exists()
    assert Deployment.objects.get(pk=deployment.pk).changes_linked_at is not None
