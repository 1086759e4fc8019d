"""Opsgenie alert webhooks (the Webhook integration's "alert action data") as plain incident records.

A payload is `{"action", "alert": {"alertId", "message", "tinyId", "alias", "entity", "tags", "priority",
"createdAt" (ms), "updatedAt" (ns), ...}, "source": {...}, "integrationName", ...}`. Opsgenie signs nothing:
the integration is set up to send a shared token in a custom header, compared here in constant time.

Services: an alert names its Tandem service by a `service:<slug>` tag, by its `entity`, or by any tag or
entity listed in a service's incident keys as `opsgenie:<value>`.
"""

from __future__ import annotations

from typing import Any

from reviews.integrations.signing import secret_matches
from telemetry.integrations._reading import IncidentReader, record_checked, severity_from_priority, slug
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError, IncidentRecord, ServiceReference

SOURCE = "opsgenie"

_ACTION_STATUSES = {
    "Create": "triggered",
    "Acknowledge": "acknowledged",
    "UnAcknowledge": "triggered",
    "Close": "resolved",
}


def verify_token(expected: str, offered: str) -> bool:
    return secret_matches(expected, offered)


def parse_webhook(payload: dict[str, Any]) -> IncidentEvent:
    """The incident change a delivery reports; IncidentPayloadError names what is missing, wrong or unstorable."""
    return record_checked(_parse_webhook(payload))


def _parse_webhook(payload: dict[str, Any]) -> IncidentEvent:
    root = IncidentReader(payload)
    action = root.req_text("action")
    if action not in _ACTION_STATUSES:
        return IncidentEvent(ignored=f"alert action {action[:60]} does not change an incident's state")
    alert = root.req_obj("alert")
    status = _ACTION_STATUSES[action]
    started_at = alert.req_epoch("createdAt")
    occurred_at = alert.req_epoch("updatedAt") if alert.has("updatedAt") else started_at
    tiny_id = alert.opt_text("tinyId")
    record = IncidentRecord(
        source=SOURCE,
        external_id=alert.req_text("alertId"),
        title=alert.opt_text("message") or f"Opsgenie alert {tiny_id}".strip(),
        status=status,  # type: ignore[arg-type]
        started_at=started_at,
        occurred_at=max(occurred_at, started_at),
        severity=severity_from_priority(alert.opt_text("priority")),  # type: ignore[arg-type]
        acknowledged_at=occurred_at if status == "acknowledged" else None,
        resolved_at=max(occurred_at, started_at) if status == "resolved" else None,
        services=_services(alert),
    )
    return IncidentEvent(record=record)


def _services(alert: IncidentReader) -> tuple[ServiceReference, ...]:
    tags = alert.opt_list("tags") or []
    if not all(isinstance(tag, str) for tag in tags):
        raise IncidentPayloadError("alert.tags: expected an array of strings")
    found: list[ServiceReference] = []
    for tag in tags:
        name, _, value = tag.partition(":")
        if name.strip().lower() == "service" and value.strip():
            found.append(ServiceReference(slug=slug(value)))
        else:
            found.append(ServiceReference(key=tag.strip()))
    entity = alert.opt_text("entity")
    if entity:
        found.append(ServiceReference(key=entity, slug=slug(entity)))
    return tuple(dict.fromkeys(found))
