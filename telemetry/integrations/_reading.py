"""What the incident-tool adapters share: the JSON reader (the one of every integration, with their errors and
times), and the few rules they apply alike (severity from priority, service slugs, storable records)."""

from __future__ import annotations

import datetime as dt
import re

from reviews.integrations.limits import moment_check, record_check
from reviews.integrations.payloads import JsonReader, json_type
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError

# (larger than, divide by): nanoseconds, microseconds, milliseconds; anything smaller is seconds.
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
_PRIORITIES = {"p1": "sev1", "p2": "sev2", "p3": "sev3", "p4": "sev4", "p5": "sev4"}


class IncidentReader(JsonReader):
    """An incident tool's payload, read with the one JSON reader (`reviews.integrations.payloads.JsonReader`):
    errors are `IncidentPayloadError`, texts are trimmed, and times are ISO 8601 with their UTC offset or epoch
    timestamps."""

    __slots__ = ()
    error = IncidentPayloadError

    def req_text(self, *keys: str) -> str:
        """A non-empty string, trimmed."""
        value = self.req_str(*keys).strip()
        if not value:
            raise self.error(f"{self.key_path(*keys)}: expected a non-empty string, got an empty string")
        return value

    def opt_text(self, *keys: str) -> str:
        """The string trimmed, or "" when missing or null."""
        return self.opt_str(*keys).strip()

    def req_epoch(self, *keys: str) -> dt.datetime:
        """Seconds, milliseconds, microseconds or nanoseconds since the epoch, told apart by magnitude (Opsgenie
        sends `createdAt` in milliseconds and `updatedAt` in nanoseconds)."""
        path = self.key_path(*keys)
        value = self.raw(*keys)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error(f"{path}: expected a positive epoch timestamp, got {json_type(value)}")
        seconds = next((value / divisor for threshold, divisor in _EPOCH_UNITS if value > threshold), value)
        try:
            moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise self.error(f"{path}: {value!r} is not a time Tandem can store") from None
        return moment_check(moment, path, error=self.error)


def record_checked(event: IncidentEvent) -> IncidentEvent:
    """The event, when every value in it can be stored (reviews.integrations.limits)."""
    record_check(event, error=IncidentPayloadError)
    return event


def severity_from_priority(priority: str) -> str | None:
    return _PRIORITIES.get(priority.strip().lower())


def slug(value: str) -> str:
    """A name as a Tandem service slug would spell it ("API Service" → "api-service")."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
