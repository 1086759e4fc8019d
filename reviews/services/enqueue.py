"""Queue the review side's Celery tasks once the current transaction commits (never for work rolled back).

Services reach the tasks only here, lazily (the tasks module imports the services). A broker hiccup is logged,
never raised: the write it follows stands, and the verdict reconciler evaluates any head left without a verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def pull_request_evaluations_enqueue(*, pull_request_ids: Iterable[int]) -> None:
    """Evaluate these pull requests afresh after the commit. Evaluation is idempotent and reads the newest head,
    and a verdict is posted only when its outcome or description changed."""
    for pull_request_id in sorted(set(pull_request_ids)):
        transaction.on_commit(partial(_send, pull_request_id))


def _send(pull_request_id: int) -> None:
    from reviews.tasks import evaluate_pull_request

    try:
        evaluate_pull_request.delay(pull_request_id)
    except Exception:
        logger.exception("could not run or queue the evaluation of pull request %s", pull_request_id)
