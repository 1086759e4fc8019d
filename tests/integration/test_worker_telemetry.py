"""A real Celery worker, as production runs it (PROMETHEUS_MULTIPROC_DIR, LOG_FORMAT=json), counts its task runs
where a scrape adds them up and logs JSON lines that name the task they are about."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from reviews.models import WebhookDelivery
from reviews.tasks import process_webhook_delivery
from tests.conftest import _test_database_url, send_to_worker
from tests.factories import ConnectionFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
TASK = "reviews.tasks.process_webhook_delivery"

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.slow(15),  # a real worker's start and stop
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset: no broker to run a worker on"),
]


def test_a_worker_counts_its_tasks_for_the_scrape_and_logs_json_lines_naming_them(
    transactional_db, python, python_env, tmp_path
):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **python_env,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_FORMAT": "json",
        "CELERY_TRACE_LOG_LEVEL": "INFO",  # the line saying each task succeeded
    }
    command = [python, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "--loglevel=INFO"]
    worker = subprocess.Popen(
        [*command, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        delivery = WebhookDelivery.objects.create(
            provider="github",
            delivery_id=str(uuid.uuid4()),
            event="pull_request",
            body=(FIXTURES / "pull_request.opened.json").read_text(),
            connection=ConnectionFactory(provider="github", base_url="https://api.github.com"),
        )
        send_to_worker(process_webhook_delivery, [delivery.pk], queue)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(metrics_dir))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not registry.get_sample_value(
            "tandem_task_runs_total", {"task": TASK, "state": "success"}
        ):
            time.sleep(0.25)
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        print(output)  # shown when the test fails

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PROCESSED, delivery.error
    assert registry.get_sample_value("tandem_task_runs_total", {"task": TASK, "state": "success"}) == 1
    assert registry.get_sample_value("tandem_task_duration_seconds_count", {"task": TASK}) == 1
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line["message"].endswith("ready.") for line in lines)
    succeeded = [line for line in lines if "succeeded" in line["message"]]
    assert succeeded, output
    assert succeeded[0]["task"] == TASK
    assert succeeded[0]["task_id"]
