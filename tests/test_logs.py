"""Structured logs: with LOG_FORMAT=json every line is one JSON object naming the request, delivery, task, team and
repository it is about, where known; every answer carries its request id."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from collections.abc import Callable, Iterator

import pytest
from django.utils import timezone

from config.logs import JsonFormatter
from reviews.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict]]]:
    """The lines logged so far in the test, formatted as LOG_FORMAT=json formats them, parsed back."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_an_incoming_request_id_is_kept_and_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a9c.01")
    assert response["X-Request-ID"] == "lb-7f3a9c.01"


@pytest.mark.parametrize("offered", ["", "has space", "x" * 129, "inject\nfake line"])
def test_a_missing_or_implausible_request_id_is_replaced(client, offered):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=offered)
    assert response["X-Request-ID"] != offered
    assert len(response["X-Request-ID"]) == 32  # a new one


def test_a_line_logged_while_serving_a_request_names_it(client, json_lines):
    client.post(
        "/webhooks/github/", data=b"{}", content_type="application/json", HTTP_X_REQUEST_ID="req-42"
    )  # unsigned: rejected, with a warning
    client.get("/healthz")  # a later request does not inherit it
    logging.getLogger("tests").info("after the requests")
    json_lines_now = json_lines()
    rejected = next(line for line in json_lines_now if line["logger"] == "reviews.webhooks")
    assert rejected["request_id"] == "req-42"
    assert rejected["level"] == "WARNING"
    assert rejected["message"].startswith("rejected github webhook")
    assert set(rejected) >= {"time", "level", "logger", "message"}
    after = next(line for line in json_lines_now if line["message"] == "after the requests")
    assert "request_id" not in after


def test_a_delivery_failing_in_a_task_logs_its_delivery_task_and_exception(json_lines, monkeypatch):
    from reviews.services import webhooks
    from reviews.tasks import process_webhook_deliveries

    delivery = WebhookDelivery.objects.create(provider="github", delivery_id="d-9", event="push", body="{}")

    def broken(delivery):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(webhooks, "_apply", broken)
    result = process_webhook_deliveries.apply(args=[[delivery.pk]], task_id="task-abc")
    assert result.get() == {"retrying": 1}
    failed = next(line for line in json_lines() if "failed (attempt 1)" in line["message"])
    assert failed["delivery_id"] == delivery.pk
    assert failed["provider"] == "github"
    assert failed["task_id"] == "task-abc"
    assert failed["task"] == "reviews.tasks.process_webhook_deliveries"
    assert "RuntimeError: the database went away" in failed["exception"]


def test_a_verdict_pass_names_its_repository_team_and_pull_request_in_every_line(json_lines, monkeypatch):
    from reviews.services import verdicts
    from tests.factories import PullRequestFactory, RepositoryFactory, TeamFactory

    pull_request = PullRequestFactory(
        repository=RepositoryFactory(full_path="acme/shop", team=TeamFactory(slug="payments")),
        evaluation_owed_since=timezone.now(),
    )

    def evaluate(**kwargs):
        logging.getLogger("reviews.policy").info("evaluating")
        return None

    monkeypatch.setattr(verdicts, "pull_request_evaluate", evaluate)
    monkeypatch.setattr(verdicts, "pull_request_facts_fetch", lambda **kwargs: None)
    monkeypatch.setattr(verdicts, "codeowners_refresh", lambda **kwargs: None)
    verdicts.pull_request_verdict_pass(pull_request_id=pull_request.pk)
    logging.getLogger("tests").info("after the pass")
    lines = {line["message"]: line for line in json_lines()}
    inside = lines["evaluating"]
    assert (inside["repository"], inside["team"], inside["pull_request_id"]) == (
        "acme/shop",
        "payments",
        pull_request.pk,
    )
    assert "repository" not in lines["after the pass"]


def test_log_format_json_makes_every_line_a_json_object(python, python_env):
    script = "import django; django.setup(); import logging; logging.getLogger('tandem.check').warning('one %s', 1)"
    env = {**python_env, "LOG_FORMAT": "json"}
    stderr = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True, check=True).stderr
    line = json.loads(stderr.strip().splitlines()[-1])
    assert (line["logger"], line["level"], line["message"]) == ("tandem.check", "WARNING", "one 1")


def test_an_unknown_log_format_stops_tandem_with_the_reason(python, python_env):
    script = "import django; django.setup()"
    env = {**python_env, "LOG_FORMAT": "xml"}
    result = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "LOG_FORMAT must be 'plain' or 'json'" in result.stderr
