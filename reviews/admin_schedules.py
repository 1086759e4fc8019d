"""Beat's periodic jobs in the admin (django-celery-beat): superusers only, whatever Django permissions a staff user
holds. A schedule is the instance's, not a team's: how often every repository is synced, how soon a lost verdict is
redone."""

from __future__ import annotations

from typing import Any

import django_celery_beat.admin  # noqa: F401 - registers the admins replaced below
from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

SCHEDULE_MODELS = (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule)


class SuperusersOnly:
    def _superuser(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request)


for model in SCHEDULE_MODELS:
    if admin.site.is_registered(model):
        registered = type(admin.site.get_model_admin(model))
        admin.site.unregister(model)
    else:
        registered = admin.ModelAdmin
    admin.site.register(model, type(f"Superusers{registered.__name__}", (SuperusersOnly, registered), {}))
