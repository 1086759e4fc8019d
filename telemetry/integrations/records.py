"""Plain records of what incident tools report, whatever their format. Nothing here imports Django."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from reviews.integrations.records import PayloadError, max_length

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]
Severity = Literal["sev1", "sev2", "sev3", "sev4"]


class IncidentPayloadError(PayloadError):
    """A payload is not what its format documents: the sender is told why, and nothing is written."""


@dataclass(frozen=True)
class ServiceReference:
    """How the tool names the affected service: `key` is matched against `Service.incident_keys` as
    "<source>:<key>", `slug` against `Service.slug`."""

    key: str = ""
    slug: str = ""


@dataclass(frozen=True)
class IncidentRecord:
    source: str = field(metadata=max_length(20))  # pagerduty / opsgenie
    external_id: str = field(metadata=max_length(200))
    title: str = field(metadata=max_length(500))
    status: IncidentStatus
    started_at: dt.datetime
    occurred_at: dt.datetime  # when the reported change happened: older reports never overwrite newer ones
    severity: Severity | None = None  # None: keep what is stored (sev3 for a new incident)
    acknowledged_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    url: str = field(default="", metadata=max_length(1000))
    services: tuple[ServiceReference, ...] = ()


@dataclass(frozen=True)
class IncidentEvent:
    """One webhook: an incident change, or a reason to ignore it (a note, a ping)."""

    record: IncidentRecord | None = None
    ignored: str = ""
