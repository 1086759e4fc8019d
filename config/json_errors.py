"""Every error under /api/ and /webhooks/ is JSON: `{"error": "<what is wrong>"}`, never Django's HTML page.

DRF already answers its own errors in JSON (reviews.api.errors); this middleware covers what happens outside a DRF
view: an unknown path (404), a method a plain view does not take (405), a body over Django's size cap, an
unhandled exception (500). It sits first in MIDDLEWARE, so it sees the response Django builds for any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

MACHINE_PREFIXES = ("/api/", "/webhooks/")


class JsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _is_machine_path(request) or response.status_code < 400 or _is_json(response):
            return response
        return _json_error(response.status_code, _reason(response.status_code), allow=response.get("Allow"))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if _is_machine_path(request) and isinstance(exception, RequestDataTooBig):
            return _json_error(413, "Request body is larger than this server accepts (JSON_MAX_BODY_BYTES).")
        return None


def _is_machine_path(request: HttpRequest) -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."


def _json_error(status: int, message: str, *, allow: str | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if allow:
        response["Allow"] = allow
    return response
