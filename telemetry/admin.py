"""Admin for services, deployments, incidents and their suspect changes."""

from __future__ import annotations

from django.contrib import admin

from telemetry.models import (
    Deployment,
    DeploymentChange,
    Incident,
    Notification,
    Service,
    ServiceRepository,
    SuspectChange,
)


class ServiceRepositoryInline(admin.TabularInline):
    model = ServiceRepository
    extra = 0
    autocomplete_fields = ["repository"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "team"]
    list_filter = ["team"]
    search_fields = ["name", "slug"]
    autocomplete_fields = ["team"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ServiceRepositoryInline]


@admin.register(ServiceRepository)
class ServiceRepositoryAdmin(admin.ModelAdmin):
    list_display = ["service", "repository", "path_filters"]
    search_fields = ["service__name", "repository__full_path"]
    autocomplete_fields = ["service", "repository"]


class DeploymentChangeInline(admin.TabularInline):
    model = DeploymentChange
    extra = 0
    autocomplete_fields = ["commit", "pull_request"]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["service", "environment", "sha", "status", "source", "finished_at", "caused_incident"]
    list_filter = ["status", "environment", "source", "caused_incident", "service__team", "service"]
    search_fields = ["sha", "external_id", "service__name"]
    autocomplete_fields = ["service", "repository"]
    date_hierarchy = "finished_at"
    list_select_related = ["service"]
    inlines = [DeploymentChangeInline]


@admin.register(DeploymentChange)
class DeploymentChangeAdmin(admin.ModelAdmin):
    list_display = ["deployment", "commit", "pull_request"]
    search_fields = ["commit__sha", "pull_request__title"]
    autocomplete_fields = ["deployment", "commit", "pull_request"]


class SuspectChangeInline(admin.TabularInline):
    model = SuspectChange
    extra = 0
    fields = ["rank", "pull_request", "deployment", "score", "reasons", "verdict"]
    readonly_fields = ["rank", "pull_request", "deployment", "score", "reasons"]
    can_delete = False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["title", "severity", "status", "source", "started_at", "resolved_at"]
    list_filter = ["severity", "status", "source", "services__team", "services"]
    search_fields = ["title", "external_id"]
    autocomplete_fields = ["services"]
    date_hierarchy = "started_at"
    inlines = [SuspectChangeInline]


@admin.register(SuspectChange)
class SuspectChangeAdmin(admin.ModelAdmin):
    list_display = ["incident", "rank", "pull_request", "score", "verdict", "decided_by"]
    list_filter = ["verdict", "incident__severity"]
    search_fields = ["incident__title", "pull_request__title"]
    autocomplete_fields = ["incident", "deployment", "pull_request", "decided_by"]
    readonly_fields = ["score", "rank", "reasons"]
    list_select_related = ["incident", "pull_request__repository"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["subject", "person", "kind", "created_at", "read_at"]
    list_filter = ["kind", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "person__display_name"]
    autocomplete_fields = ["person", "incident", "pull_request"]
