"""One trailing-slash policy for all of /api/: a path is taken with or without its final slash.

The API's paths have none (`/api/v1/teams`), the schema and docs pages one (`/api/docs/`); clients write either. A
request whose path does not resolve as written, but does with the final slash added or removed, is served as that
path, in place: no redirect, so a POST keeps its body and a client needs no second round trip. Pages outside /api/
keep Django's APPEND_SLASH redirect.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

API_PREFIX = "/api/"


def _resolves(path: str, urlconf: str | None) -> bool:
    try:
        resolve(path, urlconf)
    except Resolver404:
        return False
    return True


def api_path(path: str, urlconf: str | None = None) -> str:
    """The path an /api/ request is served as: as written if it resolves, else its other form if that does."""
    if not path.startswith(API_PREFIX) or _resolves(path, urlconf):
        return path
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    return other if other != API_PREFIX.rstrip("/") and _resolves(other, urlconf) else path


class ApiTrailingSlashMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            request.path_info = api_path(request.path_info, getattr(request, "urlconf", None))
        return self.get_response(request)
