"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answering. Touches nothing else, so a slow database cannot fail it."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database answers and, when configured, the Celery broker does too."""
    checks = {"database": _check_database()}
    if settings.REDIS_URL:
        checks["broker"] = _check_broker(settings.REDIS_URL)
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


def _check_database() -> dict[str, object]:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        logger.warning("readyz: database check failed: %s", exc)
        return _failed(exc)
    return {"ok": True}


def _check_broker(url: str) -> dict[str, object]:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        logger.warning("readyz: broker check failed: %s", exc)
        return _failed(exc)
    return {"ok": True}


def _failed(exc: Exception) -> dict[str, object]:
    """What failed, for anyone who asks; the message (hosts, ports, user names) is in the log line only."""
    return {"ok": False, "error": f"{type(exc).__name__} (the server's log says more)"}
