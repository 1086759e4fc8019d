"""Queue the review side's Celery tasks once the current transaction commits (never for work rolled back).

Services reach the tasks only here, lazily (the tasks module imports the services). A broker hiccup is logged,
never raised: the write it follows stands, and the verdict reconciler evaluates any head left without a verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


# A task queued and not yet started will read whatever changed before it starts, so another copy is redundant: a
# mark in the cache says one waits. Without it a backlog fed itself: every delivery of a pull request, and every
# reconciler run, queued one more evaluation (make faults saw 18 copies of one). The mark is lost with Redis, so
# after a restart the reconciler queues again at once; a message lost otherwise waits out the mark.
QUEUED_MARK_SECONDS = 90


def pull_request_evaluations_enqueue(*, pull_request_ids: Iterable[int]) -> None:
    """Evaluate these pull requests afresh after the commit. Evaluation is idempotent and reads the newest head,
    and a verdict is posted only when its outcome or description changed."""
    for pull_request_id in sorted(set(pull_request_ids)):
        transaction.on_commit(partial(evaluation_enqueue_now, pull_request_id))


def evaluation_enqueue_now(pull_request_id: int) -> None:
    """Queue an evaluation unless one already waits."""
    from reviews.tasks import evaluate_pull_request

    _queue_once(evaluate_pull_request, _evaluation_key(pull_request_id), pull_request_id)


def report_enqueue_now(evaluation_id: int) -> None:
    """Queue the report of a verdict unless one already waits."""
    from reviews.tasks import report_evaluation

    _queue_once(report_evaluation, _report_key(evaluation_id), evaluation_id)


def evaluation_queued_mark_clear(pull_request_id: int) -> None:
    """An evaluation starts: what changes from now on queues a new one."""
    _mark_clear(_evaluation_key(pull_request_id))


def report_queued_mark_clear(evaluation_id: int) -> None:
    _mark_clear(_report_key(evaluation_id))


def _evaluation_key(pull_request_id: int) -> str:
    return f"evaluation-queued:{pull_request_id}"


def _report_key(evaluation_id: int) -> str:
    return f"report-queued:{evaluation_id}"


def _queue_once(task: Any, key: str, object_id: int) -> None:
    try:
        first = cache.add(key, 1, timeout=QUEUED_MARK_SECONDS)
    except Exception:
        first = True  # no cache: queue anyway, a duplicate is only wasted work
    if not first:
        return
    try:
        task.delay(object_id)
    except Exception:
        _mark_clear(key)
        # Whatever asked is done; the verdict reconciler redoes what this hand-over would have done.
        logger.exception("could not run or queue %s(%s)", task.name, object_id)


def _mark_clear(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:
        logger.warning("could not clear %s", key)
