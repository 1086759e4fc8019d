"""Every telemetry job may run twice (a redelivered message, a retry, a repair sweep) without changing the outcome;
failures are recorded on the row and retried on an explicit schedule."""

from __future__ import annotations

import datetime as dt

import pytest
from celery.exceptions import Retry

from reviews.models import PullRequest
from telemetry.models import Deployment, DeploymentChange, Incident, SuspectChange
from telemetry.tasks import correlate_incident, link_deployment_changes, repair_telemetry
from tests.factories import RepositoryFactory
from tests.telemetry.conftest import T0, hours, make_deployment, make_incident, make_service

pytestmark = pytest.mark.django_db


def snapshot() -> list:
    return list(
        DeploymentChange.objects.order_by("pk").values_list("pk", "deployment_id", "commit_id", "pull_request_id")
    )


def test_linking_twice_is_harmless(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    make_deployment(service, history.head, at=T0 - hours(30), repository=repository)
    history.merge(1, at=T0 - hours(20))
    deployment = make_deployment(service, history.head, at=T0 - hours(10), repository=repository)
    assert link_deployment_changes.delay(deployment.pk).get() == "linked by graph: 2 commits, 1 pull requests"
    before = snapshot()
    link_deployment_changes.delay(deployment.pk).get()
    assert snapshot() == before
    assert link_deployment_changes.delay(10**9).get() == "skipped: no such deployment"


def test_ranking_twice_is_harmless(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    make_deployment(service, history.head, at=T0 - hours(30), repository=repository)
    history.merge(1, at=T0 - hours(20))
    link_deployment_changes.delay(make_deployment(service, history.head, at=T0 - hours(10), repository=repository).pk)
    incident = make_incident([service], at=T0)
    assert correlate_incident.delay(incident.pk).get() == "ranked 1 suspects, removed 0"
    rows = list(SuspectChange.objects.values_list("pk", "rank", "score"))
    assert correlate_incident.delay(incident.pk).get() == "ranked 1 suspects, removed 0"
    assert list(SuspectChange.objects.values_list("pk", "rank", "score")) == rows
    assert correlate_incident.delay(10**9).get() == "skipped: no such incident"


def test_a_deployment_that_cannot_be_placed_is_recorded_not_retried(actors):
    service = make_service(
        "shop", actors.team, [(RepositoryFactory(full_path="acme/a"), []), (RepositoryFactory(full_path="acme/b"), [])]
    )
    deployment = make_deployment(service, "d" * 40, at=T0)
    assert link_deployment_changes.delay(deployment.pk).get().startswith("failed: Cannot tell which")
    deployment.refresh_from_db()
    assert "Cannot tell which" in deployment.link_error
    assert deployment.changes_linked_at is None


@pytest.fixture
def unreachable(actors, fake_github, github_connection):
    fake_github.add_repo("acme/shop")
    shas = [fake_github.add_commit("acme/shop", message=f"c{n}")["sha"] for n in range(3)]
    repository = RepositoryFactory(connection=github_connection, full_path="acme/shop", team=actors.team)
    service = make_service("shop", actors.team, [(repository, [])])
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
    fake_github.fail_next("/compare/", status=502, times=10)
    return make_deployment(service, shas[2], at=T0 - hours(10), repository=repository)


def test_an_unavailable_vcs_is_retried_with_a_countdown_and_the_error_recorded(unreachable, monkeypatch):
    countdowns = []

    def retry(*, exc, countdown):
        countdowns.append(countdown)
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(link_deployment_changes, "retry", retry)
    link_deployment_changes.push_request(is_eager=False, retries=1, id="t-1")
    try:
        with pytest.raises(Retry):
            link_deployment_changes.run(unreachable.pk)
    finally:
        link_deployment_changes.pop_request()
    assert countdowns == [300]
    unreachable.refresh_from_db()
    assert unreachable.link_error.startswith("retrying in 300s (attempt 2)")
    assert unreachable.changes_linked_at is None


def test_after_the_last_retry_merge_order_says_what_shipped(unreachable):
    link_deployment_changes.push_request(is_eager=False, retries=link_deployment_changes.max_retries, id="t-2")
    try:
        result = link_deployment_changes.run(unreachable.pk)
    finally:
        link_deployment_changes.pop_request()
    assert result == "linked by merge_order after the VCS failed: 1 pull requests"
    unreachable.refresh_from_db()
    assert unreachable.link_method == "merge_order"
    assert "502" in unreachable.link_error or "GitHub" in unreachable.link_error
    assert DeploymentChange.objects.filter(deployment=unreachable, pull_request__number=3).exists()


def test_the_repair_sweep_queues_what_was_lost(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    history.merge(1, at=T0 - hours(20))
    lost = make_deployment(service, history.head, at=T0 - hours(10), repository=repository)
    incident = make_incident([service], at=T0)
    long_ago = T0 - dt.timedelta(days=1)
    Deployment.objects.filter(pk=lost.pk).update(created_at=long_ago)
    Incident.objects.filter(pk=incident.pk).update(created_at=long_ago)
    fresh = make_deployment(service, history.head, at=T0 - hours(9), repository=repository)  # its task may run yet

    assert repair_telemetry.delay().get() == {"deployments": 1, "incidents": 1}

    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.changes_linked_at is not None
    assert fresh.changes_linked_at is None
    assert Incident.objects.get().correlated_at is not None
    assert repair_telemetry.delay().get() == {"deployments": 0, "incidents": 0}
