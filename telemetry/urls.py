"""Incident tools' webhooks and a person's notices. config/urls.py includes these at the root:
`path("", include("telemetry.urls"))`."""

from __future__ import annotations

from django.urls import path, re_path

from telemetry import views, webhooks

urlpatterns = [
    path("webhooks/pagerduty/", webhooks.pagerduty_webhook, name="webhook-pagerduty"),
    path("webhooks/opsgenie/", webhooks.opsgenie_webhook, name="webhook-opsgenie"),
    path("notices/", views.notices, name="notices"),
    re_path(r"^suspects/(?P<pk>[0-9]+)/(?P<verdict>confirm|reject)/$", views.suspect_decide, name="suspect-decide"),
    path("teams/<slug:slug>/digest/", views.team_digest, name="team-digest"),
]
