"""Beat's periodic jobs in the admin (django-celery-beat): superusers only, whatever Django permissions a staff user
holds. A schedule is the instance's, not a team's: how often every repository is synced, how soon a lost verdict is
redone."""

from __future__ import annotations

import django_celery_beat.admin  # noqa: F401 - registers the admins replaced below
from django.contrib import admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from reviews.admin_scoping import SuperuserOnlyAdmin

SCHEDULE_MODELS = (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule)


for model in SCHEDULE_MODELS:
    if admin.site.is_registered(model):
        registered = type(admin.site.get_model_admin(model))
        admin.site.unregister(model)
    else:
        registered = admin.ModelAdmin
    # Tandem's superusers-only rules first; no inline of the tasks under a schedule (the tasks' own page lists them).
    admin.site.register(
        model, type(f"Superusers{registered.__name__}", (SuperuserOnlyAdmin, registered), {"inlines": []})
    )
