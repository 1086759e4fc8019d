"""Beat's periodic jobs become rows a superuser edits in the admin: the defaults in CELERY_BEAT_SCHEDULE are created
(only those missing; an edited one is left alone). Beat's scheduler does the same at every start
(`reviews.services.schedules.periodic_task_defaults_create`)."""

import datetime as dt
import json

from django.conf import settings
from django.db import migrations

# Frozen here (copied on 2026-11-27 from reviews.services.schedules.periodic_task_defaults_create): a migration never
# imports application code, so a later change there (a field django-celery-beat's models gained since 0019, say)
# never changes what this migration does. The schedule itself is the settings' (what beat creates at its start too).
_SHORTEST_SECONDS = 1


def _seconds(name, schedule):
    if isinstance(schedule, dt.timedelta):
        seconds = schedule.total_seconds()
    elif isinstance(schedule, int | float):
        seconds = float(schedule)
    else:
        raise ValueError(f"{name}: only interval schedules (seconds or a timedelta) are supported, not {schedule!r}")
    return max(_SHORTEST_SECONDS, round(seconds))


def periodic_task_defaults_create(*, schedule, periodic_task_model, interval_model):
    existing = set(periodic_task_model.objects.filter(name__in=list(schedule)).values_list("name", flat=True))
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


def create_defaults(apps, schema_editor):
    periodic_task_defaults_create(
        schedule=settings.CELERY_BEAT_SCHEDULE,
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0021_pairing_participant_stays"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
