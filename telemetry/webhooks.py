"""`POST /webhooks/pagerduty/` (V3 webhook subscriptions) and `POST /webhooks/opsgenie/` (the Webhook integration).

Verify, store, apply, answer. Every delivery is stored as a WebhookDelivery first (deduplicated by the body, which
a retry repeats), like the VCS webhooks, so it can be audited and replayed. An incident change is
small and needs no remote call, so it is applied before the answer, in one transaction: the sender learns at once
whether it was taken (2xx), refused (401: signature or token) or malformed (400, with what is wrong; no incident
is written, the delivery is kept as failed). A transient failure (the database away) is answered 202: the
delivery is stored and retried from the database with backoff, and a retry of the same body by the sender is
applied again at once, never answered "duplicate" while it is not done. Ranking its suspects is queued.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reviews.integrations.payloads import JsonReader, JsonRefused, decode_json_object
from reviews.integrations.records import PayloadError
from reviews.models import WebhookDelivery
from reviews.services.webhooks import (
    PERMANENT_ERRORS,
    DeliveryProcessor,
    webhook_delivery_claim,
    webhook_delivery_fail,
    webhook_delivery_finish,
    webhook_delivery_receive,
)
from reviews.webhooks import webhook_counted
from telemetry import conf
from telemetry.integrations import opsgenie, pagerduty
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError
from telemetry.models import Incident
from telemetry.services.incidents import incident_record_apply

logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


Parser = Callable[[dict[str, Any]], IncidentEvent]


def incident_delivery_apply(*, delivery: WebhookDelivery, parse: Parser) -> tuple[Incident | None, str]:
    """Apply a stored incident webhook: the incident and what happened to it, or None and why it was ignored.
    Raises IncidentPayloadError for a payload its format does not document."""
    try:
        payload = decode_json_object(
            delivery.body.encode(), max_bytes=settings.JSON_MAX_BODY_BYTES, max_depth=settings.JSON_MAX_DEPTH
        )
    except JsonRefused as error:
        raise IncidentPayloadError(str(error)) from error
    event = parse(payload)
    if event.record is None:
        return None, event.ignored
    return incident_record_apply(record=event.record)


def incident_delivery_processor(parse: Parser) -> DeliveryProcessor:
    """The replay path (admin "reprocess"): the same application, through the reviews delivery processor."""

    def process(delivery: WebhookDelivery) -> list[int]:
        # An IncidentPayloadError is a PayloadError: the delivery fails for good, with the reason.
        incident, outcome = incident_delivery_apply(delivery=delivery, parse=parse)
        if incident is None:
            webhook_delivery_finish(delivery=delivery, status=WebhookDelivery.Status.IGNORED, error=outcome)
        return []

    return process


def _delivery_id(body: bytes) -> str:
    # A retried delivery repeats its body byte for byte (PagerDuty's event id included); a new event differs.
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _handle(request: HttpRequest, provider: str, parse: Parser) -> JsonResponse:
    """Store the delivery, then apply it before answering: the sender learns at once whether it was taken."""
    body = request.body
    try:
        payload = decode_json_object(body, max_bytes=settings.JSON_MAX_BODY_BYTES, max_depth=settings.JSON_MAX_DEPTH)
    except JsonRefused as error:
        return _error(error.status, str(error))
    received = webhook_delivery_receive(
        provider=provider,
        delivery_id=_delivery_id(body),
        event=_event_name(payload),
        action="",
        headers={name: value for name, value in request.headers.items() if name.lower() in _KEPT_HEADERS},
        body=body.decode("utf-8", errors="replace"),
        connection=None,
    )
    if not (received.created or received.requeued):
        return JsonResponse(
            {"status": "duplicate", "delivery": received.delivery.pk, "state": received.delivery.status}
        )
    delivery = webhook_delivery_claim(delivery_id=received.delivery.pk)
    if delivery is None:
        return JsonResponse({"status": "duplicate", "delivery": received.delivery.pk, "state": "processing"})
    try:
        with transaction.atomic():
            incident, outcome = incident_delivery_apply(delivery=delivery, parse=parse)
    except IncidentPayloadError as error:
        webhook_delivery_fail(delivery=delivery, error=error)
        return _error(400, f"Invalid payload: {error}")
    except PERMANENT_ERRORS as error:
        webhook_delivery_fail(delivery=delivery, error=error)
        return _error(400, f"The payload cannot be stored: {type(error).__name__}: {error}")
    except Exception as error:
        # Stored, so not lost: the dispatcher retries it from the database with backoff, and a retry by the
        # sender (same body) is processed again at once.
        logger.exception("incident webhook delivery %s failed; it will be retried", delivery.pk)
        state = webhook_delivery_fail(delivery=delivery, error=error)
        return JsonResponse({"status": "queued", "delivery": delivery.pk, "state": state}, status=202)
    if incident is None:
        webhook_delivery_finish(delivery=delivery, status=WebhookDelivery.Status.IGNORED, error=outcome)
        return JsonResponse({"status": "ignored", "reason": outcome})
    webhook_delivery_finish(delivery=delivery, status=WebhookDelivery.Status.PROCESSED)
    services = sorted(service.slug for service in incident.services.all())
    return JsonResponse(
        {"status": outcome, "incident": incident.pk, "services": services}, status=201 if outcome == "created" else 200
    )


_KEPT_HEADERS = {"content-type", "user-agent", "x-webhook-id", "x-webhook-subscription"}


def _event_name(payload: dict[str, Any]) -> str:
    """What the delivery is, for its record: PagerDuty's event type, Opsgenie's action; "" when unreadable (the
    adapter says why when it parses it)."""
    reader = JsonReader(payload)
    try:
        return (reader.opt_str("event", "event_type") or reader.opt_str("action"))[:100]
    except PayloadError:
        return ""


@csrf_exempt
@require_POST
@webhook_counted("pagerduty")
def pagerduty_webhook(request: HttpRequest) -> JsonResponse:
    secrets = conf.pagerduty_secrets()
    if not secrets:
        logger.warning("rejected a PagerDuty webhook: PAGERDUTY_WEBHOOK_SECRET is not set")
        return _error(401, "PagerDuty webhooks are not configured on this server.")
    signature = request.headers.get("X-PagerDuty-Signature", "")
    if not signature:
        return _error(401, "Missing X-PagerDuty-Signature header.")
    if not pagerduty.verify_signature(secrets, request.body, signature):
        logger.warning("rejected a PagerDuty webhook: signature mismatch")
        return _error(401, "X-PagerDuty-Signature does not match the webhook secret.")
    return _handle(request, "pagerduty", pagerduty.parse_webhook)


@csrf_exempt
@require_POST
@webhook_counted("opsgenie")
def opsgenie_webhook(request: HttpRequest) -> JsonResponse:
    expected = conf.opsgenie_token()
    if not expected:
        logger.warning("rejected an Opsgenie webhook: OPSGENIE_WEBHOOK_TOKEN is not set")
        return _error(401, "Opsgenie webhooks are not configured on this server.")
    offered = request.headers.get("X-Tandem-Token", "")
    if not offered:
        authorization = request.headers.get("Authorization", "")
        offered = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    if not offered:
        return _error(401, "Missing X-Tandem-Token header.")
    if not opsgenie.verify_token(expected, offered):
        logger.warning("rejected an Opsgenie webhook: token mismatch")
        return _error(401, "X-Tandem-Token does not match OPSGENIE_WEBHOOK_TOKEN.")
    return _handle(request, "opsgenie", opsgenie.parse_webhook)
