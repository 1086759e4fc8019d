"""Structured logs: one JSON object per line when LOG_FORMAT=json, and a request id on every request.

Each line has the time (UTC, ISO 8601), level, logger and message, the exception when there is one, and whatever
`reviews.log_context` holds: request id, delivery id, task id, team, repository. The request id is the caller's
`X-Request-ID` when it is a plausible one (a proxy or load balancer sets it), a new one otherwise; the answer
carries it back, so a user's report and the server's lines can be matched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from reviews.log_context import log_context, log_context_bind, log_context_reset

REQUEST_ID_HEADER = "X-Request-ID"
# What an incoming id may look like: a UUID, a hex or base64 token, a load balancer's trace id. Anything else (too
# long, spaces, control characters: log injection) is replaced.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound context, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(log_context())
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def request_id_of(request: HttpRequest) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE: every line logged while a request is served names it, and the answer says which."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_of(request)
        token = log_context_bind(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            log_context_reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
