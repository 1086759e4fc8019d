"""Incidents from the REST API and from incident tools (PagerDuty, Opsgenie), idempotent by source + external id.

Every write happens in one transaction (an invalid change writes nothing) and queues the ranking of the
incident's suspects once it commits.

Which Tandem services an incident tool's incident affects: the services whose `incident_keys` hold
"<source>:<key>" for a key the tool gives (PagerDuty: the service id; Opsgenie: a tag or the entity), then the
services whose slug the tool names (PagerDuty: its service's name, slugified; Opsgenie: a `service:<slug>` tag or
the entity). An event naming no known service keeps the services stored (a lead may have set them by hand).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from reviews.access import lies_within
from telemetry.integrations.records import IncidentRecord, ServiceReference
from telemetry.models import Incident, Service
from telemetry.services.core import incident_services_set, incident_upsert
from telemetry.services.enqueue import incident_correlate_enqueue


class IncidentRejected(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class IncidentForbidden(IncidentRejected):
    """The caller may not change this incident (none of its services is theirs)."""


def services_for_references(*, source: str, references: Sequence[ServiceReference]) -> list[Service]:
    """The Tandem services an incident tool's references name (see the module's rule). One query."""
    if not references:
        return []
    keys = {f"{source}:{ref.key}".lower() for ref in references if ref.key}
    slugs = {ref.slug.lower() for ref in references if ref.slug}
    found = []
    for service in Service.objects.order_by("slug"):
        own_keys = {str(key).strip().lower() for key in service.incident_keys or []}
        if own_keys & keys or service.slug.lower() in slugs:
            found.append(service)
    return found


def _serialize_events_of(source: str, external_id: str) -> None:
    """Events of one incident are applied one at a time, even before its row exists: a row lock cannot order two
    events that both find no row (a trigger and its resolve 10 ms apart), and the later-applied older one would
    win. A transaction-scoped advisory lock on PostgreSQL; SQLite has one writer at a time anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"incident:{source}:{external_id}"])


def incident_record_apply(*, record: IncidentRecord) -> tuple[Incident, str]:
    """Apply an incident tool's event. Returns the incident and "created", "updated" or "stale" (an event older
    than the one stored changes nothing)."""
    services = services_for_references(source=record.source, references=record.services)
    with transaction.atomic():
        _serialize_events_of(record.source, record.external_id)
        existing = (
            Incident.objects.select_for_update().filter(source=record.source, external_id=record.external_id).first()
        )
        if existing and existing.source_updated_at and record.occurred_at < existing.source_updated_at:
            return existing, "stale"
        started_at = min(record.started_at, existing.started_at) if existing else record.started_at
        acknowledged_at = _first(existing.acknowledged_at if existing else None, record.acknowledged_at)
        if record.status == "resolved":
            resolved_at: dt.datetime | None = max(record.resolved_at or record.occurred_at, started_at)
        else:
            resolved_at = None  # triggered again (reopened), or not resolved yet
        if acknowledged_at is not None:
            acknowledged_at = max(acknowledged_at, started_at)
        incident, created = incident_upsert(
            source=record.source,
            external_id=record.external_id,
            title=record.title[:500],
            severity=record.severity or (existing.severity if existing else Incident.Severity.SEV3),
            status=record.status,
            started_at=started_at,
            services=services or (list(existing.services.all()) if existing else []),
            detected_at=existing.detected_at if existing and existing.detected_at else record.started_at,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            url=record.url or (existing.url if existing else ""),
            source_updated_at=record.occurred_at,
        )
        incident_correlate_enqueue(incident_id=incident.pk)
    return incident, "created" if created else "updated"


def incident_report(
    *,
    source: str,
    external_id: str,
    title: str,
    started_at: dt.datetime,
    services: Sequence[Service],
    severity: str = Incident.Severity.SEV3,
    status: str = Incident.Status.TRIGGERED,
    detected_at: dt.datetime | None = None,
    acknowledged_at: dt.datetime | None = None,
    resolved_at: dt.datetime | None = None,
    url: str = "",
    team_ids: Collection[int] | None = None,
) -> tuple[Incident, bool]:
    """An incident reported over the API: created, or replaced when the same source + external id comes again."""
    if status == Incident.Status.RESOLVED and resolved_at is None:
        resolved_at = timezone.now()
    _check_times(started_at, detected_at, acknowledged_at, resolved_at)
    with transaction.atomic():
        existing = Incident.objects.select_for_update().filter(source=source, external_id=external_id).first()
        if existing is not None and team_ids is not None:
            _check_writable(existing, team_ids)
        incident, created = incident_upsert(
            source=source,
            external_id=external_id,
            title=title,
            severity=severity,
            status=status,
            started_at=started_at,
            services=services,
            detected_at=detected_at,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            url=url,
            team_ids=team_ids,
        )
        incident_correlate_enqueue(incident_id=incident.pk)
    return incident, created


def incident_update(
    *, incident: Incident, changes: dict[str, Any], team_ids: Collection[int] | None = None
) -> Incident:
    """Change some of an incident's fields (`services` is a list of Service). Resolving without a time resolves
    now; any other status clears the resolution unless one is given."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if team_ids is not None:
            _check_writable(incident, team_ids)
        services = changes.pop("services", None)
        for name, value in changes.items():
            setattr(incident, name, value)
        if "status" in changes:
            if incident.status == Incident.Status.RESOLVED and incident.resolved_at is None:
                incident.resolved_at = timezone.now()
            elif incident.status != Incident.Status.RESOLVED and "resolved_at" not in changes:
                incident.resolved_at = None
        _check_times(incident.started_at, incident.detected_at, incident.acknowledged_at, incident.resolved_at)
        incident.save()
        if services is not None:
            incident_services_set(incident=incident, services=services, team_ids=team_ids)
        incident_correlate_enqueue(incident_id=incident.pk)
    return incident


def _check_writable(incident: Incident, team_ids: Collection[int]) -> None:
    if not lies_within(incident, team_ids):
        raise IncidentForbidden("This incident belongs to services you cannot write to.")


def _check_times(
    started_at: dt.datetime,
    detected_at: dt.datetime | None,
    acknowledged_at: dt.datetime | None,
    resolved_at: dt.datetime | None,
) -> None:
    for name, moment in (
        ("detected_at", detected_at),
        ("acknowledged_at", acknowledged_at),
        ("resolved_at", resolved_at),
    ):
        if moment is not None and moment < started_at:
            raise IncidentRejected(f"{name} is before started_at.", name)


def _first(*moments: dt.datetime | None) -> dt.datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None
