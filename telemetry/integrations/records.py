"""Plain records of what incident tools report, whatever their format. Nothing here imports Django."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]
Severity = Literal["sev1", "sev2", "sev3", "sev4"]


class IncidentPayloadError(ValueError):
    """A payload is not what its format documents: the sender is told why, and nothing is written."""


@dataclass(frozen=True)
class ServiceReference:
    """How the tool names the affected service: `key` is matched against `Service.incident_keys` as
    "<source>:<key>", `slug` against `Service.slug`."""

    key: str = ""
    slug: str = ""


@dataclass(frozen=True)
class IncidentRecord:
    source: str  # pagerduty / opsgenie
    external_id: str
    title: str
    status: IncidentStatus
    started_at: dt.datetime
    occurred_at: dt.datetime  # when the reported change happened: older reports never overwrite newer ones
    severity: Severity | None = None  # None: keep what is stored (sev3 for a new incident)
    acknowledged_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    url: str = ""
    services: tuple[ServiceReference, ...] = ()


@dataclass(frozen=True)
class IncidentEvent:
    """One webhook: an incident change, or a reason to ignore it (a note, a ping)."""

    record: IncidentRecord | None = None
    ignored: str = ""
