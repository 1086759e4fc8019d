"""A real Celery worker, started here against Redis, processes a stored webhook delivery into rows."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from reviews.models import PullRequest, WebhookDelivery
from reviews.tasks import process_webhook_delivery
from tests.conftest import send_to_worker
from tests.factories import ConnectionFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.slow(15),  # a real worker's start and stop
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset: no broker to run a worker on"),
]


def test_a_real_worker_processes_a_webhook_delivery(transactional_db, worker_queue):
    connection_row = ConnectionFactory(provider="github", base_url="https://api.github.com")
    body = (FIXTURES / "pull_request.opened.json").read_text()
    delivery = WebhookDelivery.objects.create(
        provider="github", delivery_id=str(uuid.uuid4()), event="pull_request", body=body, connection=connection_row
    )
    send_to_worker(process_webhook_delivery, [delivery.pk], worker_queue)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status not in {WebhookDelivery.Status.PENDING, WebhookDelivery.Status.PROCESSING}:
            break
        time.sleep(0.25)
    assert delivery.status == WebhookDelivery.Status.PROCESSED, delivery.error
    assert delivery.attempts == 1
    assert PullRequest.objects.filter(repository__connection=connection_row).count() == 1


def test_a_rate_limited_sync_is_retried_by_the_worker_after_the_wait(transactional_db, worker_queue, fake_github):
    from reviews.models import Connection, Repository, SyncRun
    from reviews.tasks import sync_repository

    fake_github.seed_repository("octocat/Hello-World", n_pulls=3)
    connection_row = Connection.objects.create(
        provider="github", name="fake", base_url=fake_github.url, api_token=fake_github.token
    )
    repository = Repository.objects.create(
        connection=connection_row, external_id="1296269", full_path="octocat/Hello-World"
    )
    fake_github.fail_next("/graphql", status=429, retry_after=1)  # a first sync is a backfill, through GraphQL
    send_to_worker(sync_repository, [repository.pk], worker_queue)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not SyncRun.objects.filter(status=SyncRun.Status.COMPLETED).exists():
        time.sleep(0.25)
    runs = list(SyncRun.objects.order_by("started_at").values_list("status", flat=True))
    assert runs == [SyncRun.Status.RATE_LIMITED, SyncRun.Status.COMPLETED]
    first, second = SyncRun.objects.order_by("started_at")
    assert (second.started_at - first.finished_at).total_seconds() >= 1  # waited, not a hot loop
    assert PullRequest.objects.filter(repository=repository).count() == 3
