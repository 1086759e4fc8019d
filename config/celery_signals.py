"""Celery signal handlers: every task run is counted and timed (`tandem_task_*`), its log lines name it, and a
worker's log lines are JSON objects like the web process's when LOG_FORMAT=json.

Connected by `config.celery`, so they run wherever tasks do: in a worker's pool processes and inline (the embedded
default and the tests). The start of each run is kept by task id; a run whose end never comes (a killed worker)
leaves nothing behind but its entry, dropped with the process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import Token
from typing import Any

from celery import signals
from django.conf import settings
from django.db import close_old_connections

from config.logs import JsonFormatter
from reviews.instruments import TASK_DURATION, TASK_RUNS
from reviews.log_context import log_context_bind, log_context_reset
from reviews.services.pacing import (
    LATENCY_CRITICAL_QUEUES,
    latency_critical_run_ended,
    latency_critical_run_started,
)

# task id → the runs of that id under way in this process (an inline retry runs again under the same id).
_running: dict[str, list[tuple[float, Token[dict[str, object]]]]] = {}

# Celery's states, as counted.
_STATES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}


@signals.task_prerun.connect(weak=False)
def _task_started(task_id: str = "", task: Any = None, **_: Any) -> None:
    token = log_context_bind(task_id=task_id, task=getattr(task, "name", None))
    _running.setdefault(task_id, []).append((time.perf_counter(), token))
    _database_connections_kept_if_usable(task)
    if _from_latency_critical_queue(task):
        latency_critical_run_started(task_id)  # background work waits meanwhile (reviews.services.pacing)


@signals.task_postrun.connect(weak=False)
def _task_ended(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    runs = _running.get(task_id)
    if not runs:
        return
    started, token = runs.pop()
    if not runs:
        del _running[task_id]
    _database_connections_kept_if_usable(task)
    if _from_latency_critical_queue(task):
        latency_critical_run_ended(task_id)
    name = getattr(task, "name", "unknown")
    TASK_DURATION.labels(name).observe(time.perf_counter() - started)
    TASK_RUNS.labels(name, _STATES.get(state or "", "other")).inc()
    with contextlib.suppress(ValueError):  # bound in another context (a thread pool): nothing of it is left here
        log_context_reset(token)


def _database_connections_kept_if_usable(task: Any) -> None:
    """Around each task run on a worker, what Django does around each request: a connection is closed when it is
    older than CONN_MAX_AGE, broken, or left inside a transaction, and kept otherwise (checked before its next use,
    CONN_HEALTH_CHECKS). Celery's own fixup would close every connection before and after every task (settings:
    CELERY_DB_REUSE_MAX): a new PostgreSQL connection, and server process, for each task. An inline run is left
    alone: it runs inside its caller's request or transaction."""
    request = getattr(task, "request", None)
    if request is None or request.is_eager:
        return
    close_old_connections()


def _from_latency_critical_queue(task: Any) -> bool:
    """Whether a worker took this run from a latency-critical queue (never an inline run: it has no lanes)."""
    request = getattr(task, "request", None)
    if request is None or request.is_eager:
        return False
    return (request.delivery_info or {}).get("routing_key") in LATENCY_CRITICAL_QUEUES


@signals.after_setup_logger.connect(weak=False)
@signals.after_setup_task_logger.connect(weak=False)
def _json_lines(logger: logging.Logger | None = None, **_: Any) -> None:
    """Celery set up its own handlers on the worker's loggers; with LOG_FORMAT=json they write JSON lines."""
    if logger is None or settings.LOG_FORMAT != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
