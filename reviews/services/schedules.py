"""Beat's periodic jobs as database rows (django-celery-beat), created from CELERY_BEAT_SCHEDULE, the one source of
the defaults.

A default missing from the database is created; one that exists is left as it is, whatever an admin changed (its
interval, its arguments, switching it off). A deleted default comes back at the next migrate or start of beat:
switch a job off instead. Beat's scheduler (`config.beat`) calls this at every start, so a default added to the
dict later appears without a migration; migration reviews.0022 holds a frozen copy of it (as of 2026-11-27).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

# Beat's finest interval is a second; the settings allow fractions (DELIVERY_DISPATCH_SECONDS=0.5 in a benchmark).
_SHORTEST_SECONDS = 1


def periodic_task_defaults_create(
    *, schedule: Mapping[str, Mapping[str, Any]], periodic_task_model: Any, interval_model: Any
) -> list[str]:
    """Create the periodic tasks of `schedule` (Celery's beat_schedule shape) that the database lacks, by name.
    Returns the names created. Only intervals are supported (every entry of Tandem's schedule is one)."""
    existing = set(periodic_task_model.objects.filter(name__in=list(schedule)).values_list("name", flat=True))
    created = []
    for name, entry in schedule.items():
        if name in existing:
            continue
        every = _seconds(name, entry["schedule"])
        interval, _ = interval_model.objects.get_or_create(every=every, period="seconds")
        options = dict(entry.get("options", {}))
        expires = options.pop("expires", None)
        periodic_task_model.objects.create(
            name=name,
            task=entry["task"],
            interval=interval,
            args=json.dumps(list(entry.get("args", []))),
            kwargs=json.dumps(dict(entry.get("kwargs", {}))),
            expire_seconds=int(expires) if expires is not None else None,
            queue=options.pop("queue", None),
            description="A default from CELERY_BEAT_SCHEDULE; edit it here, or switch it off (a deleted default "
            "comes back).",
        )
        created.append(name)
    return created


def _seconds(name: str, schedule: object) -> int:
    if isinstance(schedule, dt.timedelta):
        seconds = schedule.total_seconds()
    elif isinstance(schedule, int | float):
        seconds = float(schedule)
    else:
        raise ValueError(f"{name}: only interval schedules (seconds or a timedelta) are supported, not {schedule!r}")
    return max(_SHORTEST_SECONDS, round(seconds))
