"""The one inbox of every provider's webhooks: receive → verify → store → claim → apply → finish.

A provider's view is a `WebhookSource`: it verifies the sender and names the delivery (its event, its id, what it
did). Everything else is here, the same for GitHub, GitLab, PagerDuty and Opsgenie: the answers to a sender that is
refused or a body that is not acceptable JSON, the row stored once per delivery id before any answer
(`webhook_delivery_receive`, one statement), the count of every answer, and then one of two endings:

- handed over (the version control providers): the answer says "accepted"; a worker claims, applies and finishes
  the delivery (`reviews.tasks.process_webhook_deliveries`), handed over by the dispatcher in production.
- applied before the answer (the incident tools, whose change is small and needs no remote call): claimed, applied
  in one transaction and finished here, so the sender learns at once whether it was taken.

No API call to a provider happens here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reviews.instruments import WEBHOOKS_RECEIVED
from reviews.integrations.payloads import JsonRefused, decode_json_object
from reviews.integrations.records import PayloadError
from reviews.models import Connection, WebhookDelivery
from reviews.services.enqueue import deliveries_handed_over_by_request, delivery_process_now
from reviews.services.webhooks import (
    PERMANENT_ERRORS,
    webhook_delivery_claim,
    webhook_delivery_fail,
    webhook_delivery_finish,
    webhook_delivery_receive,
)

logger = logging.getLogger(__name__)


class WebhookRejected(Exception):
    """The sender is not who it says (a missing or wrong signature or token): 401, counted and logged."""


class WebhookInvalid(Exception):
    """A verified request the inbox cannot take (a header missing, malformed or too long): 400 with the reason."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Sender:
    """Who a verified request came from: the Connection it belongs to, and the instance host it named."""

    connection: Connection | None = None
    host: str = ""


@dataclass(frozen=True)
class Named:
    """What a delivery is, for its row: the event, the sender's id for this delivery (a retry repeats it), and
    what the event did."""

    event: str
    delivery_id: str
    action: str = ""


@dataclass(frozen=True)
class Applied:
    """How a delivery applied before the answer ended, as the sender is told: `outcome` is the answer's "status"
    ("created", "updated", …); with `ignored`, nothing was applied and that is the reason."""

    outcome: str
    fields: dict[str, Any]
    status: int = 200
    ignored: str = ""


class WebhookSource:
    """A provider's adapter over the inbox: how its sender is verified and how its deliveries are named."""

    provider: ClassVar[str]
    # The header naming the event, for the count of answers; "" counts every delivery as "incident".
    event_header: ClassVar[str] = ""
    # Headers kept with each delivery: enough to replay and audit it, never the secret itself.
    kept_headers: ClassVar[tuple[str, ...]] = ()
    # Deliveries belong to a Connection: one from an instance no Connection or setting names is stored, refused.
    connected: ClassVar[bool] = True
    # Events stored and finished as ignored at once, with the answer's status (GitHub's "ping" is answered "pong").
    ignored_on_receipt: ClassVar[dict[str, str]] = {}
    # Applied before the answer (`apply`), instead of handed over to a worker.
    applied_before_answer: ClassVar[bool] = False

    def verify(self, request: HttpRequest, body: bytes) -> Sender:
        """Who sent it; raises WebhookRejected (or WebhookInvalid) otherwise."""
        raise NotImplementedError

    def name(self, request: HttpRequest, body: bytes) -> Named:
        """The delivery's event and id, from its headers; raises WebhookInvalid when one is missing."""
        raise NotImplementedError

    def describe(self, named: Named, payload: dict[str, Any]) -> Named:
        """The name completed from the verified, decoded payload (its action)."""
        return named

    def apply(self, delivery: WebhookDelivery) -> Applied:
        """Apply a claimed delivery (sources `applied_before_answer`), inside the inbox's transaction."""
        raise NotImplementedError


def header(request: HttpRequest, name: str) -> str:
    """A request header by its usual spelling ("X-GitHub-Event"), read straight from the WSGI environ."""
    return str(request.META.get(_meta_key(name), ""))


@functools.cache
def _meta_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in {"CONTENT_TYPE", "CONTENT_LENGTH"} else f"HTTP_{key}"


def _column_length(name: str) -> int:
    field = WebhookDelivery._meta.get_field(name)
    return int(getattr(field, "max_length", 0) or 0)


_EVENT_LENGTH = _column_length("event")
_DELIVERY_ID_LENGTH = _column_length("delivery_id")
_ACTION_LENGTH = _column_length("action")


# --- the view ------------------------------------------------------------------------------------------------------


def webhook_view(source: WebhookSource) -> Callable[[HttpRequest], JsonResponse]:
    """The view of one provider: POST only, CSRF-exempt (the signature is the proof), every answer counted."""

    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> JsonResponse:
        try:
            response = inbox_receive(source=source, request=request)
        except RequestDataTooBig:
            # A body over Django's cap, refused before it is verified (413, config.json_errors): the sender's
            # mistake, counted as a refused body is, never as a server error.
            _counter(source.provider, "unverified", "invalid").inc()
            raise
        except Exception:
            _counter(source.provider, "unverified", "error").inc()
            raise
        _count(source, request, response)
        return response

    view.__name__ = view.__qualname__ = f"{source.provider}_webhook"
    return view


def inbox_receive(*, source: WebhookSource, request: HttpRequest) -> _Answer:
    """Verify, name, decode and store one delivery, then hand it over or apply it; the answer says which."""
    body = request.body
    try:
        sender = source.verify(request, body)
        named = source.name(request, body)
        _check_lengths(named)
    except WebhookRejected as error:
        return _rejected(source.provider, str(error))
    except WebhookInvalid as error:
        return _error(error.status, str(error))
    try:
        payload = decode_json_object(body, max_bytes=settings.JSON_MAX_BODY_BYTES, max_depth=settings.JSON_MAX_DEPTH)
    except JsonRefused as error:
        return _error(error.status, str(error))
    named = source.describe(named, payload)
    fields: dict[str, Any] = {
        "provider": source.provider,
        "delivery_id": named.delivery_id,
        "event": named.event,
        "action": named.action[:_ACTION_LENGTH],
        "headers": _kept_headers(source, request),
        "body": body.decode("utf-8", errors="replace"),
    }
    if source.connected and sender.connection is None:
        return _refuse_unknown_instance(sender.host, fields)
    if named.event in source.ignored_on_receipt:
        return _ignore_on_receipt(source.ignored_on_receipt[named.event], named.event, fields, sender.connection)
    if source.applied_before_answer:
        return _apply_before_answer(source, fields)
    return _hand_over(fields, sender.connection)


def _check_lengths(named: Named) -> None:
    """An event name or delivery id longer than its column is a 400 (a database error otherwise)."""
    for label, value, limit in (
        ("event", named.event, _EVENT_LENGTH),
        ("delivery id", named.delivery_id, _DELIVERY_ID_LENGTH),
    ):
        if len(value) > limit:
            raise WebhookInvalid(f"The {label} header is {len(value)} characters; at most {limit}.")


def _kept_headers(source: WebhookSource, request: HttpRequest) -> dict[str, str]:
    kept = {}
    for name in source.kept_headers:
        value = request.META.get(_meta_key(name))
        if value is not None:
            kept[name] = str(value)
    return kept


# --- the endings ----------------------------------------------------------------------------------------------------


class _Answer(JsonResponse):
    """An answer that keeps the "status" it says, so that counting it (`_outcome`) need not decode its body again."""

    def __init__(self, data: dict[str, Any], *, status: int = 200) -> None:
        super().__init__(data, status=status)
        self.said = data.get("status")


def _hand_over(fields: dict[str, Any], connection: Connection | None) -> _Answer:
    """Store the delivery for a worker: in production the dispatcher hands it over (woken by the row's NOTIFY),
    so the answer never waits for a broker; otherwise the request queues it once the row is committed."""
    by_request = deliveries_handed_over_by_request()
    received = webhook_delivery_receive(hand_over_now=by_request, connection=connection, **fields)
    pk = received.pk
    if received.created or received.requeued:
        if by_request:
            transaction.on_commit(lambda: delivery_process_now(pk))
        return _Answer({"status": "accepted" if received.created else "requeued", "delivery": pk}, status=202)
    return _duplicate(received.delivery)


def _apply_before_answer(source: WebhookSource, fields: dict[str, Any]) -> _Answer:
    """Claim, apply in one transaction and finish, before answering. A transient failure (the database away) is
    answered 202: the delivery is stored and retried from the database with backoff, and a retry of the same
    body by the sender is applied again at once, never answered "duplicate" while it is not done."""
    received = webhook_delivery_receive(connection=None, **fields)
    if not (received.created or received.requeued):
        return _duplicate(received.delivery)
    delivery = webhook_delivery_claim(delivery_id=received.delivery.pk)
    if delivery is None:
        return _Answer({"status": "duplicate", "delivery": received.delivery.pk, "state": "processing"})
    try:
        with transaction.atomic():
            applied = source.apply(delivery)
    except PayloadError as error:
        webhook_delivery_fail(delivery=delivery, error=error)
        return _error(400, f"Invalid payload: {error}")
    except PERMANENT_ERRORS as error:
        webhook_delivery_fail(delivery=delivery, error=error)
        return _error(400, f"The payload cannot be stored: {type(error).__name__}: {error}")
    except Exception as error:
        logger.exception("%s webhook delivery %s failed; it will be retried", source.provider, delivery.pk)
        state = webhook_delivery_fail(delivery=delivery, error=error)
        return _Answer({"status": "queued", "delivery": delivery.pk, "state": state}, status=202)
    if applied.ignored:
        webhook_delivery_finish(delivery=delivery, status=WebhookDelivery.Status.IGNORED, error=applied.ignored)
        return _Answer({"status": "ignored", "reason": applied.ignored})
    webhook_delivery_finish(delivery=delivery, status=WebhookDelivery.Status.PROCESSED)
    return _Answer({"status": applied.outcome, **applied.fields}, status=applied.status)


def _ignore_on_receipt(answer: str, reason: str, fields: dict[str, Any], connection: Connection | None) -> _Answer:
    received = webhook_delivery_receive(connection=connection, **{**fields, "action": ""})
    if received.created:
        webhook_delivery_finish(delivery=received.delivery, status=WebhookDelivery.Status.IGNORED, error=reason)
    return _Answer({"status": answer, "delivery": received.delivery.pk}, status=200)


def _refuse_unknown_instance(host: str, fields: dict[str, Any]) -> _Answer:
    """Store the delivery, refused for processing with the reason, and say why."""
    reason = f"Refused: {host} is not an instance this server is configured for (no Connection or setting names it)."
    received = webhook_delivery_receive(connection=None, **fields)
    if received.created:
        webhook_delivery_finish(delivery=received.delivery, status=WebhookDelivery.Status.FAILED, error=reason)
    logger.warning("refused %s webhook from unknown instance %s", fields["provider"], host)
    return _error(422, reason, delivery=received.delivery.pk)


def _duplicate(delivery: WebhookDelivery) -> _Answer:
    return _Answer({"status": "duplicate", "delivery": delivery.pk, "state": delivery.status}, status=200)


def _error(status: int, message: str, **extra: object) -> _Answer:
    return _Answer({"error": message, **extra}, status=status)


def _rejected(provider: str, reason: str) -> _Answer:
    key = f"webhooks:{provider}:rejected"
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)
    logger.warning("rejected %s webhook: %s", provider, reason)
    return _error(401, reason)


def rejected_count(provider: str) -> int:
    return int(cache.get(f"webhooks:{provider}:rejected", 0))


# --- counting -------------------------------------------------------------------------------------------------------

# What a 2xx answer's "status" says happened, as counted; any other word counts as "accepted".
_COUNTED_OUTCOMES = frozenset(
    {"accepted", "requeued", "duplicate", "pong", "queued", "ignored", "created", "updated", "unchanged"}
)
_OUTCOME_OF_REFUSAL = {401: "rejected", 422: "refused"}


def _count(source: WebhookSource, request: HttpRequest, response: _Answer) -> None:
    """Count an answer by provider, event and outcome (`tandem_webhooks_received_total`). The event is named only
    once the sender is verified: an unverified caller could otherwise make up a label value per request."""
    if response.status_code == 401:
        event = "unverified"
    else:
        event = header(request, source.event_header)[:100] if source.event_header else "incident"
    _counter(source.provider, event, _outcome(response)).inc()


# Each label set's counter, as `labels()` finds it (which checks and converts the values and takes a lock each time).
_COUNTERS: dict[tuple[str, str, str], Any] = {}


def _counter(provider: str, event: str, outcome: str) -> Any:
    key = (provider, event, outcome)
    counter = _COUNTERS.get(key)
    if counter is None:
        counter = _COUNTERS[key] = WEBHOOKS_RECEIVED.labels(provider, event, outcome)
    return counter


def _outcome(response: _Answer) -> str:
    if response.status_code >= 500:
        return "error"
    if response.status_code >= 400:
        return _OUTCOME_OF_REFUSAL.get(response.status_code, "invalid")
    return response.said if response.said in _COUNTED_OUTCOMES else "accepted"
