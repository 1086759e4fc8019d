"""`POST /webhooks/pagerduty/` (V3 webhook subscriptions) and `POST /webhooks/opsgenie/` (the Webhook integration):
the incident tools' adapters over the inbox (reviews/webhooks.py).

Every delivery is stored as a WebhookDelivery first (deduplicated by the body, which a retry repeats), like the VCS
webhooks, so it can be audited and replayed. An incident change is small and needs no remote call, so the inbox
applies it before the answer, in one transaction: the sender learns at once whether it was taken (2xx), refused
(401: signature or token) or malformed (400, with what is wrong; no incident is written, the delivery is kept as
failed). A transient failure (the database away) is answered 202 and retried from the database. Ranking its
suspects is queued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from reviews.integrations.payloads import JsonReader, JsonRefused, decode_json_object
from reviews.integrations.records import PayloadError
from reviews.models import WebhookDelivery
from reviews.services.webhooks import DeliveryProcessor, webhook_delivery_finish
from reviews.webhooks import Applied, Named, Sender, WebhookRejected, WebhookSource, header, webhook_view
from telemetry import conf
from telemetry.integrations import opsgenie, pagerduty
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError
from telemetry.models import Incident
from telemetry.services.incidents import incident_record_apply

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


class IncidentSource(WebhookSource):
    """What the incident tools share: no Connection, a delivery id from the body, applied before the answer."""

    connected = False
    applied_before_answer = True
    kept_headers = ("Content-Type", "User-Agent", "X-Webhook-Id", "X-Webhook-Subscription")
    parse: Parser

    def name(self, request: HttpRequest, body: bytes) -> Named:
        # A retried delivery repeats its body byte for byte (PagerDuty's event id included); a new event differs.
        return Named(event="", delivery_id="sha256:" + hashlib.sha256(body).hexdigest())

    def describe(self, named: Named, payload: dict[str, Any]) -> Named:
        """PagerDuty's event type, Opsgenie's action; "" when unreadable (the adapter says why when it parses)."""
        reader = JsonReader(payload)
        try:
            event = reader.opt_str("event", "event_type") or reader.opt_str("action")
        except PayloadError:
            event = ""
        return replace(named, event=event[:100])

    def apply(self, delivery: WebhookDelivery) -> Applied:
        incident, outcome = incident_delivery_apply(delivery=delivery, parse=type(self).parse)
        if incident is None:
            return Applied(outcome="ignored", fields={}, ignored=outcome)
        services = sorted(service.slug for service in incident.services.all())
        return Applied(
            outcome=outcome,
            fields={"incident": incident.pk, "services": services},
            status=201 if outcome == "created" else 200,
        )


class PagerDutySource(IncidentSource):
    provider = "pagerduty"
    parse = staticmethod(pagerduty.parse_webhook)

    def verify(self, request: HttpRequest, body: bytes) -> Sender:
        secrets = conf.pagerduty_secrets()
        if not secrets:
            raise WebhookRejected("PagerDuty webhooks are not configured on this server.")
        signature = header(request, "X-PagerDuty-Signature")
        if not signature:
            raise WebhookRejected("Missing X-PagerDuty-Signature header.")
        if not pagerduty.verify_signature(secrets, body, signature):
            raise WebhookRejected("X-PagerDuty-Signature does not match the webhook secret.")
        return Sender()


class OpsgenieSource(IncidentSource):
    provider = "opsgenie"
    parse = staticmethod(opsgenie.parse_webhook)

    def verify(self, request: HttpRequest, body: bytes) -> Sender:
        expected = conf.opsgenie_token()
        if not expected:
            raise WebhookRejected("Opsgenie webhooks are not configured on this server.")
        offered = header(request, "X-Tandem-Token")
        if not offered:
            authorization = header(request, "Authorization")
            offered = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if not offered:
            raise WebhookRejected("Missing X-Tandem-Token header.")
        if not opsgenie.verify_token(expected, offered):
            raise WebhookRejected("X-Tandem-Token does not match OPSGENIE_WEBHOOK_TOKEN.")
        return Sender()


pagerduty_webhook = webhook_view(PagerDutySource())
opsgenie_webhook = webhook_view(OpsgenieSource())
