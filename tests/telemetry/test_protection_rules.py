"""GitHub's deployment protection rules answered by the deploy check, end to end through the fake GitHub: the
webhook is stored and processed, the check recorded, and the answer sent from a task as the App's installation,
retried after a 502, sent once however often the event comes."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import Policy, Repository
from telemetry.models import DeployCheck, Service
from telemetry.tasks import answer_protection_rule
from tests.factories import TeamFactory
from tests.reviews.test_github_app import app_connection, app_key, deliver, fixture, github  # noqa: F401 - fixtures
from tests.telemetry.conftest import History, make_deployment, make_service

pytestmark = pytest.mark.django_db

RUN_ID = 4242


def _request(github_url: str, full_name: str, sha: str) -> dict:
    """A `deployment_protection_rule` delivery as GitHub sends it (the @octokit/openapi-webhooks shape), built
    on the repository, sender and installation of the deployment fixture."""
    base = fixture("deployment.created")
    deployment = copy.deepcopy(base["deployment"])
    deployment["sha"] = sha
    return {
        "action": "requested",
        "environment": "production",
        "event": "push",
        "sha": sha,
        "ref": "refs/heads/main",
        "deployment_callback_url": (f"{github_url}/repos/{full_name}/actions/runs/{RUN_ID}/deployment_protection_rule"),
        "deployment": deployment,
        "pull_requests": [],
        "repository": base["repository"],
        "sender": base["sender"],
        "installation": base["installation"],
    }


@pytest.fixture
def installed(github, app_connection):  # noqa: F811 - the fixtures imported above
    payload = fixture("deployment.created")
    full_name = payload["repository"]["full_name"]
    github.add_repo(full_name, id=payload["repository"]["id"])
    github.install_app(full_name.split("/")[0], [full_name])
    team = TeamFactory(slug="payments")
    repository = Repository.objects.create(
        connection=app_connection, external_id=str(payload["repository"]["id"]), full_path=full_name, team=team
    )
    make_service("hello", team, [(repository, [])])
    return team, full_name


def test_a_blocked_check_rejects_the_deployment_after_a_502_and_answers_once(github, installed, deliver):  # noqa: F811
    team, full_name = installed
    Policy.objects.create(
        team=team, document="rules: [{name: one, require: {approvals: 1}}]\ndeploy: {block_on: medium}\n"
    )
    github.fail_next("/deployment_protection_rule", 502)
    payload = _request(github.url, full_name, "c" * 40)

    response = deliver("deployment_protection_rule", payload)

    assert response.status_code == 202
    check = DeployCheck.objects.get()
    assert (check.source, check.level, check.decision) == ("github_protection_rule", "medium", "block")
    assert check.answered_at is None  # the first attempt met the 502: the task asked to be retried
    assert "502" in check.answer_error
    assert github.protection_rule_reviews == []

    answer_protection_rule.apply(args=[check.pk], retries=1)  # the retry, as the worker runs it

    check.refresh_from_db()
    assert check.answered_at is not None
    assert check.answer_error == ""
    assert check.answer_attempts == 2  # the 502, then the answer GitHub accepted
    assert len(github.requests_to(f"/actions/runs/{RUN_ID}/deployment_protection_rule")) == 2
    (review,) = github.protection_rule_reviews
    assert (review["repo"], review["run_id"], review["environment_name"], review["state"]) == (
        full_name,
        RUN_ID,
        "production",
        "rejected",
    )
    assert "hello: medium risk, block" in review["comment"]
    assert "does not know commit cccccccccccc" in review["comment"]

    deliver("deployment_protection_rule", payload)  # GitHub redelivers it

    assert DeployCheck.objects.count() == 1
    assert len(github.protection_rule_reviews) == 1
    assert len(github.requests_to(f"/actions/runs/{RUN_ID}/deployment_protection_rule")) == 2


def test_a_batch_tandem_sees_is_approved_with_the_level(github, installed, deliver):  # noqa: F811
    _, full_name = installed
    repository = Repository.objects.get(full_path=full_name)
    history = History(repository, start=timezone.now() - dt.timedelta(days=2))
    make_deployment(Service.objects.get(slug="hello"), history.head, at=timezone.now() - dt.timedelta(days=1))
    pushed = history.commit("pushed straight to main", at=timezone.now() - dt.timedelta(hours=1))

    deliver("deployment_protection_rule", _request(github.url, full_name, pushed.sha))

    check = DeployCheck.objects.get()
    assert (check.level, check.decision, check.link_method) == ("low", "allow", "graph")
    (review,) = github.protection_rule_reviews
    assert review["state"] == "approved"
    assert "hello: low risk, allow" in review["comment"]


@pytest.mark.parametrize("deploy", ["", "deploy: {warn_on: high, block_on: never}\n"])
def test_a_sha_tandem_has_not_synced_is_never_approved(github, installed, deliver, deploy):  # noqa: F811
    team, full_name = installed
    if deploy:
        Policy.objects.create(team=team, document="rules: [{name: one, require: {approvals: 1}}]\n" + deploy)

    deliver("deployment_protection_rule", _request(github.url, full_name, "d" * 40))

    check = DeployCheck.objects.get()
    assert check.decision == "warn"  # the check says "not known to be safe" whatever the thresholds
    (review,) = github.protection_rule_reviews
    assert review["state"] == "rejected"  # fail closed: GitHub never deploys a batch Tandem could not see
    assert "does not know commit dddddddddddd" in review["comment"]
    assert "re-run the job once Tandem has synced" in review["comment"]


def test_other_actions_are_not_answered(github, installed, deliver):  # noqa: F811
    _, full_name = installed
    payload = {**_request(github.url, full_name, "d" * 40), "action": "something_new"}
    deliver("deployment_protection_rule", payload)
    assert DeployCheck.objects.count() == 0
    assert github.protection_rule_reviews == []
