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
from telemetry.integrations._reading import IncidentReader, record_checked, severity_from_priority, slug
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
    event = IncidentReader(payload).req_obj("event")
    event_type = event.req_text("event_type")
    if event_type not in _EVENT_STATUSES:
        return IncidentEvent(ignored=f"event type {event_type[:60]} does not change an incident's state")
    data = event.req_obj("data")
    if data.raw("type") != "incident":
        raise IncidentPayloadError(f"event.data.type: expected 'incident' for {event_type}")
    occurred_at = event.req_time("occurred_at")
    status = _EVENT_STATUSES[event_type] or data.req_text("status")
    if status not in _STATUSES:
        raise IncidentPayloadError(f"event.data.status: unknown incident status {status[:40]!r}")
    number = data.raw("number")
    title = data.opt_text("title") or data.opt_text("summary")
    record = IncidentRecord(
        source=SOURCE,
        external_id=data.req_text("id"),
        title=title or f"PagerDuty incident {number or ''}".strip(),
        status=status,  # type: ignore[arg-type]
        started_at=data.req_time("created_at"),
        occurred_at=occurred_at,
        severity=_severity(data),  # type: ignore[arg-type]
        acknowledged_at=occurred_at if status == "acknowledged" else None,
        resolved_at=occurred_at if status == "resolved" else None,
        url=data.opt_text("html_url"),
        services=_services(data),
    )
    return IncidentEvent(record=record)


def _severity(data: IncidentReader) -> str | None:
    priority = data.opt_obj("priority")
    if priority is not None:
        found = severity_from_priority(priority.opt_text("summary"))
        if found:
            return found
    return _URGENCIES.get(data.opt_text("urgency"))


def _services(data: IncidentReader) -> tuple[ServiceReference, ...]:
    service = data.opt_obj("service")
    if service is None:
        return ()
    name = service.opt_text("summary")
    return (ServiceReference(key=service.opt_text("id"), slug=slug(name)),)
