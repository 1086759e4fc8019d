"""The retry paths as they run in production, in a real Celery worker against Redis (not inline): a delivery whose
processing failed for a transient reason is handed over again by the dispatcher once its backoff ran out and ends
processed; a verdict GitHub refused once with a 502 is posted again by the task's own retry and ends accepted."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from reviews.models import Connection, PolicyEvaluation, PullRequest, Repository, WebhookDelivery
from reviews.services.webhooks import RETRY_BACKOFF
from reviews.tasks import (
    dispatch_due_deliveries,
    process_webhook_deliveries,
    process_webhook_delivery,
    report_evaluation,
)
from tests.conftest import send_to_worker
from tests.factories import ConnectionFactory, PullRequestFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.slow(20),  # a real worker's start and stop
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset: no broker to run a worker on"),
]


def _wait_for(done: Callable[[], bool], *, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.25)
    return done()


# A write the database refuses for a while, as a deadlock or a server going away does: inserting a pull request
# fails with the database's own error until the test lifts it. SQLite compiles a trigger's body only when it
# fires, so a missing table is its way to answer an OperationalError.
_FAULT_ON = {
    "postgresql": [
        "CREATE FUNCTION tandem_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'deadlock detected (injected by the test)' USING ERRCODE = '40P01'; END $$",
        "CREATE TRIGGER tandem_test_fault BEFORE INSERT ON reviews_pullrequest "
        "FOR EACH ROW EXECUTE FUNCTION tandem_test_fault()",
    ],
    "sqlite": [
        "CREATE TRIGGER tandem_test_fault BEFORE INSERT ON reviews_pullrequest "
        "BEGIN SELECT * FROM tandem_database_away; END",
    ],
}
_FAULT_OFF = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS tandem_test_fault ON reviews_pullrequest",
        "DROP FUNCTION IF EXISTS tandem_test_fault()",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS tandem_test_fault"],
}


def _execute(statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def database_refuses_pull_requests(transactional_db) -> Iterator[Callable[[], None]]:
    """Turns the fault on; yields the function that lifts it (it is lifted at the end in any case)."""
    _execute(_FAULT_ON[connection.vendor])
    lift = lambda: _execute(_FAULT_OFF[connection.vendor])  # noqa: E731
    try:
        yield lift
    finally:
        lift()


def test_a_delivery_that_failed_transiently_is_retried_by_the_dispatcher_and_processed(
    transactional_db, worker_queue, database_refuses_pull_requests, monkeypatch
):
    connection_row = ConnectionFactory(provider="github", base_url="https://api.github.com")
    delivery = WebhookDelivery.objects.create(
        provider="github",
        delivery_id=str(uuid.uuid4()),
        event="pull_request",
        body=(FIXTURES / "pull_request.opened.json").read_text(),
        connection=connection_row,
    )
    send_to_worker(process_webhook_delivery, [delivery.pk], worker_queue)

    attempted = WebhookDelivery.objects.filter(pk=delivery.pk, attempts=1).exclude(status="processing")
    assert _wait_for(attempted.exists)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING  # to be retried, not failed for good
    assert delivery.error.startswith("Attempt 1 of "), delivery.error
    assert "OperationalError" in delivery.error
    assert delivery.next_attempt_at >= delivery.claimed_at + RETRY_BACKOFF[0]
    assert not PullRequest.objects.exists()  # the attempt landed nothing: it rolled back whole
    database_refuses_pull_requests()

    # The dispatcher as beat runs it (here in this process): what it hands over goes to the worker through Redis.
    monkeypatch.setattr(
        process_webhook_deliveries,
        "delay",
        lambda pks: send_to_worker(process_webhook_deliveries, [pks], worker_queue),
    )
    assert dispatch_due_deliveries() == 0  # not before its backoff runs out
    assert _wait_for(lambda: dispatch_due_deliveries() == 1)
    assert _wait_for(lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="processed").exists())
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.error) == (2, "")
    assert PullRequest.objects.filter(repository__connection=connection_row).count() == 1


def test_a_status_github_refused_with_a_502_is_retried_by_the_worker_and_accepted(
    transactional_db, worker_queue, fake_github
):
    fake_github.add_repo("acme/shop")
    fake_github.add_pull("acme/shop", number=7, author="ada", head_sha="f" * 40)
    github = Connection.objects.create(
        provider="github", name="fake", base_url=fake_github.url, api_token=fake_github.token
    )
    repository = Repository.objects.create(connection=github, external_id="77", full_path="acme/shop")
    pull_request = PullRequestFactory(repository=repository, number=7, head_sha="f" * 40, state="open")
    evaluation = PolicyEvaluation.objects.create(
        pull_request=pull_request, head_sha=pull_request.head_sha, outcome="pending", description="0 of 1 approval"
    )
    fake_github.fail_next("/statuses/", 502)

    send_to_worker(report_evaluation, [evaluation.pk], worker_queue)

    assert _wait_for(lambda: PolicyEvaluation.objects.filter(pk=evaluation.pk, reported_at__isnull=False).exists())
    evaluation.refresh_from_db()
    assert evaluation.report_error == ""
    assert len(fake_github.requests_to("/statuses/")) == 2  # refused once, then accepted
    assert [(s["sha"], s["context"], s["state"]) for s in fake_github.statuses_posted] == [
        ("f" * 40, "tandem/review-policy", "pending")
    ]
