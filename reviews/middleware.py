"""Times in the viewer's time zone: the browser says which (a cookie reviews/base.html sets), each page request
activates it. The API and webhooks keep the server's zone: a machine's answer does not depend on a cookie."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "tz"
MACHINE_PREFIXES = ("/api/", "/webhooks/")


def viewer_timezone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone the browser named ("Europe/Berlin"), or None for anything else."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "/_+-" for c in name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class ViewerTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(MACHINE_PREFIXES):
            return self.get_response(request)  # machines get the server's zone, whoever's browser calls
        zone = viewer_timezone(request.COOKIES.get(COOKIE, ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
