"""The hand-over under load (issue 15): a batch of deliveries is claimed in one statement, a task stopped early gives
back what it did not start, the dispatcher batches what is due once work already waits for the workers, and a
worker keeps its database connection from one task to the next."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config import celery_signals
from reviews import tasks
from reviews.models import Connection, WebhookDelivery
from reviews.services import webhooks
from reviews.services.webhooks import (
    DISPATCH_BATCH,
    DISPATCH_MAX_IN_FLIGHT,
    STALE_CLAIM,
    webhook_deliveries_claim,
    webhook_deliveries_dispatch,
    webhook_delivery_claim,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def github() -> Connection:
    return Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")


def stored(github: Connection, count: int, *, due: dt.datetime | None = None) -> list[int]:
    """`count` ping deliveries, due at once (as the view stores them for the dispatcher), oldest first."""
    now = timezone.now()
    first = WebhookDelivery.objects.count()
    rows = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            provider="github",
            delivery_id=f"batch-{first + index}",
            event="ping",
            headers={"X-GitHub-Event": "ping"},
            body='{"zen": "Keep it logically awesome."}',
            connection=github,
            received_at=now,
            next_attempt_at=(due or now) + dt.timedelta(microseconds=index),
        )
        for index in range(count)
    )
    return [row.pk for row in rows]


def test_a_batch_is_claimed_in_one_statement_with_its_connections_skipping_what_another_worker_holds(github):
    first, held, third = stored(github, 3)
    assert webhook_delivery_claim(delivery_id=held, token="another-worker") is not None

    with CaptureQueriesContext(connection) as captured:
        claimed = webhook_deliveries_claim(delivery_ids=[third, held, first], token="this-task")
        assert [delivery.connection.name for delivery in claimed] == ["GitHub", "GitHub"]  # no query per delivery

    assert [delivery.pk for delivery in claimed] == [third, first]  # in the order asked, the held one left out
    assert len(captured) == (1 if connection.vendor == "postgresql" else 2)  # SQLite: the connections read after
    rows = {row.pk: row for row in WebhookDelivery.objects.filter(pk__in=[first, held, third])}
    assert [(rows[pk].status, rows[pk].claim_token, rows[pk].attempts) for pk in (first, held, third)] == [
        ("processing", "this-task", 1),
        ("processing", "another-worker", 1),
        ("processing", "this-task", 1),
    ]
    assert all(delivery.status == "processing" and delivery.attempts == 1 for delivery in claimed)
    stored_row = WebhookDelivery.objects.get(pk=first)
    for name in ("headers", "body", "received_at", "claimed_at", "next_attempt_at", "connection_id"):
        assert getattr(claimed[1], name) == getattr(stored_row, name)  # as a queryset reads them
    assert webhook_deliveries_claim(delivery_ids=[first, third], token="a-third-task") == []  # claimed once


def test_the_claim_of_a_batch_costs_one_statement_whatever_its_size(github):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite reads the connections in a second statement")
    ids = stored(github, DISPATCH_BATCH)
    with CaptureQueriesContext(connection) as captured:
        assert len(webhook_deliveries_claim(delivery_ids=ids, token="t")) == DISPATCH_BATCH
    assert len(captured) == 1


def test_a_redelivered_message_takes_its_batch_back_but_not_what_is_done(github):
    first, second = stored(github, 2)
    webhook_deliveries_claim(delivery_ids=[first, second], token="message-1")
    WebhookDelivery.objects.filter(pk=first).update(status=WebhookDelivery.Status.PROCESSED)  # done before the crash
    again = webhook_deliveries_claim(delivery_ids=[first, second], token="message-1")
    assert [delivery.pk for delivery in again] == [second]
    assert WebhookDelivery.objects.get(pk=second).attempts == 2


def test_a_task_stopped_early_gives_back_the_deliveries_it_did_not_start(github, monkeypatch):
    first, second, third = stored(github, 3)
    started: list[int] = []

    def stopped_at_the_first(*, delivery):
        started.append(delivery.pk)
        raise KeyboardInterrupt  # the worker is stopping; nothing catches it

    monkeypatch.setattr(tasks, "webhook_delivery_process", stopped_at_the_first)
    with pytest.raises(KeyboardInterrupt):
        tasks.deliveries_process([first, second, third], token="stopping")

    assert started == [first]
    rows = {row.pk: row for row in WebhookDelivery.objects.filter(pk__in=[first, second, third])}
    assert rows[first].status == "processing"  # under way when it stopped: taken back when its claim is stale
    for pk in (second, third):
        assert (rows[pk].status, rows[pk].attempts, rows[pk].dispatches) == ("pending", 0, 0)  # never attempted
        assert rows[pk].next_attempt_at <= timezone.now()  # due again at once


def test_while_work_waits_for_the_workers_what_is_due_goes_in_one_batch(github):
    batches: list[list[int]] = []
    stored(github, 1)
    assert webhook_deliveries_dispatch(send=batches.append) == 1  # the workers are free: it goes alone
    waiting = stored(github, 5)
    assert webhook_deliveries_dispatch(send=batches.append) == 5
    assert batches[1:] == [waiting]  # one is still waiting for a worker: the five go together


def test_at_the_cap_a_freed_place_takes_a_whole_batch_not_one_delivery(github):
    batches: list[list[int]] = []
    stored(github, DISPATCH_MAX_IN_FLIGHT + 2 * DISPATCH_BATCH)
    assert webhook_deliveries_dispatch(send=batches.append) == DISPATCH_MAX_IN_FLIGHT
    assert webhook_deliveries_dispatch(send=batches.append) == 0  # the workers are behind: the rest waits here
    taken_up = batches[0][:1]  # a worker claims one delivery of the first batch
    WebhookDelivery.objects.filter(pk__in=taken_up).update(status=WebhookDelivery.Status.PROCESSING)
    batches.clear()
    assert webhook_deliveries_dispatch(send=batches.append) == DISPATCH_BATCH
    assert [len(batch) for batch in batches] == [DISPATCH_BATCH]  # never one at a time: that is what merges nothing


def test_a_dispatcher_woken_by_a_new_delivery_may_leave_stale_claims_for_its_next_look(github):
    (held,) = stored(github, 1)
    webhook_delivery_claim(delivery_id=held, token="dead-worker")
    stale = timezone.now() - STALE_CLAIM - dt.timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk=held).update(claimed_at=stale)
    sent: list[list[int]] = []
    assert webhook_deliveries_dispatch(send=sent.append, reclaim=False) == 0
    assert webhook_deliveries_dispatch(send=sent.append) == 1
    assert sent == [[held]]


def _worker_task() -> SimpleNamespace:
    return SimpleNamespace(
        name="reviews.tasks.process_webhook_deliveries",
        request=SimpleNamespace(is_eager=False, delivery_info={"routing_key": "sync"}),
    )


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_one_task_to_the_next_until_it_is_too_old(settings):
    from config.celery import app

    assert app.conf.get("CELERY_DB_REUSE_MAX")  # Celery's fixup does not close it around every task
    connection.ensure_connection()
    opened = connection.connection
    connection.close_at = None if connection.settings_dict["CONN_MAX_AGE"] is None else float("inf")
    celery_signals._task_started(task_id="one", task=_worker_task())
    celery_signals._task_ended(task_id="one", task=_worker_task(), state="SUCCESS")
    assert connection.connection is opened

    connection.close_at = 0.0  # older than CONN_MAX_AGE
    celery_signals._task_started(task_id="two", task=_worker_task())
    assert connection.connection is None  # closed before the task: it opens a new one
    celery_signals._task_ended(task_id="two", task=_worker_task(), state="SUCCESS")


def test_a_dispatchers_look_at_a_new_delivery_costs_one_statement(github):
    """The dispatcher looks at every new delivery (hundreds a second under load): what is in flight and the lease of
    what is due, oldest first, in one prepared statement on PostgreSQL."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite leases in a transaction of a read and an update")
    (new,) = stored(github, 1)
    sent: list[list[int]] = []
    with CaptureQueriesContext(connection) as captured:
        assert webhook_deliveries_dispatch(send=sent.append, reclaim=False) == 1
    assert len(captured) == 1
    assert sent == [[new]]
    leased = WebhookDelivery.objects.get(pk=new)
    assert leased.dispatches == 1 and leased.next_attempt_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_a_row_another_dispatcher_is_leasing_is_skipped_and_the_count_caps_what_is_leased(github):
    """Two dispatchers: the row one of them holds is neither waited for nor leased twice by the other, and what
    waits handed over still stops a look at the cap."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to skip")
    held, *free = stored(github, 3)
    sent: list[list[int]] = []
    other = connections.create_connection(DEFAULT_DB_ALIAS)  # the other dispatcher's session, mid-lease
    try:
        with other.cursor() as cursor, connection.cursor() as this:
            this.execute("SET lock_timeout = '5s'")  # a look that waited for the held row fails here, never hangs
            cursor.execute("BEGIN")
            table = WebhookDelivery._meta.db_table
            cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [held])  # noqa: S608
            assert webhook_deliveries_dispatch(send=sent.append, reclaim=False) == 2
            cursor.execute("ROLLBACK")
            this.execute("RESET lock_timeout")
    finally:
        other.close()
    assert sorted(sent) == [[pk] for pk in sorted(free)]  # the workers were free: each went alone
    assert webhook_deliveries_dispatch(send=sent.append, reclaim=False, max_in_flight=2) == 0  # two wait: the cap
    assert webhook_deliveries_dispatch(send=sent.append, reclaim=False, max_in_flight=3) == 1
    assert sent[-1] == [held]


@pytest.mark.parametrize("dispatches", [45, 1100])
def test_a_delivery_handed_over_many_times_is_leased_for_the_longest_lease_not_an_overflow(github, dispatches):
    # A broker down for hours (or a task lost on every hand-over): each look leases the oldest due delivery again.
    # Its lease doubles up to the longest; the doubling must not overflow (Python's timedelta past ~42 hand-overs,
    # PostgreSQL's double past 1023), or that row, always first due, stops every later look of every dispatcher.
    (pk,) = stored(github, 1)
    WebhookDelivery.objects.filter(pk=pk).update(dispatches=dispatches)
    now = timezone.now()
    sent: list[list[int]] = []
    assert webhook_deliveries_dispatch(send=sent.append, now=now) == 1
    assert sent == [[pk]]
    row = WebhookDelivery.objects.get(pk=pk)
    assert (row.next_attempt_at, row.dispatches) == (now + webhooks.MAX_DISPATCH_LEASE, dispatches + 1)


def test_the_lease_of_many_hand_overs_is_the_longest_on_sqlites_path_too(github):
    (pk,) = stored(github, 1)
    WebhookDelivery.objects.filter(pk=pk).update(dispatches=45)
    now = timezone.now()
    assert webhooks._lease_due(now, 10) == [pk]
    assert WebhookDelivery.objects.get(pk=pk).next_attempt_at == now + webhooks.MAX_DISPATCH_LEASE


def test_a_cap_full_of_lost_hand_overs_frees_itself_when_their_leases_run_out(github):
    # The broker lost every hand-over: the cap is full of leased rows no worker will claim. It must not block the
    # dispatcher for good: once their leases run out they are due again, oldest first, and none is counted in flight.
    now = timezone.now()
    lost = stored(github, DISPATCH_MAX_IN_FLIGHT)
    WebhookDelivery.objects.filter(pk__in=lost).update(next_attempt_at=now + webhooks.DISPATCH_LEASE, dispatches=1)
    waiting = stored(github, 3, due=now)
    sent: list[list[int]] = []
    assert webhook_deliveries_dispatch(send=sent.append, now=now) == 0  # at the cap: the rest waits
    later = now + webhooks.DISPATCH_LEASE + dt.timedelta(seconds=1)
    assert webhook_deliveries_dispatch(send=sent.append, now=later) == DISPATCH_MAX_IN_FLIGHT  # the cap again
    handed = [pk for batch in sent for pk in batch]
    assert handed == [*waiting, *lost[: DISPATCH_MAX_IN_FLIGHT - 3]]  # oldest due first
    again = later + webhooks.DISPATCH_LEASE * 2  # the first hand-overs' leases run out too: the rest goes first
    assert webhook_deliveries_dispatch(send=sent.append, now=again) == DISPATCH_MAX_IN_FLIGHT
    assert lost[-3:] == [pk for batch in sent for pk in batch][DISPATCH_MAX_IN_FLIGHT : DISPATCH_MAX_IN_FLIGHT + 3]
