"""What a log line is about: the request, delivery, task, team and repository being worked on, where known.

One context variable holds them, so they follow the work (a request, a Celery task, a delivery inside a batch) and
never leak into the next. The request middleware, the Celery task signals and the delivery processing bind them;
the JSON log formatter (`config.logs.JsonFormatter`, LOG_FORMAT=json) writes them on every line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

# Only these names are bound: a log line's fields are known in advance (dashboards and queries rely on them).
FIELDS = ("request_id", "delivery_id", "provider", "task_id", "task", "team", "repository", "pull_request_id")

_bound: ContextVar[dict[str, object]] = ContextVar("tandem_log_context", default={})  # noqa: B039 - never mutated


def log_context() -> dict[str, object]:
    """The fields bound now (a copy)."""
    return dict(_bound.get())


def log_context_bind(**fields: object) -> Token[dict[str, object]]:
    """Add fields to the context until `log_context_reset(token)`; a None value leaves a field out."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields: {sorted(unknown)}")
    bound = {**_bound.get(), **{name: value for name, value in fields.items() if value is not None}}
    return _bound.set(bound)


def log_context_reset(token: Token[dict[str, object]]) -> None:
    _bound.reset(token)


@contextmanager
def log_context_bound(**fields: object) -> Iterator[None]:
    token = log_context_bind(**fields)
    try:
        yield
    finally:
        log_context_reset(token)
