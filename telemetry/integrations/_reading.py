"""Small readers shared by the incident-tool adapters: typed access to JSON with the key path in every error."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from reviews.integrations.limits import moment_check, record_check
from telemetry.integrations.records import IncidentEvent, IncidentPayloadError

# (larger than, divide by): nanoseconds, microseconds, milliseconds; anything smaller is seconds.
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
_PRIORITIES = {"p1": "sev1", "p2": "sev2", "p3": "sev3", "p4": "sev4", "p5": "sev4"}


def obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise IncidentPayloadError(f"{where}.{key}: expected an object, got {_kind(value)}")
    return value


def opt_obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise IncidentPayloadError(f"{where}.{key}: expected an object, got {_kind(value)}")
    return value


def text(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value.strip():
        raise IncidentPayloadError(f"{where}.{key}: expected a non-empty string, got {_kind(value)}")
    return value.strip()


def opt_text(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IncidentPayloadError(f"{where}.{key}: expected a string, got {_kind(value)}")
    return value.strip()


def iso_time(parent: dict[str, Any], key: str, where: str) -> dt.datetime:
    raw = text(parent, key, where)
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as error:
        raise IncidentPayloadError(f"{where}.{key}: not an ISO 8601 time: {raw[:40]!r}") from error
    if moment.tzinfo is None:
        raise IncidentPayloadError(f"{where}.{key}: the time has no UTC offset: {raw[:40]!r}")
    return moment_check(moment, f"{where}.{key}", error=IncidentPayloadError)


def epoch_time(parent: dict[str, Any], key: str, where: str) -> dt.datetime:
    """Seconds, milliseconds, microseconds or nanoseconds since the epoch, told apart by magnitude (Opsgenie
    sends `createdAt` in milliseconds and `updatedAt` in nanoseconds)."""
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise IncidentPayloadError(f"{where}.{key}: expected a positive epoch timestamp, got {_kind(value)}")
    seconds = next((value / divisor for threshold, divisor in _EPOCH_UNITS if value > threshold), value)
    try:
        moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise IncidentPayloadError(f"{where}.{key}: {value!r} is not a time Tandem can store") from None
    return moment_check(moment, f"{where}.{key}", error=IncidentPayloadError)


def record_checked(event: IncidentEvent) -> IncidentEvent:
    """The event, when every value in it can be stored (reviews.integrations.limits)."""
    record_check(event, error=IncidentPayloadError)
    return event


def severity_from_priority(priority: str) -> str | None:
    return _PRIORITIES.get(priority.strip().lower())


def slug(value: str) -> str:
    """A name as a Tandem service slug would spell it ("API Service" → "api-service")."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
