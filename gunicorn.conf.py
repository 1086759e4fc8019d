"""gunicorn's settings for Tandem's web process, read from the working directory (`/app` in the image): the command
line (`gunicorn config.wsgi --bind …`, WEB_CONCURRENCY) still says what to serve, with how many workers.

Each worker loads Django and the app itself, about 170,000 objects that live as long as the worker. Python's
collector walks every one of them at each full collection, tens of milliseconds during which that worker's requests
wait: a webhook's acknowledgement at the tail. Once the app is loaded they are moved out of the collector's reach
(`gc.freeze`), so a full collection walks only what requests made since. Garbage made while loading is collected
first, so nothing collectable is frozen; objects created later are collected as before.
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """After the worker has loaded the app, before it takes its first request: the URLconf and the views it imports
    are loaded now (Django would at the first request), so they are frozen with the rest."""
    from django.urls import get_resolver  # noqa: PLC0415  (the app, and so Django, is loaded by now)

    get_resolver().url_patterns  # noqa: B018  (loads the URLconf)
    app_objects_frozen()


def app_objects_frozen() -> int:
    """Collect what loading left behind, then freeze the rest; how many objects are frozen now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
