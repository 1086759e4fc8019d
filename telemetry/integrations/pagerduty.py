"""PagerDuty V3 webhooks: signature verification and incident events as plain records.

A V3 payload is `{"event": {"id", "event_type", "resource_type", "occurred_at", "agent", "client", "data"}}`;
for incident events `data` is the incident (id, number, title, status, created_at, html_url, service, priority,
urgency). `X-PagerDuty-Signature` carries one or more comma-separated `v1=<hex HMAC-SHA256 of the raw body>`,
several while a secret is rotated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reviews.integrations.signing import hmac_sha256_hex, secret_matches
from telemetry.integrations._reading import (
    iso_time,
    obj,
    opt_obj,
    opt_text,
    record_checked,
    severity_from_priority,
    slug,
    text,
)
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError, IncidentRecord, ServiceReference

SOURCE = "pagerduty"

# Event type → the status it reports; None: read the incident's own status (it changed something else).
_EVENT_STATUSES: dict[str, str | None] = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.unacknowledged": "triggered",
    "incident.reopened": "triggered",
    "incident.resolved": "resolved",
    "incident.priority_updated": None,
    "incident.escalated": None,
    "incident.reassigned": None,
    "incident.delegated": None,
}
_STATUSES = frozenset({"triggered", "acknowledged", "resolved"})
_URGENCIES = {"high": "sev2", "low": "sev3"}


def verify_signature(secrets: Sequence[str], body: bytes, header: str) -> bool:
    """True when one of the header's v1 signatures is the HMAC-SHA256 of the body under one of the secrets."""
    offered = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    for secret in secrets:
        expected = hmac_sha256_hex(secret, body)
        if any(secret_matches(expected, signature) for signature in offered):
            return True
    return False


def parse_webhook(payload: dict[str, Any]) -> IncidentEvent:
    """The incident change a delivery reports; IncidentPayloadError names what is missing, wrong or unstorable."""
    return record_checked(_parse_webhook(payload))


def _parse_webhook(payload: dict[str, Any]) -> IncidentEvent:
    event = obj(payload, "event", "payload")
    event_type = text(event, "event_type", "event")
    if event_type not in _EVENT_STATUSES:
        return IncidentEvent(ignored=f"event type {event_type[:60]} does not change an incident's state")
    data = obj(event, "data", "event")
    if data.get("type") != "incident":
        raise IncidentPayloadError(f"event.data.type: expected 'incident' for {event_type}")
    occurred_at = iso_time(event, "occurred_at", "event")
    status = _EVENT_STATUSES[event_type] or text(data, "status", "event.data")
    if status not in _STATUSES:
        raise IncidentPayloadError(f"event.data.status: unknown incident status {status[:40]!r}")
    number = data.get("number")
    title = opt_text(data, "title", "event.data") or opt_text(data, "summary", "event.data")
    record = IncidentRecord(
        source=SOURCE,
        external_id=text(data, "id", "event.data"),
        title=title or f"PagerDuty incident {number or ''}".strip(),
        status=status,  # type: ignore[arg-type]
        started_at=iso_time(data, "created_at", "event.data"),
        occurred_at=occurred_at,
        severity=_severity(data),  # type: ignore[arg-type]
        acknowledged_at=occurred_at if status == "acknowledged" else None,
        resolved_at=occurred_at if status == "resolved" else None,
        url=opt_text(data, "html_url", "event.data"),
        services=_services(data),
    )
    return IncidentEvent(record=record)


def _severity(data: dict[str, Any]) -> str | None:
    priority = opt_obj(data, "priority", "event.data")
    if priority is not None:
        found = severity_from_priority(opt_text(priority, "summary", "event.data.priority"))
        if found:
            return found
    return _URGENCIES.get(opt_text(data, "urgency", "event.data"))


def _services(data: dict[str, Any]) -> tuple[ServiceReference, ...]:
    service = opt_obj(data, "service", "event.data")
    if service is None:
        return ()
    name = opt_text(service, "summary", "event.data.service")
    return (ServiceReference(key=opt_text(service, "id", "event.data.service"), slug=slug(name)),)
