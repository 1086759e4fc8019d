from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from config import api_docs, health
from reviews import webhook_sources
from telemetry import exporter

urlpatterns = [
    path("", RedirectView.as_view(url="/teams/", permanent=False)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", exporter.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("webhooks/github/", webhook_sources.github_webhook, name="webhook-github"),
    path("webhooks/gitlab/", webhook_sources.gitlab_webhook, name="webhook-gitlab"),
    path("", include("telemetry.urls")),
    path("api/v1/", include("reviews.api.urls")),
    path("api/v1/", include("telemetry.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_docs.api_docs, name="api-docs"),
    path("", include("reviews.urls")),
]
