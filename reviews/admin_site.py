"""The admin site: its index puts first what a lead steers, then the read-only records and raw tables."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.urls import reverse

# What a lead steers, in the order they need it. Model labels: reviews never imports telemetry.
STEER: tuple[str, ...] = (
    "reviews.Policy",
    "reviews.Team",
    "reviews.Membership",
    "reviews.Person",
    "reviews.Identity",
    "reviews.Override",
    "reviews.FollowUpReview",
    "reviews.ApiToken",
    "telemetry.SuspectChange",
    "reviews.AuditEvent",
    "reviews.Repository",
    "telemetry.Service",
    "telemetry.ServiceRepository",
    "reviews.PairingSession",
)
# The instance itself: superusers only.
INSTANCE: tuple[str, ...] = (
    "reviews.Connection",
    "reviews.WebhookDelivery",
    "auth.User",
    "auth.Group",
    "django_celery_beat.PeriodicTask",
    "django_celery_beat.IntervalSchedule",
    "django_celery_beat.CrontabSchedule",
    "django_celery_beat.SolarSchedule",
    "django_celery_beat.ClockedSchedule",
)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("steer", "Steer your teams"),
    ("records", "Records and raw tables (read-only: from GitHub, GitLab, CI/CD and Tandem's own verdicts)"),
    ("instance", "This Tandem instance"),
)


def section_of(label: str) -> str:
    if label in STEER:
        return "steer"
    return "instance" if label in INSTANCE else "records"


def _order(label: str) -> tuple[int, str]:
    return (STEER.index(label), "") if label in STEER else (len(STEER), label)


class TandemAdminSite(admin.AdminSite):
    site_header = "Tandem administration"
    site_title = "Tandem"
    index_title = "Review policies, pairing and production feedback"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps  # an app's own page lists that app's models, as Django does
        models: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in SECTIONS}
        for app in apps:
            for model in app["models"]:
                models[section_of(model["model"]._meta.label)].append(model)
        index = reverse("admin:index", current_app=self.name)
        return [
            {
                "name": name,
                "app_label": key,
                "app_url": f"{index}#{key}",
                "has_module_perms": True,
                "models": sorted(models[key], key=lambda model: _order(model["model"]._meta.label)),
            }
            for key, name in SECTIONS
            if models[key]
        ]


class TandemAdminConfig(AdminConfig):
    """django.contrib.admin, with Tandem's site as the default `admin.site` (INSTALLED_APPS names this)."""

    default_site = "reviews.admin_site.TandemAdminSite"
