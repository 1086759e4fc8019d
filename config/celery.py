"""The Celery app. It reads CELERY_* settings and finds each app's tasks.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tandem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every task run is counted, timed and named in its log lines; worker logs are JSON with LOG_FORMAT=json.
from config import celery_signals  # noqa: E402, F401
