"""A backfill never stands in front of a verdict (issue 16): the evaluations a sync queues go to the background
worker's queue, and a webhook's own pass, or any other evaluation, of a pull request whose sync evaluation still
waits there is not held back by it."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from config.celery import app
from reviews import tasks
from reviews.models import PolicyEvaluation, PullRequest, WebhookDelivery
from reviews.services import policies
from reviews.services.enqueue import evaluation_enqueue_now, pull_request_evaluations_enqueue
from reviews.services.sync import repository_for_sync, repository_sync
from tests.factories import PullRequestFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
SECRET = "backfill-secret"

pytestmark = pytest.mark.django_db


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def queue_of(task) -> str:  # type: ignore[no-untyped-def]
    return app.amqp.router.route({}, task.name)["queue"].name


@pytest.fixture(autouse=True)
def own_cache(settings):
    # The "already queued" marks live in the cache: each test starts with none (and never flushes a shared Redis).
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }


@pytest.fixture
def queued(monkeypatch) -> dict[str, list[int]]:
    """Evaluations queued and not started yet, by queue (the broker holds them; nothing runs them)."""
    waiting: dict[str, list[int]] = {}
    for task in (tasks.evaluate_pull_request, tasks.evaluate_pull_request_in_background):
        queue = queue_of(task)
        monkeypatch.setattr(task, "delay", lambda pk, queue=queue: waiting.setdefault(queue, []).append(pk))
    return waiting


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks, monkeypatch):
    """A GitHub webhook acknowledged, then handed over by the dispatcher and processed (one pass per event)."""
    monkeypatch.setattr("reviews.webhooks.deliveries_handed_over_by_request", lambda: False)

    def post(event: str, payload: dict) -> None:
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()), HTTP_X_HUB_SIGNATURE_256=signature,
            )  # fmt: skip
        assert response.status_code == 202
        pending = list(WebhookDelivery.objects.filter(status="pending").values_list("pk", flat=True))
        assert tasks.process_webhook_deliveries(pending) == {"processed": len(pending)}

    return post


@pytest.fixture
def evaluations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = policies.pull_request_evaluate

    def spy(**kwargs):
        calls.append(kwargs["pull_request_id"])
        return real(**kwargs)

    monkeypatch.setattr("reviews.services.verdicts.pull_request_evaluate", spy)
    return calls


def test_a_backfill_queues_its_evaluations_on_the_background_queue_not_the_webhooks_one(
    fake_github, github_connection, queued, django_capture_on_commit_callbacks
):
    fake_github.seed_repository("octocat/Hello-World", n_pulls=20)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    with django_capture_on_commit_callbacks(execute=True):
        repository_sync(repository=repository)
    open_ids = sorted(PullRequest.objects.filter(repository=repository, state="open").values_list("pk", flat=True))
    assert open_ids  # the fake's repositories mix open, merged and closed pull requests
    assert "webhooks" not in queued
    assert sorted(queued["sync"]) == open_ids
    assert queue_of(tasks.evaluate_pull_request_in_background) == "sync"
    assert queue_of(tasks.evaluate_pull_request) == "webhooks"
    assert all(pr.evaluation_owed_since for pr in PullRequest.objects.filter(pk__in=open_ids))  # the debt is marked

    with django_capture_on_commit_callbacks(execute=True):
        repository_sync(repository=repository, full=True)  # the same pull requests again while their copies wait
    assert sorted(queued["sync"]) == open_ids  # once each

    waiting = open_ids[0]
    tasks.evaluate_pull_request_in_background.run(waiting)  # the background worker reaches one
    pull_request = PullRequest.objects.get(pk=waiting)
    assert PolicyEvaluation.objects.filter(pull_request=pull_request, head_sha=pull_request.head_sha).exists()
    assert pull_request.evaluation_owed_since is None
    assert tasks.evaluate_pull_request_in_background.run(waiting) == "settled"  # a late copy finds nothing owed


def test_a_webhook_pass_evaluates_at_once_although_a_sync_evaluation_of_its_pull_request_waits(
    deliver, queued, evaluations, django_capture_on_commit_callbacks
):
    deliver("pull_request", fixture("pull_request.opened"))
    pull_request = PullRequest.objects.get()
    assert evaluations == [pull_request.pk]
    with django_capture_on_commit_callbacks(execute=True):
        pull_request_evaluations_enqueue(pull_request_ids=[pull_request.pk], in_background=True)  # a sync stored it
    assert queued == {"sync": [pull_request.pk]}

    deliver("pull_request_review", fixture("pull_request_review.submitted.approved"))
    assert evaluations == [pull_request.pk, pull_request.pk]  # in the webhook's own task, not behind the backfill
    pull_request.refresh_from_db()
    assert pull_request.evaluation_owed_since is None
    newest = PolicyEvaluation.objects.filter(pull_request=pull_request).order_by("-pk").first()
    assert newest is not None and newest.head_sha == pull_request.head_sha
    assert tasks.evaluate_pull_request_in_background.run(pull_request.pk) == "settled"  # the sync's copy, later
    assert len(evaluations) == 2


def test_an_evaluation_for_the_webhooks_queue_is_not_held_back_by_a_sync_evaluation_waiting(
    deliver, queued, django_capture_on_commit_callbacks
):
    # A failed webhook pass, a policy change or an override queues its evaluation on the webhooks queue: a copy
    # waiting behind a backfill must not stand for it.
    deliver("pull_request", fixture("pull_request.opened"))
    pull_request = PullRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        pull_request_evaluations_enqueue(pull_request_ids=[pull_request.pk], in_background=True)
        pull_request_evaluations_enqueue(pull_request_ids=[pull_request.pk])
    evaluation_enqueue_now(pull_request.pk)
    assert queued == {"sync": [pull_request.pk], "webhooks": [pull_request.pk]}  # each queue once

    # The other way round: with one waiting on the webhooks queue, which reads the sync's change when it starts,
    # a sync queues none behind the backfill.
    other = PullRequestFactory(repository=pull_request.repository)
    evaluation_enqueue_now(other.pk)
    with django_capture_on_commit_callbacks(execute=True):
        pull_request_evaluations_enqueue(pull_request_ids=[other.pk], in_background=True)
    assert queued == {"sync": [pull_request.pk], "webhooks": [pull_request.pk, other.pk]}


def test_the_reconciler_leaves_a_sync_evaluation_waiting_in_the_background_where_it_is(
    queued, django_capture_on_commit_callbacks
):
    pull_request = PullRequestFactory(state="open")  # a backfill stored it: no verdict on its head yet
    with django_capture_on_commit_callbacks(execute=True):
        pull_request_evaluations_enqueue(pull_request_ids=[pull_request.pk], in_background=True)
    PullRequest.objects.filter(pk=pull_request.pk).update(
        evaluation_owed_since=timezone.now() - dt.timedelta(minutes=5)
    )

    assert tasks.reconcile_verdicts() == "evaluated 0, reported 0, 1 waiting in the background"
    assert queued == {"sync": [pull_request.pk]}  # not moved in front of the webhooks' passes

    from django.core.cache import cache

    cache.clear()  # the broker's Redis restarted empty: the waiting copy is gone, and so is its mark
    assert tasks.reconcile_verdicts() == "evaluated 1, reported 0"
    assert queued == {"sync": [pull_request.pk], "webhooks": [pull_request.pk]}
