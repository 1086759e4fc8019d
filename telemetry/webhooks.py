"""`POST /webhooks/pagerduty/` (V3 webhook subscriptions) and `POST /webhooks/opsgenie/` (the Webhook integration).

Verify, parse, apply, answer. An incident change is small and needs no remote call, so it is applied before the
answer, in one transaction: the sender learns at once whether it was taken (2xx), refused (401: signature or
token) or malformed (400, with what is wrong; nothing is written). Ranking its suspects is queued.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from telemetry import conf
from telemetry.integrations import opsgenie, pagerduty
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError
from telemetry.services.incidents import incident_record_apply

logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _handle(body: bytes, parse: Callable[[dict[str, Any]], IncidentEvent]) -> JsonResponse:
    try:
        payload = json.loads(body)
    except ValueError as error:
        return _error(400, f"Body is not valid JSON: {error}")
    if not isinstance(payload, dict):
        return _error(400, "Body must be a JSON object.")
    try:
        event = parse(payload)
    except IncidentPayloadError as error:
        return _error(400, f"Invalid payload: {error}")
    if event.record is None:
        return JsonResponse({"status": "ignored", "reason": event.ignored})
    incident, outcome = incident_record_apply(record=event.record)
    services = sorted(service.slug for service in incident.services.all())
    return JsonResponse(
        {"status": outcome, "incident": incident.pk, "services": services}, status=201 if outcome == "created" else 200
    )


@csrf_exempt
@require_POST
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
    return _handle(request.body, pagerduty.parse_webhook)


@csrf_exempt
@require_POST
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
    return _handle(request.body, opsgenie.parse_webhook)
