"""Telemetry's settings, each read from Django settings when set there, else from the environment.

| name | default | meaning |
|---|---|---|
| `TELEMETRY_SUSPECT_WINDOW_HOURS` | 72 | suspects: deployments finished this long before an incident started |
| `TELEMETRY_PRODUCTION_ENVIRONMENTS` | `production,prod` | environment names (case-insensitive) that are production |
| `TELEMETRY_FIRST_DEPLOYMENT_LOOKBACK_DAYS` | 14 | a first deployment ships what was merged this long before it |
| `PAGERDUTY_WEBHOOK_SECRET` | none | the V3 subscription's signing secret(s), comma-separated during a rotation |
| `OPSGENIE_WEBHOOK_TOKEN` | none | the token Opsgenie's webhook integration sends in `X-Tandem-Token` |
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from django.conf import settings


def _get(name: str, default: Any) -> Any:
    if hasattr(settings, name):
        return getattr(settings, name)
    return os.environ.get(name, default)


def _list(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def suspect_window() -> dt.timedelta:
    return dt.timedelta(hours=float(_get("TELEMETRY_SUSPECT_WINDOW_HOURS", 72)))


def production_environments() -> list[str]:
    return sorted({name.lower() for name in _list(_get("TELEMETRY_PRODUCTION_ENVIRONMENTS", "production,prod"))})


def first_deployment_lookback() -> dt.timedelta:
    return dt.timedelta(days=float(_get("TELEMETRY_FIRST_DEPLOYMENT_LOOKBACK_DAYS", 14)))


def pagerduty_secrets() -> list[str]:
    return _list(_get("PAGERDUTY_WEBHOOK_SECRET", ""))


def opsgenie_token() -> str:
    return str(_get("OPSGENIE_WEBHOOK_TOKEN", "") or "")
