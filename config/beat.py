"""Beat's scheduler: django-celery-beat's, reading the periodic jobs a superuser edits in the admin.

django-celery-beat writes CELERY_BEAT_SCHEDULE over the database at every start, which would undo every edit made
in the admin. This one only creates the defaults the database lacks (`reviews.services.schedules`) and leaves the
rest to the admin. No result backend, so no `celery.backend_cleanup` entry either.
"""

from __future__ import annotations

from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from reviews.services.schedules import periodic_task_defaults_create


class DefaultsOnceScheduler(DatabaseScheduler):  # type: ignore[misc]
    def setup_schedule(self) -> None:
        periodic_task_defaults_create(
            schedule=self.app.conf.beat_schedule, periodic_task_model=PeriodicTask, interval_model=IntervalSchedule
        )
