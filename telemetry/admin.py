"""Admin for services, deployments, incidents and their suspect changes.

Deployments and incidents come from CI/CD and incident tools, suspects from ranking: read-only here. A lead
gives a verdict on a suspect with an action; leads steer services and the repositories they run from."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from reviews.admin_scoping import FactAdmin, RecordAdmin, ScopedInline, TeamScopedAdmin, admin_access
from reviews.models import AuditEvent
from reviews.services.audit import actor_for
from telemetry.models import (
    AlertSettings,
    DeployCheck,
    Deployment,
    DeploymentChange,
    Incident,
    Notification,
    Service,
    ServiceRepository,
    SuspectChange,
    SuspectVerdict,
    TeamAlert,
    WeeklyDigest,
)
from telemetry.services.alerts import alert_acknowledge
from telemetry.services.enqueue import deployment_link_enqueue, incident_correlate_enqueue
from telemetry.services.suspects import suspect_confirm, suspect_reject


class ServiceRepositoryInline(ScopedInline):
    model = ServiceRepository
    extra = 0
    autocomplete_fields = ["repository"]


@admin.register(Service)
class ServiceAdmin(TeamScopedAdmin):
    list_display = ["name", "slug", "team", "incident_keys"]
    list_filter = ["team"]
    search_fields = ["name", "slug"]
    fields = ["name", "slug", "team", "incident_keys", "created_at"]
    autocomplete_fields = ["team"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ServiceRepositoryInline]


@admin.register(ServiceRepository)
class ServiceRepositoryAdmin(TeamScopedAdmin):
    list_display = ["service", "repository", "path_filters"]
    search_fields = ["service__name", "repository__full_path"]
    autocomplete_fields = ["service", "repository"]


class DeploymentChangeInline(ScopedInline):
    editable = False  # what a deployment shipped is linked from the VCS, not typed in
    model = DeploymentChange
    extra = 0
    autocomplete_fields = ["commit", "pull_request"]


@admin.register(Deployment)
class DeploymentAdmin(FactAdmin):
    list_display = [
        "service",
        "environment",
        "sha",
        "status",
        "source",
        "finished_at",
        "caused_incident",
        "link_method",
        "link_error",
    ]
    list_filter = ["status", "environment", "source", "caused_incident", "service__team", "service"]
    search_fields = ["sha", "external_id", "service__name"]
    autocomplete_fields = ["service", "repository"]
    date_hierarchy = "finished_at"
    list_select_related = ["service"]
    readonly_fields = ["changes_linked_at", "link_method", "link_error", "compared", "source_updated_at"]
    inlines = [DeploymentChangeInline]
    actions = ["relink"]

    @admin.action(description="Link selected deployments to what they shipped again")
    def relink(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        for deployment_id in queryset.values_list("pk", flat=True):
            deployment_link_enqueue(deployment_id=deployment_id)
        self.message_user(request, f"Queued linking of {queryset.count()} deployments.")


@admin.register(DeploymentChange)
class DeploymentChangeAdmin(FactAdmin):
    list_display = ["deployment", "commit", "pull_request"]
    search_fields = ["commit__sha", "pull_request__title"]
    autocomplete_fields = ["deployment", "commit", "pull_request"]


class SuspectChangeInline(ScopedInline):
    editable = False
    model = SuspectChange
    extra = 0
    # Verdicts are given with the actions of the suspect changes' page, which do what a confirmation implies.
    fields = ("rank", "pull_request", "deployment", "score", "reasons", "verdict")
    readonly_fields = fields
    can_delete = False


@admin.register(Incident)
class IncidentAdmin(FactAdmin):
    list_display = ["title", "severity", "status", "source", "started_at", "resolved_at"]
    list_filter = ["severity", "status", "source", "services__team", "services"]
    search_fields = ["title", "external_id"]
    autocomplete_fields = ["services"]
    date_hierarchy = "started_at"
    readonly_fields = ["correlated_at", "correlation_error", "source_updated_at"]
    inlines = [SuspectChangeInline]
    actions = ["rerank"]

    @admin.action(description="Rank the suspects of selected incidents again")
    def rerank(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        for incident_id in queryset.values_list("pk", flat=True):
            incident_correlate_enqueue(incident_id=incident_id)
        self.message_user(request, f"Queued ranking for {queryset.count()} incidents.")


@admin.register(SuspectChange)
class SuspectChangeAdmin(RecordAdmin):
    """Suspects come from ranking, never by hand (adding one crashed on its score); a verdict is an action."""

    list_display = ["incident", "rank", "pull_request", "score", "verdict", "decided_by"]
    list_filter = ["verdict", "incident__severity"]
    search_fields = ["incident__title", "pull_request__title"]
    autocomplete_fields = ["incident", "deployment", "pull_request", "decided_by"]
    readonly_fields = [
        "score",
        "rank",
        "reasons",
        "verdict",
        "decided_by",
        "decided_at",
        "chat_notified_at",
        "chat_error",
        "chat_attempts",
        "chat_next_attempt_at",
        "chat_sending_since",
    ]
    list_select_related = ["incident", "pull_request__repository", "deployment__service"]
    actions = ["confirm", "reject"]

    @admin.action(description="Confirm as the cause (marks the deployment failed, tells author and reviewers)")
    def confirm(self, request: HttpRequest, queryset: QuerySet[SuspectChange]) -> None:
        self._decide(request, queryset, suspect_confirm, "confirmed")

    @admin.action(description="Reject (undoes a confirmation)")
    def reject(self, request: HttpRequest, queryset: QuerySet[SuspectChange]) -> None:
        self._decide(request, queryset, suspect_reject, "rejected")

    def _decide(self, request: HttpRequest, queryset: QuerySet[SuspectChange], decide: Any, done: str) -> None:
        access = admin_access(request)
        person = getattr(request.user, "person", None)
        decided = refused = 0
        for suspect in queryset.select_related("deployment__service"):
            if not access.leads(suspect.deployment.service.team_id):
                refused += 1
                continue
            decide(suspect=suspect, decided_by=person, actor=actor_for(request.user, source=AuditEvent.Source.ADMIN))
            decided += 1
        if decided:
            self.message_user(request, f"{decided} suspect changes {done}.")
        if refused:
            self.message_user(
                request, f"{refused} left alone: only a lead of the service's team decides.", level=messages.WARNING
            )


@admin.register(SuspectVerdict)
class SuspectVerdictAdmin(RecordAdmin):
    """Each decision on a suspect, on the record; written by the suspect changes' confirm and reject actions."""

    list_display = ["suspect", "verdict", "decided_by", "token", "decided_at"]
    list_filter = ["verdict"]
    search_fields = ["suspect__incident__title", "suspect__pull_request__title", "decided_by__display_name"]
    autocomplete_fields = ["suspect", "decided_by", "token"]
    date_hierarchy = "decided_at"


@admin.register(DeployCheck)
class DeployCheckAdmin(RecordAdmin):
    """Each deploy check as it was answered (the API, or a GitHub protection rule), on the record."""

    list_display = ["service", "environment", "sha", "level", "decision", "source", "checked_at", "deployment"]
    list_filter = ["level", "decision", "source", "environment"]
    search_fields = ["service__slug", "sha"]
    autocomplete_fields = ["service", "repository", "token", "deployment"]
    date_hierarchy = "checked_at"


@admin.register(Notification)
class NotificationAdmin(FactAdmin):
    list_display = ["subject", "person", "kind", "created_at", "read_at"]
    list_filter = ["kind", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "person__display_name"]
    autocomplete_fields = ["person", "incident", "pull_request"]


@admin.register(AlertSettings)
class AlertSettingsAdmin(TeamScopedAdmin):
    """How sensitive a team's alerts are; a team without a row has the defaults. The ranges are validated (and a
    database constraint)."""

    list_display = ["team", "enabled", "deviations", "sustained_days", "baseline_weeks"]
    autocomplete_fields = ["team"]


@admin.register(TeamAlert)
class TeamAlertAdmin(RecordAdmin):
    """Alerts come from the alerting run, never by hand; they close on recovery and are never deleted. A lead
    acknowledges them with the action."""

    list_display = ["team", "figure", "first_day", "value", "baseline", "departure", "closed_at", "acknowledged_at"]
    list_filter = ["figure", ("closed_at", admin.EmptyFieldListFilter), ("acknowledged_at", admin.EmptyFieldListFilter)]
    search_fields = ["team__name", "figure"]
    list_select_related = ["team", "acknowledged_by"]
    readonly_fields = [field.name for field in TeamAlert._meta.concrete_fields if field.name != "id"]
    actions = ["acknowledge"]

    @admin.action(description="Acknowledge the selected alerts (recorded with your name and the time)")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[TeamAlert]) -> None:
        access = admin_access(request)
        person = getattr(request.user, "person", None)
        done = refused = 0
        for alert in queryset.select_related("team"):
            if not access.leads(alert.team_id) or person is None:
                refused += 1
                continue
            done += alert_acknowledge(
                alert=alert, person=person, token=None, actor=actor_for(request.user, source=AuditEvent.Source.ADMIN)
            )
        if done:
            self.message_user(request, f"{done} alerts acknowledged.")
        if refused:
            self.message_user(
                request,
                f"{refused} left alone: only a lead of the team, linked to a person, acknowledges.",
                level=messages.WARNING,
            )


@admin.register(WeeklyDigest)
class WeeklyDigestAdmin(FactAdmin):
    """Each team's weekly digest as it was sent, and whether the chat and the e-mail got it."""

    list_display = ["team", "week", "chat_notified_at", "email_sent_at", "email_error"]
    list_filter = ["week"]
    search_fields = ["team__name"]
    readonly_fields = [field.name for field in WeeklyDigest._meta.concrete_fields if field.name != "id"]
