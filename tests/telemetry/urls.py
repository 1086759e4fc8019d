"""The project's URLs plus telemetry's webhooks, as config/urls.py will have them once it includes telemetry.urls."""

from __future__ import annotations

from config.urls import urlpatterns as project_urlpatterns
from telemetry.urls import urlpatterns as telemetry_urlpatterns

urlpatterns = [*telemetry_urlpatterns, *project_urlpatterns]
