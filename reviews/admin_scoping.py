"""Team leads in the admin: a staff user who leads a team sees and changes only that team's rows.

Superusers see everything. A lead needs no Django model permissions for the scoped models: leading a team is
the permission, and the queryset is the boundary (an object outside it is a 404, as Django's admin does for
anything `get_queryset` leaves out).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from reviews.models import Membership, Team


def led_team_ids(request: HttpRequest) -> list[int]:
    """The teams the signed-in staff user leads (cached on the request)."""
    cached = getattr(request, "_led_team_ids", None)
    if cached is None:
        person = getattr(request.user, "person", None)
        cached = (
            list(Membership.objects.filter(person=person, role=Membership.Role.LEAD).values_list("team_id", flat=True))
            if person is not None and request.user.is_staff
            else []
        )
        request._led_team_ids = cached  # type: ignore[attr-defined]
    return cached


def is_lead(request: HttpRequest) -> bool:
    return bool(led_team_ids(request))


class TeamScopedAdmin(admin.ModelAdmin):
    """Subclasses name the path(s) from their model to its Team in `team_paths`; a row is the lead's when any
    path reaches one of the teams they lead."""

    team_paths: tuple[str, ...] = ()

    def scope(self, queryset: QuerySet, request: HttpRequest) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        teams = led_team_ids(request)
        condition = Q()
        for path in self.team_paths:
            condition |= Q(**{f"{path}__in": teams})
        return queryset.filter(condition).distinct() if teams else queryset.none()

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(super().get_queryset(request), request)

    def _allowed(self, request: HttpRequest, obj: Model | None) -> bool:
        if request.user.is_superuser:
            return True
        if not is_lead(request):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or is_lead(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:  # type: ignore[override]
        return request.user.is_superuser or is_lead(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """A lead picks only their own teams (and their teams' rows where the choice is scoped)."""
        if db_field.related_model is Team and not request.user.is_superuser:
            kwargs["queryset"] = Team.objects.filter(pk__in=led_team_ids(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.related_model is Team and not request.user.is_superuser:
            kwargs["queryset"] = Team.objects.filter(pk__in=led_team_ids(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """Instance-wide rows (connections, webhook deliveries): superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:  # type: ignore[override]
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser
