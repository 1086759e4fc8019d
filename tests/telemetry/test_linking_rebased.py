"""Adversarial linking cases (issue 14 review)."""

from __future__ import annotations

import datetime as dt

import pytest

from reviews.models import Commit, PullRequest
from telemetry.models import Deployment, DeploymentChange
from telemetry.services.linking import deployment_changes_link
from tests.telemetry.conftest import T0, hours, make_deployment, make_service, sha_of

pytestmark = pytest.mark.django_db


def shipped(deployment: Deployment) -> list[int]:
    return sorted(
        DeploymentChange.objects.filter(deployment=deployment, pull_request__isnull=False)
        .values_list("pull_request__number", flat=True)
        .distinct()
    )


def test_first_deployment_does_not_stop_at_an_old_author_date_on_main(actors, repository, history):
    """A rebase-merged change keeps its git author date (45 days ago), but it was merged 40 hours ago, within the
    14-day look-back; so was the change before it. A first deployment ships all three."""
    service = make_service("shop", actors.team, [(repository, [])])
    history.merge(1, at=T0 - hours(50))
    rebased = Commit.objects.create(
        repository=repository,
        sha=sha_of("acme/shop:rebased-2"),
        message="rebased",
        authored_at=T0 - dt.timedelta(days=45),  # author date survives a rebase
        committed_at=T0 - hours(40),
        parents=[history.head],
        parents_known=True,
    )
    two = PullRequest.objects.create(
        repository=repository,
        number=2,
        title="two",
        state=PullRequest.State.MERGED,
        base_ref="main",
        head_sha=sha_of("acme/shop:orig-2"),
        merge_commit_sha=rebased.sha,
        created_at=T0 - hours(60),
        updated_at=T0 - hours(40),
        merged_at=T0 - hours(40),
    )
    assert two.pk
    history.head = rebased.sha
    history.merge(3, at=T0 - hours(30))
    deployment = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)

    result = deployment_changes_link(deployment_id=deployment.pk)

    deployment.refresh_from_db()
    assert (result.method, shipped(deployment), deployment.link_error) == ("graph", [1, 2, 3], "")


def test_a_deployment_linked_after_later_work_ships_only_its_own_even_with_a_clock_weeks_ahead(
    actors, repository, history
):
    """Linked after weeks more history was stored (a backfill, the demo's seed, a relink), a deployment reads the
    commits around it, not every one written since: it ships what it shipped, later merges are not in it, and a
    shipped commit whose committer's clock ran weeks ahead is still reached, by sha, from the head."""
    service = make_service("shop", actors.team, [(repository, [])])
    history.merge(1, at=T0 - hours(50))
    ahead = history.commit("clock-ahead", at=T0 + dt.timedelta(days=30))  # written before the deployment
    history.head = ahead.sha
    history.merge(2, at=T0 - hours(30))
    deployed = history.head
    for number in range(3, 6):  # merged in the weeks after the deployment
        history.merge(number, at=T0 + dt.timedelta(days=3 * number))
    deployment = make_deployment(service, deployed, at=T0 - hours(20), repository=repository)

    result = deployment_changes_link(deployment_id=deployment.pk)

    deployment.refresh_from_db()
    assert (result.method, shipped(deployment), deployment.link_error) == ("graph", [1, 2], "")
    commits = set(DeploymentChange.objects.filter(deployment=deployment).values_list("commit__sha", flat=True))
    assert ahead.sha in commits
