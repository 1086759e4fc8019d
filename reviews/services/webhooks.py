"""Webhook deliveries: store as received, then process idempotently, then replay when asked.

Receiving writes only the WebhookDelivery row (so a 2xx never loses a webhook); processing happens in a
Celery task that claims the row, turns the payload into records through the provider adapter, and applies
them with the same upserts sync uses, in one transaction: a delivery either lands whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import DataError, InterfaceError, OperationalError, connections, models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from reviews.integrations import github as github_adapter
from reviews.integrations import gitlab as gitlab_adapter
from reviews.integrations.payloads import JsonRefused, decode_json_object
from reviews.integrations.records import PayloadError, UserRecord, WebhookEvent
from reviews.models import Commit, Connection, PullRequest, Repository, WebhookDelivery
from reviews.prepared import PreparedUpdate, bound_cursor
from reviews.services.enqueue import evaluations_owed_mark
from reviews.services.installations import installation_event_apply
from reviews.services.pairing import pairing_sessions_infer
from reviews.services.people import accounts_preloaded
from reviews.services.pull_requests import (
    approval_withdraw,
    comment_delete,
    comment_upsert,
    commit_status_upsert,
    commit_upsert,
    pull_request_commits_add,
    pull_request_stub,
    pull_request_upsert,
    repository_upsert,
    review_upsert,
)

logger = logging.getLogger(__name__)

# The database is the queue's source of truth; the broker only wakes a worker. A pending delivery is due at its
# `next_attempt_at`. Handing it to the broker leases it for DISPATCH_LEASE (doubling with each hand-over no worker
# took up, so a long backlog is not flooded with copies); when the lease runs out unclaimed, the hand-over was
# lost (a broker restarted empty) and the dispatcher hands it over again.
DISPATCH_LEASE = dt.timedelta(seconds=30)
MAX_DISPATCH_LEASE = dt.timedelta(minutes=10)
# Doublings past which a lease is the longest anyway: the exponent stops there, never overflowing (Python's timedelta
# past ~42 hand-overs, PostgreSQL's double past 1023) on a delivery handed over again and again, never claimed.
_MAX_LEASE_DOUBLINGS = 20
# A backlog is handed over in batches of at most this many, spread over at least DISPATCH_SPREAD tasks per run.
DISPATCH_BATCH = 10
DISPATCH_SPREAD = 4
# At most this many deliveries handed over and not yet taken up by a worker. Beyond it a backlog waits in the
# database, where the next hand-over takes it in batches (the events of one pull request applied in one task and
# evaluated once), instead of in the broker as one task per event that nothing can merge any more.
DISPATCH_MAX_IN_FLIGHT = 40
# The channel a new delivery is announced on (PostgreSQL NOTIFY, once the row that stores it is committed); the
# dispatcher process LISTENs on it (`manage.py dispatch_deliveries`).
DELIVERY_CHANNEL = "tandem_deliveries"
# While a web process stores deliveries less than NOTICE_WINDOW apart, its notice asks the dispatcher to look again
# (NOTICE_LOOK_AGAIN) once the window has passed, and the deliveries it stores within that window are not announced:
# that look hands them over. Under load that spares most deliveries a round trip and a PostgreSQL transaction; a
# delivery that comes alone is announced at once, and the dispatcher makes no second look for it.
NOTICE_WINDOW = 0.025
NOTICE_LOOK_AGAIN = "look-again"

# Processing a delivery makes no remote call (evaluations and reports are tasks of their own), so it is given a
# minute at most. A delivery left "processing" longer than that belongs to a worker that died (SIGKILL, a lost
# container): the broker redelivers its message only after its visibility timeout (an hour on Redis), or never when
# the broker restarted empty, so the dispatcher takes the claim back after the hard limit and a margin.
PROCESS_SOFT_TIME_LIMIT = 45
PROCESS_TIME_LIMIT = 60
STALE_CLAIM = dt.timedelta(seconds=PROCESS_TIME_LIMIT + 30)

# Waits before each retry of a delivery that failed for a transient reason (the database or a provider away, a
# bug fixed by the next deploy). After the last one it is dead-lettered: kept, with its reason, for a replay.
RETRY_BACKOFF = tuple(dt.timedelta(seconds=seconds) for seconds in (10, 30, 120, 600, 1800, 3600, 3 * 3600))
MAX_ATTEMPTS = len(RETRY_BACKOFF) + 1

# Errors that the same bytes would raise again: the payload holds a value the database cannot store (a number out
# of range, a NUL character, a lone surrogate, a year out of range) or that the adapter rejects.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PayloadError,
    DataError,
    ValidationError,
    ValueError,
    UnicodeError,
    OverflowError,
    RecursionError,
)

_ERROR_TEXT_LIMIT = 2000

PARSERS: dict[str, Callable[[str, dict[str, Any]], WebhookEvent]] = {
    "github": github_adapter.parse_webhook,
    "gitlab": gitlab_adapter.parse_webhook,
}

# Other apps process deliveries of their own providers (telemetry: pagerduty, opsgenie), registered from their
# AppConfig.ready: the function applies a claimed delivery and returns the pull requests it touched.
DeliveryProcessor = Callable[["WebhookDelivery"], list[int]]
delivery_processors: dict[str, DeliveryProcessor] = {}

# Telemetry registers here (in its AppConfig.ready) to receive deployments: reviews never imports telemetry.
DeploymentHandler = Callable[[Repository, WebhookEvent], None]
deployment_handlers: list[DeploymentHandler] = []
# ... and to answer GitHub's deployment protection rules (the deploy check).
ProtectionRuleHandler = Callable[[Repository, WebhookEvent], None]
protection_rule_handlers: list[ProtectionRuleHandler] = []


@dataclass(frozen=True)
class Received:
    pk: int
    created: bool
    # The delivery's model instance, built when first asked for: a new one's acknowledgement needs its id alone.
    instance: Callable[[], WebhookDelivery] = field(repr=False, compare=False)
    # A redelivery of one not yet processed (waiting for a retry, or dead-lettered): due again now.
    requeued: bool = False

    @functools.cached_property
    def delivery(self) -> WebhookDelivery:
        return self.instance()

    @classmethod
    def found(cls, delivery: WebhookDelivery, *, requeued: bool) -> Received:
        """A delivery that was stored already."""
        return cls(delivery.pk, created=False, requeued=requeued, instance=lambda: delivery)


@dataclass(frozen=True)
class Processed:
    """How one attempt ended: processed, ignored, failed (for good), retrying (later) or dead (retries spent)."""

    outcome: str
    touched: list[int] = field(default_factory=list)


def webhook_delivery_receive(
    *,
    provider: str,
    delivery_id: str,
    event: str,
    action: str,
    headers: dict[str, str],
    body: str,
    connection: Connection | None,
    hand_over_now: bool = True,
) -> Received:
    """Store a delivery exactly as received, once per provider + delivery id, in one statement.

    With `hand_over_now` the caller hands the new delivery to a worker itself, so it is leased until then and the
    dispatcher takes it up only if that hand-over is lost; without, it is due at once and the dispatcher hands it
    over. A redelivery of one that is waiting for a retry or dead-lettered makes it due again now: the sender
    retrying is a good moment to try again."""
    now = timezone.now()
    event, action = _storable(event), _storable(action)
    pk = _insert_once(
        provider=provider,
        delivery_id=delivery_id,
        event=event,
        action=action[:100],
        headers=headers,
        body=body,
        connection_id=connection.pk if connection is not None else None,
        received_at=now,
        next_attempt_at=now + DISPATCH_LEASE if hand_over_now else now,
        dispatches=1 if hand_over_now else 0,
        notify=not hand_over_now and connection is not None,
    )
    if pk is not None:
        instance = functools.partial(
            WebhookDelivery,
            pk=pk,
            provider=provider,
            delivery_id=delivery_id,
            event=event,
            action=action[:100],
            headers=headers,
            body=body,
            connection=connection,
            received_at=now,
        )
        return Received(pk, created=True, instance=instance)
    existing = WebhookDelivery.objects.get(provider=provider, delivery_id=delivery_id)
    if existing.connection_id is None and connection is not None:
        # Refused before for an instance no Connection knew; it knows it now: the redelivery is processed.
        requeued = _connected_now(existing, connection, now, hand_over_now=hand_over_now)
    else:
        requeued = _due_again(existing, now, hand_over_now=hand_over_now)
    if requeued and not hand_over_now and connection is not None:
        _announce_once_committed(existing.pk)  # due now, as a new delivery is: the dispatcher need not wait its poll
    return Received.found(existing, requeued=requeued)


def _storable(label: str) -> str:
    """An event or action name from the body, as a text column stores it: NUL and lone surrogates replaced. It only
    labels the record; the body keeps what was sent, and its adapter refuses such values with the reason."""
    return label.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")


def _connected_now(delivery: WebhookDelivery, connection: Connection, now: dt.datetime, *, hand_over_now: bool) -> bool:
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, connection__isnull=True, status=WebhookDelivery.Status.FAILED
    ).update(
        connection=connection,
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at=now + DISPATCH_LEASE if hand_over_now else now,
        dispatches=1 if hand_over_now else 0,
    )
    if updated:
        delivery.refresh_from_db()
    return bool(updated)


def _insert_once(*, notify: bool = False, **values: object) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new row's id, or None when the delivery is stored
    already. One round trip, and no savepoint: a duplicate is not an error (PostgreSQL and SQLite both say so).
    With `notify`, the dispatcher is told of the new row once it is committed (`_announce`)."""
    db = connections[WebhookDelivery.objects.db]
    statement = _insert_statement(db.alias)
    found, retried = _stored(db, statement.sql, _insert_params(statement, values, db))
    if found is None and retried:
        found = _stored_by_the_first_run(values)
    if found is None:
        return None
    pk = int(found[0])
    if notify:
        _announce_once_committed(pk)
    return pk


def _insert_params(statement: _InsertStatement, values: dict[str, object], db: Any) -> list[Any]:
    """The store's parameters, each value as its field prepares it for the database."""
    params = list(statement.defaults)
    for model_field, text in zip(statement.fields, statement.text, strict=True):
        value = values[model_field.attname]
        # A text field prepares a str as it is: a webhook's five strings need not ask (25 k instructions of 3.4 M).
        params.append(value if text and type(value) is str else model_field.get_db_prep_save(value, connection=db))
    return params


def _announce_once_committed(pk: int) -> None:
    """Tell the dispatcher of a delivery due now, once the caller's transaction commits; at once in autocommit (a
    request). Never fails the answer: the row is stored, and the dispatcher's own look finds it within a poll."""
    db = connections[WebhookDelivery.objects.db]
    if db.vendor == "postgresql":
        transaction.on_commit(lambda: _announce_unless_announced_lately(db.alias, pk), using=db.alias, robust=True)


def _stored(db: Any, sql: str, params: list[Any]) -> tuple[tuple[Any, ...] | None, bool]:
    """Run the store; its row, or None, and whether it ran a second time. Before a request's first statement on a
    kept connection Django checks it with a `SELECT 1` round trip (CONN_HEALTH_CHECKS); the store, which is
    idempotent, skips the check, and when the connection turns out dead it runs once more on a new one. Inside a
    transaction nothing is skipped or retried."""
    unchecked = db.connection is not None and db.health_check_enabled and not db.health_check_done
    retry = unchecked and not db.in_atomic_block
    if retry:
        db.health_check_done = True
    try:
        return _fetch_one(db, sql, params), False
    except (OperationalError, InterfaceError):
        if not retry:
            raise
    db.close()  # the check Django skipped would have found it dead; the next statement opens a new one
    return _fetch_one(db, sql, params), True


def _stored_by_the_first_run(values: dict[str, Any]) -> tuple[Any, ...] | None:
    """The row of a store whose first run PostgreSQL committed while its answer was lost with the connection: the
    same delivery received at this request's own moment (to the microsecond). Another request's is a duplicate."""
    return (
        WebhookDelivery.objects.filter(
            provider=values["provider"], delivery_id=values["delivery_id"], received_at=values["received_at"]
        )
        .values_list("pk")
        .first()
    )


def _fetch_one(db: Any, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with bound_cursor(db) as cursor:
        cursor.execute(sql, params)
        row: tuple[Any, ...] | None = cursor.fetchone()
    return row


_INSERT_DEFAULTS: dict[str, object] = {
    "status": WebhookDelivery.Status.PENDING,
    "attempts": 0,
    "error": "",
    "claim_token": "",
}
_INSERT_COLUMNS = (
    *_INSERT_DEFAULTS,
    "provider",
    "delivery_id",
    "event",
    "action",
    "headers",
    "body",
    "connection_id",
    "received_at",
    "next_attempt_at",
    "dispatches",
)


@dataclass(frozen=True)
class _InsertStatement:
    sql: str
    # The values of _INSERT_DEFAULTS as the database takes them (prepared once), then the fields of the values given.
    defaults: tuple[Any, ...]
    fields: tuple[models.Field[Any, Any], ...]
    # Whether each of `fields` is a plain text field (Django's CharField or TextField, not a subclass).
    text: tuple[bool, ...]


@functools.cache
def _insert_statement(alias: str) -> _InsertStatement:
    """The text of the store, made once per database: only the model's own column names go into it, every value is
    a parameter."""
    db = connections[alias]
    by_attname = {model_field.attname: model_field for model_field in WebhookDelivery._meta.concrete_fields}
    fields = tuple(by_attname[name] for name in _INSERT_COLUMNS)
    columns = ", ".join(db.ops.quote_name(str(model_field.column)) for model_field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {db.ops.quote_name(WebhookDelivery._meta.db_table)} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING {db.ops.quote_name('id')}"
    )
    defaults = tuple(
        model_field.get_db_prep_save(_INSERT_DEFAULTS[model_field.attname], connection=db)
        for model_field in fields[: len(_INSERT_DEFAULTS)]
    )
    given = fields[len(_INSERT_DEFAULTS) :]
    text = tuple(type(model_field) in {models.CharField, models.TextField} for model_field in given)
    return _InsertStatement(sql, defaults, given, text)


class _Notices(NamedTuple):
    """This process's last notice, per database (monotonic seconds, taken before the send)."""

    sent_at: float
    look_again: bool  # the notice asked the dispatcher to look again after NOTICE_WINDOW
    stored_at: float  # this process's last delivery, announced or not


_notices: dict[str, _Notices] = {}
_notice_clock = time.monotonic


def _announce_unless_announced_lately(alias: str, pk: int) -> None:
    """Announce a committed delivery, unless this process's last notice, less than NOTICE_WINDOW ago, asked the
    dispatcher to look again after the window: this row is committed by then. A notice asks that when the delivery
    came less than a window after this process's previous one. Only a notice that was sent counts (one whose send
    failed spares no other); two threads racing may both send, which costs nothing."""
    now = _notice_clock()
    last = _notices.get(alias)
    if last is not None and last.look_again and now - last.sent_at < NOTICE_WINDOW:
        _notices[alias] = last._replace(stored_at=now)
        return
    look_again = last is not None and now - last.stored_at < NOTICE_WINDOW
    _announce(alias, pk, look_again=look_again)
    _notices[alias] = _Notices(sent_at=now, look_again=look_again, stored_at=now)


def _announce(alias: str, pk: int, *, look_again: bool = False) -> None:
    """Wake the dispatcher (PostgreSQL NOTIFY) for a committed delivery, in a transaction of its own whose commit
    does not wait for the disk. PostgreSQL serialises the commits of all transactions that notify, holding a lock
    through each one's WAL flush: a NOTIFY in the INSERT's own transaction made concurrent webhooks wait for each
    other's flush, one after the other (half the inserts per second at 8 at once, twice the latency). The row is
    durable before this runs; a notice lost in a crash costs at most the dispatcher's poll interval."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('synchronous_commit', 'off', true), pg_notify(%s, %s)",
            [DELIVERY_CHANNEL, f"{pk} {NOTICE_LOOK_AGAIN}" if look_again else str(pk)],
        )


def _due_again(delivery: WebhookDelivery, now: dt.datetime, *, hand_over_now: bool) -> bool:
    # Waiting for a retry (it failed before) or dead-lettered; a new one still on its way is left to its hand-over.
    failed_before = delivery.status == WebhookDelivery.Status.PENDING and delivery.attempts > 0
    if not (failed_before or delivery.status == WebhookDelivery.Status.DEAD):
        return False
    retryable = Q(status=WebhookDelivery.Status.PENDING, attempts__gt=0) | Q(status=WebhookDelivery.Status.DEAD)
    updated = WebhookDelivery.objects.filter(retryable, pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at=now + DISPATCH_LEASE if hand_over_now else now,
        dispatches=1 if hand_over_now else 0,
    )
    if updated:
        delivery.refresh_from_db()
    return bool(updated)


def webhook_delivery_claim(*, delivery_id: int, token: str = "") -> WebhookDelivery | None:
    """Take a pending delivery for processing. None when it is done, or another worker holds it.

    `token` names the task message: when the broker redelivers that very message, the worker that held the claim
    died before acknowledging it, so its claim may be taken back at once."""
    claimed = webhook_deliveries_claim(delivery_ids=[delivery_id], token=token)
    return claimed[0] if claimed else None


def webhook_deliveries_claim(*, delivery_ids: list[int], token: str = "") -> list[WebhookDelivery]:
    """Take the pending deliveries among `delivery_ids` for processing, with their connections, in one statement
    on PostgreSQL (two on SQLite); in the order asked. Those done already or held by another worker are left out,
    as in `webhook_delivery_claim`."""
    if not delivery_ids:
        return []
    db = connections[WebhookDelivery.objects.db]
    now = timezone.now()
    table, quote = WebhookDelivery._meta.db_table, db.ops.quote_name
    names = [quote(str(model_field.column)) for model_field in WebhookDelivery._meta.concrete_fields]
    claimable = f"{quote('status')} = %s"
    params: list[Any] = [
        WebhookDelivery.Status.PROCESSING,
        WebhookDelivery._meta.get_field("claimed_at").get_db_prep_save(now, connection=db),
        token[:255],
        *delivery_ids,
        WebhookDelivery.Status.PENDING,
    ]
    if token:
        claimable += f" OR ({quote('status')} = %s AND {quote('claim_token')} = %s)"
        params += [WebhookDelivery.Status.PROCESSING, token[:255]]
    # Only the model's own names go into the text; every value is a parameter.
    sql = (
        f"UPDATE {quote(table)} SET {quote('status')} = %s, {quote('claimed_at')} = %s, "  # noqa: S608
        f"{quote('claim_token')} = %s, {quote('attempts')} = {quote('attempts')} + 1, {quote('dispatches')} = 0 "
        f"WHERE {quote('id')} IN ({', '.join(['%s'] * len(delivery_ids))}) AND ({claimable}) "
        f"RETURNING {', '.join(names)}"
    )
    with_connection = db.vendor == "postgresql"
    if with_connection:  # the connection joined in the same statement
        connection_table = Connection._meta.db_table
        connection_columns = ", ".join(
            f"{quote(connection_table)}.{quote(str(f.column))}" for f in Connection._meta.concrete_fields
        )
        claimed_columns = ", ".join(f"claimed.{name}" for name in names)
        sql = (
            f"WITH claimed AS ({sql}) SELECT {claimed_columns}, {connection_columns} FROM claimed "  # noqa: S608
            f"LEFT JOIN {quote(connection_table)} ON {quote(connection_table)}.{quote('id')} = "
            f"claimed.{quote('connection_id')}"
        )
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(WebhookDelivery._meta.concrete_fields)
    claimed = {}
    for row in rows:
        delivery = _instance_from_row(WebhookDelivery, row[:width], db)
        if with_connection:
            delivery.connection = _instance_from_row(Connection, row[width:], db) if row[width] is not None else None
        claimed[delivery.pk] = delivery
    if not with_connection:
        wanted = {delivery.connection_id for delivery in claimed.values()} - {None}
        known = Connection.objects.in_bulk(wanted)
        for delivery in claimed.values():
            delivery.connection = known.get(delivery.connection_id) if delivery.connection_id else None
    return [claimed[pk] for pk in dict.fromkeys(delivery_ids) if pk in claimed]


def _instance_from_row(model: type[Any], row: tuple[object, ...], db: Any) -> Any:
    """A model instance from its concrete columns as the database returned them, converted as a queryset would."""
    values = []
    for model_field, value in zip(model._meta.concrete_fields, row, strict=True):
        column = model_field.get_col(model._meta.db_table)
        for converter in db.ops.get_db_converters(column) + column.get_db_converters(db):
            value = converter(value, column, db)
        values.append(value)
    return model.from_db(db.alias, [f.attname for f in model._meta.concrete_fields], values)


def webhook_deliveries_release(*, deliveries: list[WebhookDelivery], token: str) -> None:
    """Give back claims a task took and will not process (it is stopping early): due again at once, the attempt
    not counted. Only claims still held under `token`."""
    if not deliveries:
        return
    WebhookDelivery.objects.filter(
        pk__in=[delivery.pk for delivery in deliveries], status=WebhookDelivery.Status.PROCESSING, claim_token=token
    ).update(
        status=WebhookDelivery.Status.PENDING,
        attempts=F("attempts") - 1,
        next_attempt_at=timezone.now(),
        dispatches=0,
    )


def webhook_delivery_process(*, delivery: WebhookDelivery) -> Processed:
    """Apply a claimed delivery, in one transaction, and record how the attempt ended.

    A payload that cannot be processed or stored fails for good with its reason (the same bytes would fail
    again); any other error schedules a retry with backoff, and dead-letters the delivery after the last."""
    try:
        touched = _apply(delivery)
    except PERMANENT_ERRORS as error:
        return Processed(webhook_delivery_fail(delivery=delivery, error=error))
    except Exception as error:
        logger.exception("webhook delivery %s failed (attempt %s)", delivery.pk, delivery.attempts)
        return Processed(webhook_delivery_fail(delivery=delivery, error=error))
    return Processed(delivery.status, touched)


def _apply(delivery: WebhookDelivery) -> list[int]:
    processor = delivery_processors.get(delivery.provider)
    if processor is not None:
        with transaction.atomic():
            touched = processor(delivery)
            evaluations_owed_mark(pull_request_ids=touched)
        if delivery.status == WebhookDelivery.Status.PROCESSING:
            _finish(delivery, WebhookDelivery.Status.PROCESSED)
        return touched
    if delivery.provider == "github" and delivery.event in github_adapter.INSTALLATION_EVENTS:
        _apply_installation(delivery)
        return []
    event = _parse(delivery)
    if event.ignored:
        _finish(delivery, WebhookDelivery.Status.IGNORED, error=event.ignored)
        return []
    with transaction.atomic():
        connection = _connection_for(delivery)
        touched = webhook_event_apply(connection=connection, event=event)
        evaluations_owed_mark(pull_request_ids=touched)
        _finish(delivery, WebhookDelivery.Status.PROCESSED)
    return touched


def webhook_delivery_fail(*, delivery: WebhookDelivery, error: BaseException) -> str:
    """Record a failed attempt: "failed" for good when the error is the payload's, else "retrying" at the next
    backoff step, or "dead" when the retries are spent. The reason is kept on the row either way."""
    if isinstance(error, PayloadError):
        _finish(delivery, WebhookDelivery.Status.FAILED, error=_error_text(f"Invalid payload: {error}"))
        return WebhookDelivery.Status.FAILED
    if isinstance(error, PERMANENT_ERRORS):
        reason = f"Cannot be stored: {type(error).__name__}: {error}"
        _finish(delivery, WebhookDelivery.Status.FAILED, error=_error_text(reason))
        return WebhookDelivery.Status.FAILED
    reason = f"Attempt {delivery.attempts} of {MAX_ATTEMPTS}: {type(error).__name__}: {error}"
    if delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery, WebhookDelivery.Status.DEAD, error=_error_text(f"{reason} (retries exhausted)"))
        return WebhookDelivery.Status.DEAD
    wait = RETRY_BACKOFF[max(0, delivery.attempts - 1)]
    delivery.status, delivery.error = WebhookDelivery.Status.PENDING, _error_text(reason)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=delivery.status, error=delivery.error, next_attempt_at=timezone.now() + wait, dispatches=0
    )
    return "retrying"


def _error_text(text: str) -> str:
    """An error as the database can always store it: no NUL, no lone surrogate, bounded."""
    cleaned = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return cleaned[:_ERROR_TEXT_LIMIT]


def webhook_delivery_finish(*, delivery: WebhookDelivery, status: str, error: str = "") -> None:
    """For processors: record how a delivery ended (ignored, with the reason)."""
    _finish(delivery, status, error=_error_text(error))


def webhook_deliveries_dispatch(
    *,
    send: Callable[[list[int]], object],
    now: dt.datetime | None = None,
    chunk: int = 500,
    budget: float = 40.0,
    batch: int = DISPATCH_BATCH,
    max_in_flight: int = DISPATCH_MAX_IN_FLIGHT,
    reclaim: bool = True,
) -> int:
    """Hand every due delivery to a worker, oldest due first, with no cap but a time budget per run.

    Each is leased before it is sent, so a send that fails (the broker is down) waits out its lease and is sent
    again by a later run. Deliveries whose worker died are made due again first (`reclaim`; a dispatcher woken by
    every new delivery does that every few seconds instead). While nothing handed over waits for a worker, a few due
    deliveries go out one by one (each to a free worker at once) and a backlog spread over several tasks; while some
    wait, the workers are behind, and what is due goes in batches of up to `batch`, so that under load one task
    carries several events and the events of one pull request waiting together are applied in one task and evaluated
    once. No more than about `max_in_flight` deliveries wait handed over and unclaimed (a batch may pass it by less
    than `batch`): the rest of a backlog waits in the database, not in the broker. Several dispatchers may run: a row
    one of them is leasing is skipped by the others. Returns how many deliveries were sent."""
    now = now or timezone.now()
    deadline = time.monotonic() + budget
    if reclaim:
        _reclaim_stale(now)
    sent = 0
    while time.monotonic() < deadline:
        in_flight, leased = _lease_room(now, chunk=chunk, batch=batch, max_in_flight=max_in_flight)
        wanted = _wanted(in_flight, chunk=chunk, batch=batch, max_in_flight=max_in_flight)
        if wanted == 0:
            break  # the workers are behind: the rest waits here, and goes in batches when they catch up
        size = batch if in_flight else _spread(len(leased), batch=batch)
        for start in range(0, len(leased), size):
            send(leased[start : start + size])
        sent += len(leased)
        if len(leased) < wanted:
            break  # nothing more is due
    return sent


def _wanted(in_flight: int, *, chunk: int, batch: int, max_in_flight: int) -> int:
    """How many due deliveries one look leases: none at the cap; else the room left, but a whole batch at least."""
    room = max_in_flight - in_flight
    return 0 if room <= 0 else min(chunk, max(room, batch))


def _lease_room(now: dt.datetime, *, chunk: int, batch: int, max_in_flight: int) -> tuple[int, list[int]]:
    """How many deliveries wait handed over (counted up to the cap), and the due ones leased in the room left."""
    if connections[WebhookDelivery.objects.db].vendor == "postgresql":
        return _lease_room_in_one_statement(now, chunk=chunk, batch=batch, max_in_flight=max_in_flight)
    in_flight = _in_flight(now)
    wanted = _wanted(in_flight, chunk=chunk, batch=batch, max_in_flight=max_in_flight)
    return in_flight, _lease_due(now, wanted) if wanted else []


def _spread(due: int, *, batch: int) -> int:
    """The batch size that spreads `due` deliveries over DISPATCH_SPREAD tasks (each to a free worker at once)."""
    return max(1, min(batch, -(-due // DISPATCH_SPREAD)))


def _due(now: dt.datetime) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).filter(
        Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True)
    )


def _in_flight(now: dt.datetime) -> int:
    """Deliveries handed over and not yet claimed: leased (due later) and dispatched at least once."""
    return WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__gt=now, dispatches__gt=0
    ).count()


def _lease_due(now: dt.datetime, chunk: int) -> list[int]:
    """Lease up to `chunk` due deliveries, oldest due first (SQLite: one writer at a time, so nothing to skip)."""
    with transaction.atomic():
        due = list(
            _due(now)
            .select_for_update(skip_locked=True)
            .order_by(F("next_attempt_at").asc(nulls_first=True), "pk")
            .values_list("pk", "dispatches")[:chunk]
        )
        return _lease(due, now)


def _lease_room_in_one_statement(
    now: dt.datetime, *, chunk: int, batch: int, max_in_flight: int
) -> tuple[int, list[int]]:
    """`_lease_room` on PostgreSQL: the count and the lease in one prepared statement, where Django built two queries
    afresh at every look (the dispatcher looks at up to every new delivery, and building them was most of its CPU).
    Rows another dispatcher is leasing are skipped; the count reads the statement's snapshot, as a count just before
    the lease would."""
    db = connections[WebhookDelivery.objects.db]
    table = db.ops.quote_name(WebhookDelivery._meta.db_table)
    at = WebhookDelivery._meta.get_field("next_attempt_at").get_db_prep_save(now, connection=db)
    pending = WebhookDelivery.Status.PENDING
    # Only the model's own names go into the text; every value is a parameter.
    sql = f"""
        WITH in_flight AS (
            SELECT count(*) AS waiting FROM (
                SELECT 1 FROM {table}
                WHERE status = %(pending)s AND next_attempt_at > %(at)s AND dispatches > 0
                LIMIT %(cap)s
            ) AS handed_over
        ), due AS (
            SELECT id, next_attempt_at AS was_due FROM {table}
            WHERE status = %(pending)s AND (next_attempt_at <= %(at)s OR next_attempt_at IS NULL)
            ORDER BY next_attempt_at ASC NULLS FIRST, id
            LIMIT (
                SELECT CASE WHEN waiting >= %(cap)s THEN 0
                            ELSE LEAST(%(chunk)s, GREATEST(%(cap)s - waiting, %(batch)s)) END
                FROM in_flight
            )
            FOR UPDATE SKIP LOCKED
        ), leased AS (
            UPDATE {table} AS delivery
            SET next_attempt_at = %(at)s + LEAST(%(lease)s * power(2, LEAST(delivery.dispatches, %(doublings)s)),
                                                    %(longest)s)
                                  * interval '1 second',
                dispatches = delivery.dispatches + 1
            FROM due WHERE delivery.id = due.id
            RETURNING delivery.id, due.was_due
        )
        SELECT waiting, ARRAY(SELECT id FROM leased ORDER BY was_due ASC NULLS FIRST, id) FROM in_flight
    """  # noqa: S608
    values = {
        "pending": pending,
        "at": at,
        "cap": max_in_flight,
        "chunk": chunk,
        "batch": batch,
        "lease": DISPATCH_LEASE.total_seconds(),
        "longest": MAX_DISPATCH_LEASE.total_seconds(),
        "doublings": _MAX_LEASE_DOUBLINGS,
    }
    with bound_cursor(db) as cursor:
        cursor.execute(sql, values)
        waiting, leased = cursor.fetchone()
    return waiting, list(leased)


def _lease(due: list[tuple[int, int]], now: dt.datetime) -> list[int]:
    by_dispatches: dict[int, list[int]] = {}
    for pk, dispatches in due:
        by_dispatches.setdefault(dispatches, []).append(pk)
    leased: list[int] = []
    for dispatches, pks in by_dispatches.items():
        lease = min(DISPATCH_LEASE * 2 ** min(dispatches, _MAX_LEASE_DOUBLINGS), MAX_DISPATCH_LEASE)
        WebhookDelivery.objects.filter(pk__in=pks, status=WebhookDelivery.Status.PENDING).update(
            next_attempt_at=now + lease, dispatches=dispatches + 1
        )
        leased += pks
    return leased


def _reclaim_stale(now: dt.datetime) -> None:
    """Deliveries held by a worker that died: due again, or dead-lettered when that was their last attempt."""
    stale = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PROCESSING, claimed_at__lt=now - STALE_CLAIM)
    reason = "A worker stopped while processing it"
    stale.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=WebhookDelivery.Status.DEAD, error=f"{reason} (retries exhausted)", processed_at=now
    )
    stale.update(status=WebhookDelivery.Status.PENDING, error=reason, next_attempt_at=now, dispatches=0)


def webhook_delivery_requeue(*, delivery: WebhookDelivery) -> bool:
    """Make a failed, ignored or dead-lettered delivery due again now, for replay. False when it is not replayable
    now (pending, processing or processed). Its last error stays until the replay ends."""
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery.pk,
            status__in=[
                WebhookDelivery.Status.FAILED,
                WebhookDelivery.Status.IGNORED,
                WebhookDelivery.Status.DEAD,
            ],
        ).update(status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now() + DISPATCH_LEASE, dispatches=1)
    )


def _apply_installation(delivery: WebhookDelivery) -> None:
    """A GitHub App's installation changed: it names no repository of its own, and touches no pull request."""
    event = github_adapter.parse_installation_event(delivery.event, _payload(delivery))
    with transaction.atomic():
        ignored = installation_event_apply(connection=_connection_for(delivery), event=event)
        status = WebhookDelivery.Status.IGNORED if ignored else WebhookDelivery.Status.PROCESSED
        _finish(delivery, status, error=_error_text(ignored))


def _parse(delivery: WebhookDelivery) -> WebhookEvent:
    return PARSERS[delivery.provider](delivery.event, _payload(delivery))


def _payload(delivery: WebhookDelivery) -> dict[str, Any]:
    try:
        # The same limits as at the door: a body stored before they existed is held to them on replay too.
        return decode_json_object(delivery.body.encode("utf-8", "surrogatepass"))
    except JsonRefused as error:
        raise PayloadError(f"body is not acceptable JSON: {error}") from error


# The headers naming the instance a delivery came from, by provider.
_INSTANCE_HEADERS = {"github": "X-GitHub-Enterprise-Host", "gitlab": "X-Gitlab-Instance"}


def _connection_for(delivery: WebhookDelivery) -> Connection:
    """The delivery's connection; for one refused because no Connection knew its instance, the one configured
    since (a replay after the operator added it), found the way the view finds it."""
    if delivery.connection is not None:
        return delivery.connection
    from reviews.services.connections import connection_for_instance, instance_host

    header = _INSTANCE_HEADERS.get(delivery.provider, "")
    host = instance_host(str(delivery.headers.get(header, ""))) if isinstance(delivery.headers, dict) else ""
    connection = connection_for_instance(provider=delivery.provider, host=host) if host else None
    if connection is None:
        raise PayloadError(f"no Connection is configured for the instance {host or '(unnamed)'} it came from")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(connection=connection)
    delivery.connection = connection
    return connection


_FINISHED = PreparedUpdate(WebhookDelivery, "status", "error", "processed_at")


def _finish(delivery: WebhookDelivery, status: str, *, error: str = "") -> None:
    delivery.status = status
    delivery.error = error
    delivery.processed_at = timezone.now()
    _FINISHED.run(delivery.pk, status=status, error=error, processed_at=delivery.processed_at)


def webhook_event_apply(*, connection: Connection, event: WebhookEvent) -> list[int]:
    """Upsert everything one event says. Returns the ids of the pull requests it touched."""
    if event.repository is None:
        raise PayloadError(f"{event.event} event names no repository")
    repository = repository_upsert(connection=connection, record=event.repository)
    with accounts_preloaded(connection=connection, accounts=_accounts(event)):
        return _event_apply(repository, event)


def _accounts(event: WebhookEvent) -> list[UserRecord | None]:
    """Every provider account the event names."""
    accounts: list[UserRecord | None] = []
    if event.pull_request is not None:
        accounts += [event.pull_request.author, event.pull_request.merged_by]
        accounts += event.pull_request.requested_reviewers or ()
    accounts += [review.reviewer for review in event.reviews]
    accounts += [comment.author for comment in event.comments]
    accounts += event.withdrawn_approvals
    for commit in event.commits:
        accounts += [commit.author_account, commit.committer_account, commit.pusher]
    return accounts


def _event_apply(repository: Repository, event: WebhookEvent) -> list[int]:
    pull_request = _pull_request_for(repository, event)
    touched: set[int] = set()
    if pull_request is not None:
        touched.add(pull_request.pk)
        for review in event.reviews:
            review_upsert(pull_request=pull_request, record=review)
        for comment in event.comments:
            if event.action == "deleted":
                comment_delete(pull_request=pull_request, external_id=comment.external_id)
            else:
                comment_upsert(pull_request=pull_request, record=comment)
        if event.withdrawn_approvals:
            at = event.pull_request.updated_at if event.pull_request else timezone.now()
            for account in event.withdrawn_approvals:
                approval_withdraw(pull_request=pull_request, account=account, at=at)
    commits = [commit_upsert(repository=repository, record=commit) for commit in event.commits]
    if commits:
        touched |= _link_pushed_commits(repository, event, pull_request, commits)
        pairing_sessions_infer(repository=repository, commits=commits)
    for status in event.statuses:
        commit_status_upsert(repository=repository, record=status)
        touched |= set(
            PullRequest.objects.filter(
                repository=repository, head_sha=status.sha, state=PullRequest.State.OPEN
            ).values_list("pk", flat=True)
        )
    if event.deployments:
        for handler in deployment_handlers:
            handler(repository, event)
    if event.protection_rules:
        for rule_handler in protection_rule_handlers:
            rule_handler(repository, event)
    return sorted(touched)


def _pull_request_for(repository: Repository, event: WebhookEvent) -> PullRequest | None:
    if event.pull_request is not None:
        pull_request, _ = pull_request_upsert(repository=repository, record=event.pull_request)
        return pull_request
    if event.pull_request_number is not None:
        return pull_request_stub(repository=repository, number=event.pull_request_number)
    return None


def _link_pushed_commits(
    repository: Repository, event: WebhookEvent, pull_request: PullRequest | None, commits: list[Commit]
) -> set[int]:
    """A push to a branch adds its commits to the open pull requests from that branch."""
    targets = [pull_request] if pull_request is not None else []
    if event.ref:
        targets += list(
            PullRequest.objects.filter(repository=repository, head_ref=event.ref, state=PullRequest.State.OPEN)
        )
    for target in {t.pk: t for t in targets}.values():
        pull_request_commits_add(pull_request=target, commits=commits)
    return {t.pk for t in targets}
