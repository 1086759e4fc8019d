"""`POST /webhooks/github/` and `POST /webhooks/gitlab/`.

Verify, store, acknowledge: the delivery row is written before the answer, and processing is queued to run
after the transaction commits. No API call and no domain work happens here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reviews.instruments import WEBHOOKS_RECEIVED
from reviews.integrations.github import verify_signature
from reviews.integrations.gitlab import verify_token
from reviews.integrations.payloads import JsonRefused, decode_json_object
from reviews.models import Provider, WebhookDelivery
from reviews.services.connections import connection_for_instance, connections_with_webhook_secret, instance_host
from reviews.services.enqueue import deliveries_handed_over_by_request, delivery_process_now
from reviews.services.webhooks import webhook_delivery_finish, webhook_delivery_receive

logger = logging.getLogger(__name__)

# Headers kept with each delivery: enough to replay and audit it, never the secret itself.
_KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Enterprise-Host",
    "X-GitHub-Enterprise-Version",
    "X-GitHub-Hook-Installation-Target-Type",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-Gitlab-Event",
    "X-Gitlab-Event-UUID",
    "X-Gitlab-Webhook-UUID",
    "X-Gitlab-Instance",
    "Idempotency-Key",
)


# What a 2xx answer's "status" says happened, as counted; any other word counts as "accepted".
_COUNTED_OUTCOMES = frozenset(
    {"accepted", "requeued", "duplicate", "pong", "queued", "ignored", "created", "updated", "unchanged"}
)
_OUTCOME_OF_REFUSAL = {401: "rejected", 422: "refused"}

WebhookView = Callable[[HttpRequest], JsonResponse]


def webhook_counted(provider: str, *, event_header: str = "") -> Callable[[WebhookView], WebhookView]:
    """Count every answer of a webhook view by provider, event and outcome (`tandem_webhooks_received_total`).

    The event is named only once the sender is verified: an unverified caller could otherwise make up a label
    value per request. Views without an event header (incident tools) count as "incident"."""

    def decorate(view: WebhookView) -> WebhookView:
        @functools.wraps(view)
        def counted(request: HttpRequest) -> JsonResponse:
            try:
                response = view(request)
            except Exception:
                WEBHOOKS_RECEIVED.labels(provider, "unverified", "error").inc()
                raise
            if response.status_code == 401:
                event = "unverified"
            else:
                event = request.headers.get(event_header, "")[:100] if event_header else "incident"
            WEBHOOKS_RECEIVED.labels(provider, event, _outcome(response)).inc()
            return response

        return counted

    return decorate


def _outcome(response: JsonResponse) -> str:
    if response.status_code >= 500:
        return "error"
    if response.status_code >= 400:
        return _OUTCOME_OF_REFUSAL.get(response.status_code, "invalid")
    try:
        said = json.loads(response.content).get("status")
    except (ValueError, AttributeError):
        said = None
    return said if said in _COUNTED_OUTCOMES else "accepted"


def _error(status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _rejected(provider: str, reason: str) -> JsonResponse:
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


def _kept_headers(request: HttpRequest) -> dict[str, str]:
    return {name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers}


def _decode_object(body: bytes) -> dict[str, Any] | JsonResponse:
    try:
        return decode_json_object(body, max_bytes=settings.JSON_MAX_BODY_BYTES, max_depth=settings.JSON_MAX_DEPTH)
    except JsonRefused as error:
        return _error(error.status, str(error))


def _column_length(name: str) -> int:
    field = WebhookDelivery._meta.get_field(name)
    return int(getattr(field, "max_length", 0) or 0)


def _too_long(**headers: str) -> JsonResponse | None:
    """A 400 for an event name or delivery id longer than its column (a database error otherwise)."""
    for name, value in headers.items():
        limit = _column_length(name)
        if len(value) > limit:
            return _error(400, f"The {name.replace('_', ' ')} header is {len(value)} characters; at most {limit}.")
    return None


def _accept(**fields: object) -> JsonResponse:
    fields["action"] = str(fields["action"])[: _column_length("action")]
    by_request = deliveries_handed_over_by_request()
    received = webhook_delivery_receive(hand_over_now=by_request, **fields)  # type: ignore[arg-type]
    pk = received.delivery.pk
    if received.created or received.requeued:
        if by_request:
            transaction.on_commit(lambda: delivery_process_now(pk))
        return JsonResponse({"status": "accepted" if received.created else "requeued", "delivery": pk}, status=202)
    return JsonResponse({"status": "duplicate", "delivery": pk, "state": received.delivery.status}, status=200)


def _refuse_unknown_instance(host: str, **fields: object) -> JsonResponse:
    """Store the delivery, refused for processing with the reason, and say why."""
    reason = f"Refused: {host} is not an instance this server is configured for (no Connection or setting names it)."
    received = webhook_delivery_receive(connection=None, **fields)  # type: ignore[arg-type]
    if received.created:
        webhook_delivery_finish(delivery=received.delivery, status=WebhookDelivery.Status.FAILED, error=reason)
    logger.warning("refused %s webhook from unknown instance %s", fields["provider"], host)
    return _error(422, reason, delivery=received.delivery.pk)


@csrf_exempt
@require_POST
@webhook_counted("github", event_header="X-GitHub-Event")
def github_webhook(request: HttpRequest) -> JsonResponse:
    body = request.body
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        return _rejected("github", "Missing X-Hub-Signature-256 header.")
    connection = None
    for candidate in connections_with_webhook_secret(provider=Provider.GITHUB):
        if verify_signature(candidate.webhook_secret, body, signature):
            connection = candidate
            break
    host = instance_host(request.headers.get("X-GitHub-Enterprise-Host", ""))
    if connection is None:
        if not (settings.GITHUB_WEBHOOK_SECRET and verify_signature(settings.GITHUB_WEBHOOK_SECRET, body, signature)):
            return _rejected("github", "Signature does not match the webhook secret.")
        connection = connection_for_instance(provider=Provider.GITHUB, host=host)
    event = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    if not event:
        return _error(400, "Missing X-GitHub-Event header.")
    if not delivery_id:
        return _error(400, "Missing X-GitHub-Delivery header.")
    if too_long := _too_long(event=event, delivery_id=delivery_id):
        return too_long
    payload = _decode_object(body)
    if isinstance(payload, JsonResponse):
        return payload
    action = payload.get("action") if isinstance(payload.get("action"), str) else ""
    if connection is None:
        return _refuse_unknown_instance(
            host,
            provider="github",
            delivery_id=delivery_id,
            event=event,
            action=action,
            headers=_kept_headers(request),
            body=body.decode("utf-8", errors="replace"),
        )
    if event == "ping":
        # GitHub's hello on creating the hook: stored like any delivery, answered 200.
        received = webhook_delivery_receive(
            provider="github",
            delivery_id=delivery_id,
            event=event,
            action="",
            headers=_kept_headers(request),
            body=body.decode("utf-8", errors="replace"),
            connection=connection,
        )
        if received.created:
            webhook_delivery_finish(delivery=received.delivery, status=WebhookDelivery.Status.IGNORED, error="ping")
        return JsonResponse({"status": "pong", "delivery": received.delivery.pk}, status=200)
    return _accept(
        provider="github",
        delivery_id=delivery_id,
        event=event,
        action=action,
        headers=_kept_headers(request),
        body=body.decode("utf-8", errors="replace"),
        connection=connection,
    )


def _instance_host(header: str) -> str | None:
    """The host an `X-Gitlab-Instance` header names ("" for none), or None when it is not a URL."""
    try:
        return (urlsplit(header).hostname or "").lower()
    except ValueError:
        return None


@csrf_exempt
@require_POST
@webhook_counted("gitlab", event_header="X-Gitlab-Event")
def gitlab_webhook(request: HttpRequest) -> JsonResponse:
    body = request.body
    token = request.headers.get("X-Gitlab-Token")
    if not token:
        return _rejected("gitlab", "Missing X-Gitlab-Token header.")
    connection = None
    for candidate in connections_with_webhook_secret(provider=Provider.GITLAB):
        if verify_token(candidate.webhook_secret, token):
            connection = candidate
            break
    if connection is None and not (
        settings.GITLAB_WEBHOOK_TOKEN and verify_token(settings.GITLAB_WEBHOOK_TOKEN, token)
    ):
        return _rejected("gitlab", "X-Gitlab-Token does not match the webhook token.")
    # Parsed only once the token is verified: an unauthenticated caller gets nothing out of a crafted header.
    host = _instance_host(request.headers.get("X-Gitlab-Instance", ""))
    if host is None:
        return _error(400, "X-Gitlab-Instance is not a URL.")
    if connection is None:
        connection = connection_for_instance(provider=Provider.GITLAB, host=host)
    event = request.headers.get("X-Gitlab-Event", "")
    if not event:
        return _error(400, "Missing X-Gitlab-Event header.")
    payload = _decode_object(body)
    if isinstance(payload, JsonResponse):
        return payload
    # GitLab sends a UUID per delivery (retries keep it); very old versions send none, so the body stands in.
    delivery_id = (
        request.headers.get("X-Gitlab-Event-UUID")
        or request.headers.get("Idempotency-Key")
        or "sha256:" + hashlib.sha256(body).hexdigest()
    )
    if too_long := _too_long(event=event, delivery_id=delivery_id):
        return too_long
    attributes = payload.get("object_attributes")
    action = ""
    if isinstance(attributes, dict) and isinstance(attributes.get("action"), str):
        action = attributes["action"]
    if connection is None:
        return _refuse_unknown_instance(
            host,
            provider="gitlab",
            delivery_id=delivery_id,
            event=event,
            action=action or str(payload.get("object_kind", ""))[:100],
            headers=_kept_headers(request),
            body=body.decode("utf-8", errors="replace"),
        )
    return _accept(
        provider="gitlab",
        delivery_id=delivery_id,
        event=event,
        action=action or str(payload.get("object_kind", ""))[:100],
        headers=_kept_headers(request),
        body=body.decode("utf-8", errors="replace"),
        connection=connection,
    )
