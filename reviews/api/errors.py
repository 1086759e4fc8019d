"""Consistent JSON errors for the REST API."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as {"error": "<what is wrong>", "fields": {...}} with the right status."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        response.data = {"error": str(detail["detail"])}
    elif isinstance(detail, dict):
        non_field = detail.pop("non_field_errors", None)
        message = " ".join(str(m) for m in non_field) if non_field else "Invalid input."
        response.data = {"error": message, "fields": detail} if detail else {"error": message}
    elif isinstance(detail, list):
        response.data = {"error": " ".join(str(m) for m in detail)}
    return response
