"""Adversarial review of issue 18's deploy check: what Tandem does not know is never "allow", whatever the team's
thresholds say (a sha not synced yet, a sha of another repository)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import Policy
from telemetry.services.linking import deployment_changes_link
from tests.factories import ConnectionFactory, RepositoryFactory
from tests.telemetry.conftest import History, approve, make_deployment, make_service

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
QUIET = "rules: [{name: one, require: {approvals: 1}}]\ndeploy: {block_on: never, warn_on: never}\n"


@pytest.fixture
def service(actors, repository):
    return make_service("checkout", actors.team, [(repository, [])])


def check(client, sha):
    body = {"service": "checkout", "environment": "production", "sha": sha}
    return client.post("/api/v1/deployments/check", body, format="json")


@pytest.mark.parametrize("warn_on", ["high", "never"])
def test_a_sha_not_synced_yet_is_never_allowed_whatever_the_thresholds(actors, service, repository, warn_on):
    History(repository, start=NOW - dt.timedelta(days=3)).merge(1, at=NOW - dt.timedelta(days=1))
    document = f"rules: [{{name: one, require: {{approvals: 1}}}}]\ndeploy: {{block_on: never, warn_on: {warn_on}}}\n"
    Policy.objects.create(team=actors.team, document=document)

    response = check(actors.client("token"), "e" * 40)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {reason["code"] for reason in body["reasons"]} == {"unknown_sha"}
    assert body["decision"] == "warn"  # not yet known: never "allow"


def test_a_sha_of_another_repository_is_not_known_and_not_allowed(actors, service, repository):
    History(repository, start=NOW - dt.timedelta(days=3)).merge(1, at=NOW - dt.timedelta(days=1))
    elsewhere = RepositoryFactory(full_path="acme/other", connection=ConnectionFactory(), team=actors.other_team)
    foreign = History(elsewhere, start=NOW - dt.timedelta(days=3))
    foreign.merge(7, at=NOW - dt.timedelta(days=1))
    Policy.objects.create(team=actors.team, document=QUIET)

    body = check(actors.client("token"), foreign.head).json()

    assert {reason["code"] for reason in body["reasons"]} == {"unknown_sha"}
    assert body["pull_requests"] == []  # nothing of the other repository is shown
    assert body["decision"] == "warn"


def test_another_teams_token_cannot_check_a_service_nor_learn_it_exists(actors, service, repository):
    history = History(repository, start=NOW - dt.timedelta(days=3))
    history.merge(1, at=NOW - dt.timedelta(days=1))
    for who in ("other_token", "outsider"):
        response = check(actors.client(who), history.head)
        assert response.status_code == 404
        assert "Change 1" not in response.content.decode()


def test_commits_pushed_without_a_pull_request_are_not_a_low_risk_batch(actors, service, repository):
    """A direct push to the branch (or deploying a branch's head that was never merged) ships code nobody reviewed:
    the batch's pull requests alone said "low" and "allow"."""
    history = History(repository, start=NOW - dt.timedelta(days=5))
    pull_request = history.merge(1, at=NOW - dt.timedelta(days=3))
    approve(pull_request, actors.member, at=NOW - dt.timedelta(days=3, hours=1), body="Looks right to me.")
    deployment = make_deployment(service, history.head, at=NOW - dt.timedelta(days=2), repository=repository)
    deployment_changes_link(deployment_id=deployment.pk, allow_vcs=False)
    pushed = history.commit("hotfix pushed straight to main", at=NOW - dt.timedelta(hours=2))

    body = check(actors.client("token"), pushed.sha).json()

    assert body["pull_requests"] == []
    assert {reason["code"] for reason in body["reasons"]} == {"no_pull_request"}
    assert body["level"] == "medium" and body["decision"] == "warn"
    assert body["reasons"][0]["text"].startswith("1 commit ships without a merged pull request")
