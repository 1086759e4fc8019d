"""A read-only admin for the audit trail, for the admin's owner to register:

    admin.site.register(AuditEvent, AuditEventAdmin)

A lead sees their teams' events (the scoping function is passed in, so the admin's own definition of "which
teams may this caller see" is the one used); nobody adds, changes or deletes one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from reviews.models import AuditEvent, Team


class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "source", "action", "team", "actor", "target", "reason"]
    list_filter = ["source", "action", "team"]
    search_fields = ["actor", "target", "reason", "action"]
    date_hierarchy = "at"
    list_select_related = ["team"]
    # Set by whoever registers it: the teams the request's user may see. Unset: superusers only.
    visible_teams: Callable[[HttpRequest], QuerySet[Team]] | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        if self.visible_teams is None:
            return queryset.none()
        return queryset.filter(team__in=self.visible_teams(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)
