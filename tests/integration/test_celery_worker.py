"""A real Celery worker, started here against Redis, processes a stored webhook delivery into rows."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from reviews.models import PullRequest, WebhookDelivery
from reviews.tasks import process_webhook_delivery
from tests.factories import ConnectionFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset: no broker to run a worker on"),
]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_queue(python, python_env):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**python_env, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL}
    process = subprocess.Popen(
        [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)  # shown by pytest when the test fails


def test_a_real_worker_processes_a_webhook_delivery(transactional_db, worker_queue):
    connection_row = ConnectionFactory(provider="github", base_url="https://api.github.com")
    body = (FIXTURES / "pull_request.opened.json").read_text()
    delivery = WebhookDelivery.objects.create(
        provider="github", delivery_id=str(uuid.uuid4()), event="pull_request", body=body, connection=connection_row
    )
    celery_app.conf.task_always_eager = False
    try:
        process_webhook_delivery.apply_async(args=[delivery.pk], queue=worker_queue)
    finally:
        celery_app.conf.task_always_eager = True

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status not in {WebhookDelivery.Status.PENDING, WebhookDelivery.Status.PROCESSING}:
            break
        time.sleep(0.25)
    assert delivery.status == WebhookDelivery.Status.PROCESSED, delivery.error
    assert delivery.attempts == 1
    assert PullRequest.objects.filter(repository__connection=connection_row).count() == 1
