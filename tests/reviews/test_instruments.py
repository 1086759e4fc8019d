"""Tandem's own metrics move on the real code paths: webhooks answered, API calls made, evaluations, the time from
a webhook's receipt to its verdict accepted by the provider, task runs, deployments linked, incidents ranked."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from reviews.integrations.endpoints import endpoint_template
from reviews.integrations.github_api import GitHubClient
from reviews.models import PolicyEvaluation, WebhookDelivery

SECRET = "instrument-secret"

pytestmark = pytest.mark.django_db


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def shop(fake_github, github_connection, settings):
    """A pull request on the fake GitHub whose webhook Tandem's connection verifies."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }
    github_connection.webhook_secret = SECRET
    github_connection.save()
    repo = fake_github.add_repo("acme/shop")
    fake_github.add_pull("acme/shop", number=7, author="ada", head_sha="f" * 40)
    fake_github.add_file("acme/shop", 7, "shop/cart.py", additions=1, deletions=1)
    return repo


@pytest.fixture
def post_webhook(client, django_capture_on_commit_callbacks):
    def post(event: str, payload: dict, *, secret: str = SECRET, delivery: str | None = None):
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=delivery or str(uuid.uuid4()), HTTP_X_HUB_SIGNATURE_256=signature,
            )  # fmt: skip

    return post


def _opened(fake_github, repo) -> dict:
    return {
        "action": "opened",
        "number": 7,
        "pull_request": fake_github.update_pull("acme/shop", 7),
        "repository": repo,
        "sender": {"login": "ada", "id": 1},
    }


def test_webhooks_are_counted_by_provider_event_and_outcome(post_webhook, fake_github, shop):
    name = "tandem_webhooks_received_total"
    accepted = {"provider": "github", "event": "pull_request", "outcome": "accepted"}
    duplicate = {**accepted, "outcome": "duplicate"}
    rejected = {"provider": "github", "event": "unverified", "outcome": "rejected"}
    before = [value(name, **labels) for labels in (accepted, duplicate, rejected)]

    payload = _opened(fake_github, shop)
    assert post_webhook("pull_request", payload, delivery="d-1").status_code == 202
    assert post_webhook("pull_request", payload, delivery="d-1").status_code == 200
    assert post_webhook("made-up-event", payload, secret="wrong").status_code == 401

    after = [value(name, **labels) for labels in (accepted, duplicate, rejected)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    # An unverified caller names no label: what it claimed to send is nowhere.
    assert value(name, provider="github", event="made-up-event", outcome="rejected") == 0


def test_each_answer_is_counted_by_the_status_it_says(post_webhook, fake_github, shop):
    name = "tandem_webhooks_received_total"
    labels = [
        {"provider": "github", "event": "ping", "outcome": "pong"},
        {"provider": "github", "event": "pull_request", "outcome": "invalid"},
    ]
    before = [value(name, **label) for label in labels]

    assert post_webhook("ping", {"zen": "Keep it simple."}, delivery="p-1").json()["status"] == "pong"
    assert post_webhook("ping", {"zen": "Keep it simple."}, delivery="p-1").json()["status"] == "pong"  # again
    assert post_webhook("pull_request", [1, 2], delivery="p-2").status_code == 400
    assert post_webhook("pull_request", [1, 2], delivery="p-3").status_code == 400

    assert [value(name, **label) - was for label, was in zip(labels, before, strict=True)] == [2, 2]


def test_a_webhooks_feedback_loop_is_observed_when_the_provider_accepts_its_verdict(post_webhook, fake_github, shop):
    loop_count = value("tandem_webhook_to_verdict_seconds_count", provider="github")
    loop_sum = value("tandem_webhook_to_verdict_seconds_sum", provider="github")
    reported = value("tandem_verdict_reports_total", provider="github", result="reported")
    evaluations = sum(value("tandem_evaluations_total", outcome=o, changed="true") for o in ("pending", "approved"))

    post_webhook("pull_request", _opened(fake_github, shop))
    done = timezone.now()

    assert len(fake_github.statuses_posted) == 1
    received_at = WebhookDelivery.objects.get().received_at
    assert value("tandem_webhook_to_verdict_seconds_count", provider="github") == loop_count + 1
    observed = value("tandem_webhook_to_verdict_seconds_sum", provider="github") - loop_sum
    assert 0 < observed <= (done - received_at).total_seconds()
    assert value("tandem_verdict_reports_total", provider="github", result="reported") == reported + 1
    after = sum(value("tandem_evaluations_total", outcome=o, changed="true") for o in ("pending", "approved"))
    assert after == evaluations + 1
    assert value("tandem_evaluation_duration_seconds_count") >= 1


def test_a_verdict_accepted_on_its_reports_retry_still_closes_the_webhooks_loop(
    post_webhook, fake_github, shop, monkeypatch
):
    from reviews import tasks

    queued: list[tuple] = []
    monkeypatch.setattr(tasks.report_evaluation, "delay", lambda *args: queued.append(args))
    loop_count = value("tandem_webhook_to_verdict_seconds_count", provider="github")
    failed = value("tandem_verdict_reports_total", provider="github", result="failed")
    fake_github.fail_next("/statuses/", 502)

    post_webhook("pull_request", _opened(fake_github, shop))
    assert value("tandem_verdict_reports_total", provider="github", result="failed") == failed + 1
    assert value("tandem_webhook_to_verdict_seconds_count", provider="github") == loop_count  # not accepted yet
    evaluation = PolicyEvaluation.objects.get()
    received_at = WebhookDelivery.objects.get().received_at
    assert queued == [(evaluation.pk, [received_at.isoformat()])]  # the receipt travels with the retry

    tasks.report_evaluation(*queued[0])  # Celery's retry, once GitHub answers again
    assert len(fake_github.statuses_posted) == 1
    assert value("tandem_webhook_to_verdict_seconds_count", provider="github") == loop_count + 1


def test_api_calls_are_counted_by_endpoint_template_and_status_and_304s_show(fake_github):
    fake_github.add_repo("acme/shop")
    fake_github.add_pull("acme/shop", number=3, author="ada")
    pulls = {"provider": "github", "method": "GET", "endpoint": "/repos/{owner}/{repo}/pulls"}
    ok, not_modified = (
        value("tandem_vcs_api_calls_total", **pulls, status="200"),
        value("tandem_vcs_api_calls_total", **pulls, status="304"),
    )
    with GitHubClient(fake_github.url, fake_github.token) as client:
        since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        list(client.pull_requests_since("acme/shop", since))
        list(client.pull_requests_since("acme/shop", since))  # the same list again: its ETag makes it a 304
        host = client.base_url.split("//", 1)[1].split("/", 1)[0]
    assert value("tandem_vcs_api_calls_total", **pulls, status="200") == ok + 1
    assert value("tandem_vcs_api_calls_total", **pulls, status="304") == not_modified + 1
    remaining = value("tandem_vcs_rate_limit_remaining", provider="github", host=host, resource="core")
    assert remaining == fake_github.rate_remaining


def test_a_graphql_backfill_keeps_its_headroom_apart_from_the_rest_calls(fake_github):
    fake_github.seed_repository("acme/shop", n_pulls=3)
    fake_github.rate_remaining = 4321
    with GitHubClient(fake_github.url, fake_github.token) as client:
        repository = client.repository("acme/shop")  # REST: the core budget
        host = client.base_url.split("//", 1)[1].split("/", 1)[0]
        core = value("tandem_vcs_rate_limit_remaining", provider="github", host=host, resource="core")
        assert core == fake_github.rate_remaining == 4320
        pulls = list(client.pull_requests_with_details("acme/shop", repository, wanted=lambda pull: False))
    assert pulls == [] and client.graphql_calls == 1  # one GraphQL page, no REST call after it
    graphql = value("tandem_vcs_rate_limit_remaining", provider="github", host=host, resource="graphql")
    assert graphql == fake_github.graphql_remaining < 5000
    assert value("tandem_vcs_rate_limit_remaining", provider="github", host=host, resource="core") == core


def test_gitlab_headroom_is_labelled_with_the_throttle_it_names(fake_gitlab):
    from reviews.integrations.gitlab_api import GitLabClient

    fake_gitlab.seed_project("acme/monolith", n_merge_requests=1)
    client = GitLabClient(fake_gitlab.url, fake_gitlab.token)
    client.project("acme/monolith")
    host = fake_gitlab.url.split("//", 1)[1].split("/", 1)[0]
    labels = {"provider": "gitlab", "host": host, "resource": "throttle_authenticated_api"}
    assert value("tandem_vcs_rate_limit_remaining", **labels) == client.rate_limit_remaining is not None


@pytest.mark.parametrize(
    ("said", "label"),
    [("core", "core"), ("GraphQL", "graphql"), ("throttle_authenticated_api", "throttle_authenticated_api"),
     (None, "unnamed"), ("", "unnamed"), ("a b", "unnamed"), ("x" * 65, "unnamed"), ("core\n", "core")],
)  # fmt: skip
def test_the_resource_label_takes_only_a_plain_name(said, label):
    from reviews.instruments import rate_limit_resource

    assert rate_limit_resource(said) == label


def test_gitlab_api_calls_are_counted_with_the_project_out_of_the_label(fake_gitlab):
    from reviews.integrations.gitlab_api import GitLabClient

    fake_gitlab.seed_project("acme/monolith", n_merge_requests=1)
    project = {"provider": "gitlab", "method": "GET", "endpoint": "/projects/{project}", "status": "200"}
    before = value("tandem_vcs_api_calls_total", **project)
    GitLabClient(fake_gitlab.url, fake_gitlab.token).project("acme/monolith")
    assert value("tandem_vcs_api_calls_total", **project) == before + 1


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("/repos/acme/api/pulls/12/files?page=2", "/repos/{owner}/{repo}/pulls/{number}/files"),
        ("https://ghe.example.com/api/v3/repos/a/b/compare/abc...def", "/repos/{owner}/{repo}/compare/{basehead}"),
        ("/repos/a/b/contents/.github/CODEOWNERS?ref=main", "/repos/{owner}/{repo}/contents/{path}"),
        ("/repos/a/b/statuses/" + "0123456789abcdef" * 2 + "01234567", "/repos/{owner}/{repo}/statuses/{ref}"),
        ("/repos/a/b/commits/main/status", "/repos/{owner}/{repo}/commits/{ref}/status"),
        ("/api/v4/projects/acme%2Fapi/merge_requests/7/notes", "/projects/{project}/merge_requests/{number}/notes"),
        ("/api/v4/projects/12/repository/files/docs%2FOWNERS/raw", "/projects/{project}/repository/files/{path}/raw"),
        ("/api/v4/projects/12/statuses/abc123", "/projects/{project}/statuses/{ref}"),
    ],
)
def test_an_endpoint_template_keeps_no_name_number_or_sha(url, template):
    assert endpoint_template(url) == template


def test_task_runs_are_counted_and_timed_by_task_and_outcome():
    from reviews.tasks import dispatch_due_deliveries, report_evaluation

    name = "reviews.tasks.dispatch_due_deliveries"
    runs, timed = (
        value("tandem_task_runs_total", task=name, state="success"),
        value("tandem_task_duration_seconds_count", task=name),
    )
    dispatch_due_deliveries.delay()
    assert value("tandem_task_runs_total", task=name, state="success") == runs + 1
    assert value("tandem_task_duration_seconds_count", task=name) == timed + 1

    failing = "reviews.tasks.report_evaluation"
    failures = value("tandem_task_runs_total", task=failing, state="failure")
    report_evaluation.apply(args=[987654321], throw=False)  # as a worker runs it: no such evaluation
    assert value("tandem_task_runs_total", task=failing, state="failure") == failures + 1


def test_deployments_linked_and_incidents_correlated_are_counted():
    from telemetry.services.correlation import incident_correlate
    from telemetry.services.linking import deployment_changes_link
    from tests.factories import RepositoryFactory
    from tests.telemetry.conftest import T0, History, hours, make_deployment, make_incident, make_service

    repository = RepositoryFactory(full_path="acme/shop")
    history = History(repository)
    service = make_service("shop", None, [(repository, [])])
    history.merge(1, at=T0 - hours(50))
    deployment = make_deployment(service, history.head, at=T0 - hours(48), repository=repository)
    incident = make_incident([service], at=T0 - hours(40))

    linked = value("tandem_deployments_linked_total", method="graph")
    correlated = value("tandem_incidents_correlated_total")
    deployment_changes_link(deployment_id=deployment.pk)
    incident_correlate(incident_id=incident.pk)
    assert value("tandem_deployments_linked_total", method="graph") == linked + 1
    assert value("tandem_incidents_correlated_total") >= correlated + 1  # linking ranks the incidents after it too


def test_a_webhook_body_over_djangos_cap_is_counted_as_invalid_not_as_an_error(client, settings, shop):
    """Django refuses the body before the view can verify it (413 from the JSON errors middleware): the sender's
    mistake, counted as every other refused body is, not as a server error."""
    settings.JSON_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    name = "tandem_webhooks_received_total"
    invalid = {"provider": "github", "event": "unverified", "outcome": "invalid"}
    error = {**invalid, "outcome": "error"}
    before = [value(name, **labels) for labels in (invalid, error)]

    body = b'{"pad": "' + b"x" * 1100 + b'"}'
    response = client.post(
        "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="push",
        HTTP_X_GITHUB_DELIVERY="d-big", HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64,
    )  # fmt: skip

    assert response.status_code == 413
    after = [value(name, **labels) for labels in (invalid, error)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 0]
