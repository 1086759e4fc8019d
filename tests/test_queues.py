"""Celery queues that never wait behind each other: each task is routed to the queue of its kind, and a worker
started without -Q consumes every queue (the embedded default and `make worker` keep working)."""

from __future__ import annotations

import pytest
from django.conf import settings

from config.celery import app

LATENCY_CRITICAL = {
    "reviews.tasks.process_webhook_deliveries": "webhooks",
    "reviews.tasks.process_webhook_delivery": "webhooks",
    "reviews.tasks.evaluate_pull_request": "webhooks",
    "reviews.tasks.report_evaluation": "reports",
    "reviews.tasks.dispatch_due_deliveries": "housekeeping",
    "reviews.tasks.reconcile_verdicts": "housekeeping",
    "telemetry.tasks.answer_protection_rule": "reports",
    # Beat's look for waiting protection rules is not a verdict's report: on `reports` it would mark the lane busy
    # every 30 s and hold background work back (reviews.services.pacing).
    "telemetry.tasks.recheck_protection_rules": "housekeeping",
}
BACKGROUND = {
    "reviews.tasks.sync_repository": "sync",
    "reviews.tasks.sync_all_repositories": "sync",
    "reviews.tasks.refresh_codeowners": "sync",
    "reviews.tasks.evaluate_pull_request_in_background": "sync",
    "telemetry.tasks.link_deployment_changes": "correlation",
    "telemetry.tasks.correlate_incident": "correlation",
    "telemetry.tasks.repair_telemetry": "correlation",
}


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


@pytest.mark.parametrize(("task_name", "queue"), sorted({**LATENCY_CRITICAL, **BACKGROUND}.items()))
def test_each_task_goes_to_the_queue_of_its_kind(task_name, queue):
    assert queue_of(task_name) == queue


def test_every_tandem_task_is_routed_explicitly_to_a_declared_queue():
    app.loader.import_default_modules()
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    tandem_tasks = sorted(name for name in app.tasks if name.startswith(("reviews.", "telemetry.")))
    assert tandem_tasks
    unrouted = [name for name in tandem_tasks if name not in settings.CELERY_TASK_ROUTES]
    assert unrouted == [], "a new task must be put on the queue of its kind (config/settings.py)"
    assert {queue_of(name) for name in tandem_tasks} <= declared


def test_a_worker_started_without_q_consumes_every_queue():
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert {"celery", "housekeeping", "webhooks", "reports", "sync", "correlation"} <= declared
    assert set(app.amqp.queues.consume_from) == declared
