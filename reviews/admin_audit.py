"""The audit trail in the admin: read-only for everyone. A lead reads the events of the teams they lead
(`reviews.access`, as every other admin page); events of no team (a connection's change) are a superuser's."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from reviews.admin_scoping import RecordAdmin
from reviews.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    list_display = ["at", "source", "action", "team", "actor", "target", "reason"]
    list_filter = ["source", "action", "team"]
    search_fields = ["actor", "target", "reason", "action"]
    date_hierarchy = "at"
    list_select_related = ["team"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]
