from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config import health
from reviews import webhooks

admin.site.site_header = "Tandem administration"
admin.site.site_title = "Tandem"
admin.site.index_title = "Review policies, pairing and production feedback"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("webhooks/github/", webhooks.github_webhook, name="webhook-github"),
    path("webhooks/gitlab/", webhooks.gitlab_webhook, name="webhook-gitlab"),
]
