"""A webhook delivery's life after it is acknowledged: the database is the queue's source of truth.

Transient failures are retried from the row with backoff and then dead-lettered with their reason; payloads that
cannot be stored fail for good; deliveries whose hand-over or worker was lost are dispatched again; a sender's
retry of an unfinished delivery processes it again instead of being told "duplicate"."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
from django.db import DataError, OperationalError
from django.utils import timezone

from reviews.models import Connection, PolicyEvaluation, PullRequest, WebhookDelivery
from reviews.services import webhooks as inbox
from reviews.services.enqueue import report_enqueue_now
from reviews.services.webhooks import (
    DISPATCH_LEASE,
    MAX_ATTEMPTS,
    RETRY_BACKOFF,
    STALE_CLAIM,
    webhook_deliveries_dispatch,
    webhook_delivery_claim,
    webhook_delivery_requeue,
)
from reviews.tasks import dispatch_due_deliveries, process_webhook_delivery, reconcile_verdicts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
SECRET = "lifecycle-secret"

pytestmark = pytest.mark.django_db


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET


@pytest.fixture(autouse=True)
def own_cache(settings):
    # The "already queued" marks live in the cache: each test starts with none (and never flushes a shared Redis).
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(event: str, payload: dict, *, delivery: str | None = None, **headers: str):
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/webhooks/github/",
                data=body,
                content_type="application/json",
                HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=delivery or str(uuid.uuid4()),
                HTTP_X_HUB_SIGNATURE_256=signature,
                **headers,
            )

    return post


class Flaky:
    """Makes the apply step raise `error` for the next `times` calls, then behave."""

    def __init__(self, monkeypatch, error: BaseException, times: int = 1) -> None:
        self.error, self.times, self.calls = error, times, 0
        self.real = inbox.webhook_event_apply
        monkeypatch.setattr(inbox, "webhook_event_apply", self)

    def __call__(self, **kwargs):
        self.calls += 1
        if self.times > 0:
            self.times -= 1
            raise self.error
        return self.real(**kwargs)


def _make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


def test_a_transient_failure_is_retried_from_the_row_with_backoff(deliver, monkeypatch):
    Flaky(monkeypatch, OperationalError("server closed the connection unexpectedly"))
    before = timezone.now()
    assert deliver("pull_request", fixture("pull_request.opened")).status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.attempts == 1
    assert "OperationalError: server closed the connection" in delivery.error
    assert delivery.next_attempt_at >= before + RETRY_BACKOFF[0]
    assert PullRequest.objects.count() == 0

    assert dispatch_due_deliveries() == 0  # not due before its backoff runs out
    _make_due(delivery)
    assert dispatch_due_deliveries() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error) == ("processed", 2, "")
    assert PullRequest.objects.count() == 1


def test_retries_end_in_the_dead_letter_state_with_the_reason_and_a_replay_works(deliver, monkeypatch):
    flaky = Flaky(monkeypatch, OperationalError("database is away"), times=MAX_ATTEMPTS)
    deliver("pull_request", fixture("pull_request.opened"))
    delivery = WebhookDelivery.objects.get()
    for _ in range(MAX_ATTEMPTS - 1):
        _make_due(delivery)
        dispatch_due_deliveries()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert delivery.attempts == MAX_ATTEMPTS
    assert flaky.calls == MAX_ATTEMPTS
    assert f"Attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}: OperationalError: database is away" in delivery.error
    _make_due(delivery)
    assert dispatch_due_deliveries() == 0  # dead letters wait for a person

    assert webhook_delivery_requeue(delivery=delivery)
    assert process_webhook_delivery.delay(delivery.pk).get() == "processed"
    assert PullRequest.objects.count() == 1


@pytest.mark.parametrize(
    "error",
    [DataError("integer out of range"), ValueError("A string literal cannot contain NUL (0x00) characters.")],
    ids=["out of range", "NUL"],
)
def test_a_payload_the_database_cannot_store_fails_for_good(deliver, monkeypatch, error):
    flaky = Flaky(monkeypatch, error, times=99)
    deliver("pull_request", fixture("pull_request.opened"))
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.error.startswith("Cannot be stored: ")
    _make_due(delivery)
    assert dispatch_due_deliveries() == 0
    assert flaky.calls == 1


def test_an_error_text_the_database_could_not_store_is_cleaned_so_the_row_never_stays_processing(deliver, monkeypatch):
    Flaky(monkeypatch, OperationalError("bad byte \x00 in the message"))
    deliver("pull_request", fixture("pull_request.opened"))
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert "\x00" not in delivery.error
    assert "bad byte \\x00 in the message" in delivery.error
    # A lone surrogate (which PostgreSQL refuses) is written out too, and the text is bounded.
    assert inbox._error_text("a lone \udc80" + "x" * 5000).startswith("a lone \\udc80x")
    assert len(inbox._error_text("x" * 5000)) == 2000


def test_a_delivery_whose_worker_died_is_dispatched_again(deliver, monkeypatch):
    monkeypatch.setattr(process_webhook_delivery, "delay", lambda pk: None)  # the hand-over is lost
    deliver("pull_request", fixture("pull_request.opened"))
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="task-that-dies") is not None
    assert dispatch_due_deliveries() == 0  # a live worker may hold it
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_at=timezone.now() - STALE_CLAIM - dt.timedelta(1))
    assert dispatch_due_deliveries() == 1
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    assert PullRequest.objects.count() == 1


def test_a_killed_workers_claim_is_taken_back_within_two_minutes(deliver, monkeypatch):
    # bench/faults.py: a worker SIGKILLed mid-delivery left it "processing" for 3 minutes, past the drain goal;
    # Redis redelivers the unacknowledged message only after an hour, or never when it restarted empty.
    monkeypatch.setattr(process_webhook_delivery, "delay", lambda pk: None)
    deliver("pull_request", fixture("pull_request.opened"))
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="task-killed-with-its-worker") is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_at=timezone.now() - dt.timedelta(minutes=2))
    assert dispatch_due_deliveries() == 1
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    # ...and never one a live worker may still hold: the task is stopped before its claim counts as stale.
    assert dt.timedelta(seconds=process_webhook_delivery.time_limit) < STALE_CLAIM


def test_the_broker_redelivering_the_same_message_takes_the_dead_workers_claim_back_at_once(deliver, monkeypatch):
    monkeypatch.setattr(process_webhook_delivery, "delay", lambda pk: None)
    deliver("pull_request", fixture("pull_request.opened"))
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="message-1") is not None
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="message-2") is None  # another message waits
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="message-1") is not None  # the same one: redelivered


def test_the_task_redelivered_by_the_broker_takes_its_own_claim_back_and_no_other_task_does(deliver, monkeypatch):
    # A worker killed mid-delivery never acknowledged its message: the broker hands the same message (same task id)
    # to another worker, whose claim token is that id.
    monkeypatch.setattr(process_webhook_delivery, "delay", lambda pk: None)
    deliver("pull_request", fixture("pull_request.opened"))
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="message-of-the-killed-worker") is not None
    assert process_webhook_delivery.apply([delivery.pk], task_id="another-message").get() == "skipped"
    assert process_webhook_delivery.apply([delivery.pk], task_id="message-of-the-killed-worker").get() == "processed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PROCESSED, 2)
    assert PullRequest.objects.count() == 1


def test_a_stale_claim_on_its_last_attempt_is_dead_lettered_with_the_reason(deliver, monkeypatch):
    monkeypatch.setattr(process_webhook_delivery, "delay", lambda pk: None)
    deliver("pull_request", fixture("pull_request.opened"))
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=MAX_ATTEMPTS - 1)
    assert webhook_delivery_claim(delivery_id=delivery.pk, token="the-last-try") is not None
    stale = timezone.now() - STALE_CLAIM - dt.timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_at=stale)
    assert dispatch_due_deliveries() == 0
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert delivery.error == "A worker stopped while processing it (retries exhausted)"
    assert PullRequest.objects.count() == 0


def test_the_dispatcher_sends_every_due_delivery_once_with_no_fixed_cap_and_doubles_the_lease():
    connection = Connection.objects.create(provider="github", base_url="https://api.github.com")
    past = timezone.now() - dt.timedelta(minutes=30)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            provider="github",
            delivery_id=f"d{index}",
            event="ping",
            body="{}",
            connection=connection,
            received_at=past,
            next_attempt_at=past + dt.timedelta(seconds=index),
        )
        for index in range(1234)
    )
    # Read before the dispatch: its lease gives every row the same next_attempt_at, and ties come in any order.
    oldest_first = list(WebhookDelivery.objects.order_by("received_at", "next_attempt_at").values_list("pk", flat=True))
    sent: list[int] = []
    now = timezone.now()
    unbounded = 10**6  # flow control aside (its own test): no fixed cap on what is sent
    # Read before the dispatch: leasing moves every next_attempt_at to the same moment.
    oldest_first = list(WebhookDelivery.objects.order_by("next_attempt_at", "pk").values_list("pk", flat=True))
    assert webhook_deliveries_dispatch(send=sent.extend, now=now, chunk=100, max_in_flight=unbounded) == 1234
    assert len(set(sent)) == 1234
    assert sent == oldest_first
    assert webhook_deliveries_dispatch(send=sent.extend, now=now, max_in_flight=unbounded) == 0  # leased: not twice
    later = now + DISPATCH_LEASE + dt.timedelta(seconds=1)
    # Nobody took them: the hand-over was lost.
    assert webhook_deliveries_dispatch(send=sent.extend, now=later, max_in_flight=unbounded) == 1234
    delivery = WebhookDelivery.objects.first()
    assert delivery is not None
    assert delivery.next_attempt_at == later + DISPATCH_LEASE * 2
    assert delivery.dispatches == 2


def test_a_redelivery_of_a_dead_lettered_delivery_processes_it_again(deliver, monkeypatch):
    Flaky(monkeypatch, OperationalError("away"), times=MAX_ATTEMPTS)
    deliver("pull_request", fixture("pull_request.opened"), delivery="guid-1")
    WebhookDelivery.objects.update(status=WebhookDelivery.Status.DEAD, attempts=MAX_ATTEMPTS - 1)
    monkeypatch.undo()
    response = deliver("pull_request", fixture("pull_request.opened"), delivery="guid-1")
    assert response.status_code == 202
    assert response.json()["status"] == "requeued"
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.PROCESSED
    assert PullRequest.objects.count() == 1


def test_a_redelivery_of_a_processed_delivery_is_a_duplicate(deliver):
    deliver("pull_request", fixture("pull_request.opened"), delivery="guid-2")
    response = deliver("pull_request", fixture("pull_request.opened"), delivery="guid-2")
    assert response.status_code == 200
    pk = WebhookDelivery.objects.get().pk
    assert response.json() == {"status": "duplicate", "delivery": pk, "state": "processed"}


# --- instances: a header never creates a Connection ------------------------------------------------------------------


def test_an_enterprise_host_no_connection_knows_is_stored_and_refused(deliver, settings):
    settings.GITHUB_API_URL = "https://api.github.com"
    response = deliver("pull_request", fixture("pull_request.opened"), HTTP_X_GITHUB_ENTERPRISE_HOST="evil.example")
    assert response.status_code == 422
    assert "evil.example" in response.json()["error"]
    assert not Connection.objects.filter(base_url__contains="evil.example").exists()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.connection) == (WebhookDelivery.Status.FAILED, None)
    assert "evil.example" in delivery.error
    assert PullRequest.objects.count() == 0


def test_the_configured_enterprise_url_is_kept_with_its_scheme_port_and_path(deliver, settings):
    settings.GITHUB_API_URL = "http://ghe.internal:8443/prefix/api/v3"
    response = deliver("pull_request", fixture("pull_request.opened"), HTTP_X_GITHUB_ENTERPRISE_HOST="ghe.internal")
    assert response.status_code == 202
    assert WebhookDelivery.objects.get().connection.base_url == "http://ghe.internal:8443/prefix/api/v3"


def test_a_gitlab_instance_header_maps_to_the_configured_url(client, settings, django_capture_on_commit_callbacks):
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"
    settings.GITLAB_URL = "http://gitlab.internal:8929/gitlab"
    body = json.dumps({"object_kind": "push", "project": {}}).encode()
    headers = {"HTTP_X_GITLAB_TOKEN": "gl-token", "HTTP_X_GITLAB_EVENT": "Push Hook"}
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post(
            "/webhooks/gitlab/", data=body, content_type="application/json",
            HTTP_X_GITLAB_INSTANCE="http://gitlab.internal:8929", HTTP_X_GITLAB_EVENT_UUID="u1", **headers,
        )  # fmt: skip
        unknown = client.post(
            "/webhooks/gitlab/", data=body, content_type="application/json",
            HTTP_X_GITLAB_INSTANCE="https://elsewhere.example", HTTP_X_GITLAB_EVENT_UUID="u2", **headers,
        )  # fmt: skip
    assert known.status_code == 202
    assert WebhookDelivery.objects.get(delivery_id="u1").connection.base_url == "http://gitlab.internal:8929/gitlab"
    assert unknown.status_code == 422
    assert WebhookDelivery.objects.get(delivery_id="u2").status == WebhookDelivery.Status.FAILED
    assert Connection.objects.filter(provider="gitlab").count() == 1


# --- verdicts lost with the broker ----------------------------------------------------------------------------------


def test_the_reconciler_evaluates_heads_that_have_no_verdict(deliver, monkeypatch):
    from django.core.cache import cache

    from reviews import tasks

    monkeypatch.setattr(tasks, "pull_request_verdict_pass", lambda **kwargs: None)  # the worker died mid-pass...
    deliver("pull_request", fixture("pull_request.opened"))
    monkeypatch.undo()
    cache.clear()  # ...and the broker lost everything queued
    pull_request = PullRequest.objects.get()
    assert not PolicyEvaluation.objects.exists()
    assert reconcile_verdicts() == "evaluated 1, reported 0"
    assert PolicyEvaluation.objects.filter(pull_request=pull_request, head_sha=pull_request.head_sha).exists()
    assert reconcile_verdicts() == "evaluated 0, reported 0"


def test_the_reconciler_posts_again_a_verdict_the_provider_never_accepted(
    client, fake_github, github_connection, django_capture_on_commit_callbacks, monkeypatch
):
    github_connection.webhook_secret = SECRET
    github_connection.save()
    repo = fake_github.add_repo("acme/shop")
    fake_github.add_pull("acme/shop", number=7, author="ada", head_sha="f" * 40)
    fake_github.add_file("acme/shop", 7, "shop/cart.py", additions=1, deletions=1)
    fake_github.fail_next("/statuses/", 502, times=2)  # the pass's post and its queued retry
    payload = {
        "action": "opened",
        "number": 7,
        "pull_request": fake_github.update_pull("acme/shop", 7),
        "repository": repo,
        "sender": {"login": "ada", "id": 1},
    }
    body = json.dumps(payload).encode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="pull_request",
            HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
            HTTP_X_HUB_SIGNATURE_256="sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        )  # fmt: skip
    evaluation = PolicyEvaluation.objects.get()
    assert evaluation.reported_at is None
    assert "502" in evaluation.report_error
    assert fake_github.statuses_posted == []

    assert reconcile_verdicts() == "evaluated 0, reported 0"  # too young: its own task may still retry
    # A verdict is never rewritten, so its age is what moves: the grace runs out.
    monkeypatch.setattr("reviews.selectors.verdicts.REPORT_GRACE", dt.timedelta(0))
    assert reconcile_verdicts() == "evaluated 0, reported 1"
    evaluation.refresh_from_db()
    assert evaluation.reported_at is not None
    assert [(s["sha"], s["context"]) for s in fake_github.statuses_posted] == [("f" * 40, "tandem/review-policy")]
    assert reconcile_verdicts() == "evaluated 0, reported 0"


def test_acknowledging_a_webhook_takes_one_statement_once_the_connections_are_known(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    def post(delivery: str):
        body = json.dumps(fixture("pull_request.opened")).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with django_capture_on_commit_callbacks(execute=False):
            return client.post(
                "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="pull_request",
                HTTP_X_GITHUB_DELIVERY=delivery, HTTP_X_HUB_SIGNATURE_256=signature,
            )  # fmt: skip

    Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    assert post("first").status_code == 202  # reads the connections once
    with django_assert_num_queries(1):  # INSERT … ON CONFLICT DO NOTHING RETURNING id
        assert post("second").status_code == 202
    with django_assert_num_queries(2):  # the insert finds it stored; the stored row is read back
        assert post("second").status_code == 200


def test_a_verdict_lost_with_the_broker_is_redone_within_two_minutes():
    # bench/faults.py: after Redis restarted empty, heads waited up to 2 minutes for the reconciler's next run, plus
    # the report grace, so open pull requests still had no status when the drain goal ran out.
    from django.conf import settings

    from reviews.selectors.verdicts import REPORT_GRACE

    schedule = settings.CELERY_BEAT_SCHEDULE["reconcile-verdicts"]
    every = dt.timedelta(seconds=float(schedule["schedule"]))  # type: ignore[arg-type]
    assert every + REPORT_GRACE <= dt.timedelta(minutes=1, seconds=30)  # a lost report: grace, then the next run
    assert dt.timedelta(seconds=float(schedule["options"]["expires"])) <= every  # type: ignore[index]


def test_the_dispatcher_and_the_reconciler_never_wait_behind_the_backlog_they_drain():
    # bench/faults.py: with 5,000 deliveries queued, beat's dispatcher messages sat behind them in the one queue and
    # expired (30 s) unrun, so deliveries of a killed worker stayed "processing" and lost hand-overs were not redone.
    from config.celery import app

    consumed = {queue.name for queue in app.amqp.queues.values()}  # a worker started without -Q takes them all
    for task in ("reviews.tasks.dispatch_due_deliveries", "reviews.tasks.reconcile_verdicts"):
        queue = app.amqp.router.route({}, task)["queue"].name
        assert queue != app.conf.task_default_queue
        assert queue in consumed
    assert app.amqp.router.route({}, "reviews.tasks.process_webhook_delivery")["queue"].name in consumed


def test_an_evaluation_or_report_already_waiting_is_not_queued_again(deliver, monkeypatch):
    # bench/faults.py: behind a backlog, every delivery of a pull request and every reconciler run queued one more
    # evaluation of it (18 copies of one were seen), and the backlog fed itself.
    from django.core.cache import cache

    from reviews import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.evaluate_pull_request, "delay", queued.append)  # queued, not started yet
    monkeypatch.setattr(tasks, "pull_request_verdict_pass", lambda **kwargs: None)  # the deliveries' pass was lost
    opened = fixture("pull_request.opened")
    deliver("pull_request", opened)
    deliver("pull_request", {**opened, "action": "edited"})
    assert reconcile_verdicts() == "evaluated 1, reported 0"
    pull_request = PullRequest.objects.get()
    assert queued == [pull_request.pk]

    cache.clear()  # the broker (its Redis) restarted empty: the waiting evaluation is gone, and so is its mark
    reconcile_verdicts()
    assert queued == [pull_request.pk, pull_request.pk]
    monkeypatch.undo()
    assert tasks.evaluate_pull_request(pull_request.pk) == "pending"  # it runs: the next change queues a new one
    assert PolicyEvaluation.objects.filter(pull_request=pull_request).exists()
    assert tasks.evaluate_pull_request(pull_request.pk) == "settled"  # the second copy finds nothing owed

    reports: list[int] = []
    monkeypatch.setattr(tasks.report_evaluation, "delay", reports.append)
    for _ in range(2):
        report_enqueue_now(PolicyEvaluation.objects.get().pk)
    assert len(reports) == 1


def test_a_redelivery_after_the_instance_is_configured_is_processed(deliver, settings):
    settings.GITHUB_API_URL = "https://api.github.com"
    payload = fixture("pull_request.opened")
    first = deliver("pull_request", payload, delivery="ghe-1", HTTP_X_GITHUB_ENTERPRISE_HOST="ghe.acme.io")
    assert first.status_code == 422
    Connection.objects.create(provider="github", name="GHE", base_url="https://ghe.acme.io/api/v3")
    again = deliver("pull_request", payload, delivery="ghe-1", HTTP_X_GITHUB_ENTERPRISE_HOST="ghe.acme.io")
    assert again.status_code == 202  # not "duplicate": a 2xx for an event that would never be processed
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.connection.name) == (WebhookDelivery.Status.PROCESSED, "GHE")
    assert PullRequest.objects.count() == 1


def test_a_replay_of_a_refused_delivery_finds_the_instance_configured_since(deliver, settings):
    settings.GITHUB_API_URL = "https://api.github.com"
    deliver("pull_request", fixture("pull_request.opened"), HTTP_X_GITHUB_ENTERPRISE_HOST="ghe.acme.io")
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_requeue(delivery=delivery)
    assert process_webhook_delivery.delay(delivery.pk).get() == "failed"  # still unknown: refused with the reason
    delivery.refresh_from_db()
    assert "ghe.acme.io" in delivery.error
    Connection.objects.create(provider="github", name="GHE", base_url="https://ghe.acme.io/api/v3")
    assert webhook_delivery_requeue(delivery=delivery)
    assert process_webhook_delivery.delay(delivery.pk).get() == "processed"
    delivery.refresh_from_db()
    assert delivery.connection.name == "GHE"


@pytest.mark.parametrize("instance", ["http://[::1", "http://[not-ipv6]/", "https://[::1]:99999/"])
def test_a_malformed_gitlab_instance_header_is_never_a_server_error(client, settings, instance):
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"
    for token in ("wrong", "gl-token"):
        response = client.post(
            "/webhooks/gitlab/", data=b'{"object_kind": "push"}', content_type="application/json",
            HTTP_X_GITLAB_TOKEN=token, HTTP_X_GITLAB_EVENT="Push Hook", HTTP_X_GITLAB_INSTANCE=instance,
        )  # fmt: skip
        assert response.status_code < 500
