"""GitHub `deployment` / `deployment_status` and GitLab `Deployment Hook` webhooks land on the same Deployment rows
as the API, through the handler telemetry registers with reviews, following the documented service rule."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

from reviews.models import Connection, Repository
from reviews.services.webhooks import deployment_handlers
from telemetry.models import Deployment, DeploymentChange, Service
from telemetry.selectors.dora import services_dora
from telemetry.services.deployments import deployments_from_webhook
from tests.telemetry.conftest import T0, History, hours, make_service

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECRET = "It's a Secret to Everybody"
TOKEN = "gitlab-hook-token"


def github_fixture(name: str) -> dict:
    return json.loads((FIXTURES / "github" / f"{name}.json").read_text())


def gitlab_fixture() -> dict:
    return json.loads((FIXTURES / "gitlab_docs" / "deployment_hook.json").read_text())


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    settings.GITLAB_WEBHOOK_TOKEN = TOKEN


@pytest.fixture
def github(client, run_on_commit):
    def post(event: str, payload: dict):
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with run_on_commit():
            return client.post(
                "/webhooks/github/",
                data=body,
                content_type="application/json",
                HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
                HTTP_X_HUB_SIGNATURE_256=signature,
            )

    return post


@pytest.fixture
def gitlab(client, run_on_commit):
    def post(payload: dict):
        with run_on_commit():
            return client.post(
                "/webhooks/gitlab/",
                data=json.dumps(payload),
                content_type="application/json",
                HTTP_X_GITLAB_EVENT="Deployment Hook",
                HTTP_X_GITLAB_TOKEN=TOKEN,
                HTTP_X_GITLAB_EVENT_UUID=str(uuid.uuid4()),
            )

    return post


def test_telemetry_registers_its_handler_once():
    assert deployment_handlers.count(deployments_from_webhook) == 1


def test_a_repository_without_a_service_gets_one_of_its_own(github):
    assert github("deployment_status", github_fixture("deployment_status.success")).status_code == 202
    deployment = Deployment.objects.get()
    assert deployment.service.slug == "codertocat-hello-world"
    assert deployment.repository.full_path == "Codertocat/Hello-World"
    assert deployment.source == "github"
    assert deployment.external_id.endswith(":145988746")
    assert deployment.status == "success"
    assert deployment.sha == "c4295bd74fb0f4fda03689c3df3f2803b658fd85"
    assert deployment.url == "https://ci.example.com/deploys/42"
    assert deployment.changes_linked_at is not None  # linked (nothing stored to ship, no token: merge order)


def test_created_then_status_is_one_deployment_in_any_order(github):
    created, finished = github_fixture("deployment.created"), github_fixture("deployment_status.success")
    github("deployment_status", finished)
    github("deployment", created)  # arrives late: older, must not make it pending again
    github("deployment_status", finished)  # redelivered
    deployment = Deployment.objects.get()
    assert deployment.status == "success"
    assert deployment.finished_at is not None
    assert deployment.started_at.isoformat() == "2019-05-15T15:20:53+00:00"


def test_a_service_named_by_the_environment_takes_the_deployment(github, actors):
    payload = github_fixture("deployment_status.success")
    repository = _repository_of(github, payload)
    auth = make_service("auth", actors.team, [(repository, ["services/auth/**"])])
    make_service("billing", actors.team, [(repository, ["services/billing/**"])])
    payload = copy.deepcopy(payload)
    payload["deployment"]["environment"] = payload["deployment_status"]["environment"] = "production/auth"
    payload["deployment"]["id"] += 1
    github("deployment_status", payload)
    deployment = Deployment.objects.get(external_id__endswith=str(payload["deployment"]["id"]))
    assert deployment.service == auth
    assert deployment.environment == "production"
    assert not deployment.path_scoped


def test_a_monorepo_deployed_whole_is_recorded_for_each_service_by_path(github, actors):
    payload = github_fixture("deployment_status.success")
    repository = _repository_of(github, payload)
    auth = make_service("auth", actors.team, [(repository, ["services/auth/**"])])
    billing = make_service("billing", actors.team, [(repository, ["services/billing/**"])])
    history = History(repository, start=T0 - hours(100))
    for service in (auth, billing):
        Deployment.objects.create(
            service=service,
            environment="production",
            repository=repository,
            sha=history.head,
            status="success",
            source="api",
            external_id=f"base-{service.slug}",
            finished_at=T0 - hours(50),
        )
    history.merge(1, at=T0 - hours(30), files=["services/auth/login.py"])
    payload = copy.deepcopy(payload)
    payload["deployment"]["sha"] = history.head
    payload["deployment"]["id"] += 2
    payload["deployment_status"]["updated_at"] = payload["deployment"]["updated_at"] = T0.isoformat()
    payload["deployment"]["created_at"] = (T0 - hours(1)).isoformat()

    github("deployment_status", payload)

    rows = Deployment.objects.filter(source="github").order_by("service__slug")
    assert [(d.service.slug, d.path_scoped) for d in rows] == [("auth", True), ("billing", True)]
    assert DeploymentChange.objects.filter(deployment=rows[0], pull_request__number=1).exists()
    assert not DeploymentChange.objects.filter(deployment=rows[1]).exists()
    # Billing shipped nothing of its own: its row is not one of its deployments in DORA.
    since, until = T0 - hours(10), T0 + hours(1)
    assert services_dora(services=[auth], since=since, until=until).deployment_frequency.deployments == 1
    assert services_dora(services=[billing], since=since, until=until).deployment_frequency.deployments == 0


def test_gitlab_deployment_hook_lands_on_the_same_rows(gitlab, actors):
    payload = gitlab_fixture()
    assert gitlab(payload).status_code == 202
    deployment = Deployment.objects.get()
    assert deployment.source == "gitlab"
    assert deployment.environment == "staging"
    assert deployment.sha == "279484c09fbe69ededfced8c1bb6e6d24616b468"
    assert deployment.status == "success"
    assert deployment.service.slug == "root-test-deployment-webhooks"

    running = copy.deepcopy(payload)
    running["status"] = "running"
    running["status_changed_at"] = "2021-04-28 21:40:00 +0200"
    gitlab(running)  # older than the success already stored
    deployment.refresh_from_db()
    assert deployment.status == "success"
    assert Deployment.objects.count() == 1
    assert Service.objects.count() == 1


def _repository_of(github, payload: dict) -> Repository:
    """Let a first (ignored) event create the repository the way webhooks do, then return it."""
    github("deployment", {**github_fixture("deployment.created"), "deployment": {**payload["deployment"], "id": 1}})
    Deployment.objects.all().delete()
    Service.objects.all().delete()
    assert Connection.objects.filter(provider="github").exists()
    return Repository.objects.get(full_path="Codertocat/Hello-World")
