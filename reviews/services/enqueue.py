"""Queue the review side's Celery tasks once the current transaction commits (never for work rolled back).

Services reach the tasks only here, lazily (the tasks module imports the services). A broker hiccup is logged,
never raised: the write it follows stands, and the verdict reconciler evaluates any head left without a verdict.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from reviews.models import PullRequest
from reviews.prepared import PreparedUpdate

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)


# A task queued and not yet started will read whatever changed before it starts, so another copy is redundant: a
# mark in the cache says one waits. Without it a backlog fed itself: every delivery of a pull request, and every
# reconciler run, queued one more evaluation (make faults saw 18 copies of one). The mark is lost with Redis, so
# after a restart the reconciler queues again at once; a message lost otherwise waits out the mark.
QUEUED_MARK_SECONDS = 90


# A sync's evaluations wait behind the sync on its queue, which may take many minutes in a backfill; their mark
# lasts as long (the sync task's hard time limit), so that the reconciler does not move them to the webhooks queue
# while they wait. A message lost without its mark (Redis kept, a message dropped) waits this long for the reconciler.
BACKGROUND_QUEUED_MARK_SECONDS = 1900


def pull_request_evaluations_enqueue(*, pull_request_ids: Iterable[int], in_background: bool = False) -> None:
    """Evaluate these pull requests afresh after the commit. Evaluation is idempotent and reads the newest head,
    and a verdict is posted only when its outcome or description changed.

    The debt is written first, in the caller's transaction (`evaluations_owed_mark`): a hand-over lost with the
    broker is found again by the verdict reconciler, and an evaluation that ran after this commit settles it, so
    the queued task has nothing left to do (several changes of one pull request coalesce into one evaluation).

    `in_background`: the evaluations go to the background worker's `sync` queue, never in front of the webhooks'
    passes (a sync, above all a backfill, queues one for every open pull request it stores). A webhook's own pass
    evaluates in its task whatever waits here, and any other evaluation still goes to the webhooks queue."""
    ids = sorted(set(pull_request_ids))
    evaluations_owed_mark(pull_request_ids=ids)
    enqueue_now = evaluation_in_background_enqueue_now if in_background else evaluation_enqueue_now
    for pull_request_id in ids:
        transaction.on_commit(partial(enqueue_now, pull_request_id))


_OWED = PreparedUpdate(
    PullRequest, "evaluation_owed_since", "figures_inputs_changed_at", keep=("evaluation_owed_since",)
)


def evaluations_owed_mark(*, pull_request_ids: Iterable[int]) -> int:
    """Record, with the change that causes it, that these pull requests wait for an evaluation. The earliest
    moment stays (the reconciler measures how long a debt is outstanding); the evaluation clears it. Their stored
    review figures, if merged, are owed too. Returns how many pull requests it stamped."""
    ids = sorted(set(pull_request_ids))
    if not ids:
        return 0
    now = timezone.now()
    # What changes a verdict's facts (reviews, comments, commits, overrides) may change a merged one's stored figures:
    # stamped in the same statement (reviews.services.figures).
    if len(ids) == 1:  # every webhook event's: one pull request
        return _OWED.run(ids[0], evaluation_owed_since=now, figures_inputs_changed_at=now)
    return PullRequest.objects.filter(pk__in=ids).update(
        evaluation_owed_since=Coalesce(F("evaluation_owed_since"), Value(now)), figures_inputs_changed_at=now
    )


def deliveries_handed_over_by_request() -> bool:
    """Whether the web process hands a new delivery to a worker itself. In production it does not: the row is the
    queue, and the dispatcher process (woken by PostgreSQL NOTIFY, `manage.py dispatch_deliveries`) hands it over,
    so acknowledging a webhook never waits for a broker. `WEBHOOK_HAND_OVER=request` restores the hand-over in the
    request; with tasks run inline (the embedded default) the request processes the delivery itself."""
    return settings.WEBHOOK_HAND_OVER == "request" or tasks_run_inline()


# Every spelling under which Celery's namespaced configuration looks `task_always_eager` up (`Settings._to_keys`).
_EAGER_KEYS = ("CELERY_TASK_ALWAYS_EAGER", "task_always_eager", "CELERY_ALWAYS_EAGER")


def tasks_run_inline() -> bool:
    """`app.conf.task_always_eager`, without Celery's namespaced lookup on every webhook (four failed dictionary
    lookups before Django's setting: 60 k instructions of an acknowledgement's 3.5 M). Celery reads a value set on
    `app.conf` at run time (tests do) before Django's settings, so any such value is read through Celery; otherwise
    the answer is Django's setting itself, as Celery would read it (override_settings included). Only while Django's
    settings are the mapping Celery reads right after those values: one put in between (`app.conf.add_defaults`) or
    another source (`config_from_object`) is read through Celery."""
    conf = _celery_app().conf
    changes = conf.changes
    maps = conf.maps
    if (
        type(changes) is dict
        and len(maps) > 1
        and getattr(maps[1], "obj", None) is settings
        and changes.keys().isdisjoint(_EAGER_KEYS)
    ):
        value = getattr(settings, "CELERY_TASK_ALWAYS_EAGER", None)
        if value is not None:
            return bool(value)
    return bool(conf.task_always_eager)


@functools.cache
def _celery_app() -> Celery:
    # Imported once, not per call (the tasks module imports the services, so not at import time either).
    from config.celery import app

    return app


def delivery_process_now(delivery_id: int) -> None:
    """Hand a stored, leased delivery to a worker (inline on the embedded default). When the hand-over is lost, the
    dispatcher makes it again once the lease runs out."""
    from reviews.tasks import process_webhook_delivery

    try:
        process_webhook_delivery.delay(delivery_id)
    except Exception:
        logger.exception("could not queue webhook delivery %s; the dispatcher will hand it over", delivery_id)


def repository_syncs_enqueue(*, repository_ids: Iterable[int]) -> None:
    """Sync these repositories after the commit (a GitHub App installation began to cover them again)."""
    for repository_id in sorted(set(repository_ids)):
        transaction.on_commit(partial(_sync_now, repository_id))


def _sync_now(repository_id: int) -> None:
    from reviews.tasks import sync_repository

    try:
        sync_repository.delay(repository_id)
    except Exception:
        # The beat's incremental sync takes the repository up anyway.
        logger.exception("could not queue a sync of repository %s", repository_id)


def evaluation_enqueue_now(pull_request_id: int) -> None:
    """Queue an evaluation on the webhooks queue unless one already waits there (one waiting in the background
    does not count: it may wait behind a backfill)."""
    from reviews.tasks import evaluate_pull_request

    _queue_once(evaluate_pull_request, _evaluation_key(pull_request_id), pull_request_id)


def evaluation_in_background_enqueue_now(pull_request_id: int) -> None:
    """Queue an evaluation on the background worker's queue unless one already waits, there or on the webhooks
    queue (which evaluates sooner, and reads whatever changed before it starts)."""
    from reviews.tasks import evaluate_pull_request_in_background

    try:
        fast_waits = cache.get(_evaluation_key(pull_request_id)) is not None
    except Exception:
        fast_waits = False  # no cache: queue anyway, a duplicate is only wasted work
    if fast_waits:
        return
    _queue_once(
        evaluate_pull_request_in_background,
        _background_evaluation_key(pull_request_id),
        pull_request_id,
        timeout=BACKGROUND_QUEUED_MARK_SECONDS,
    )


def evaluations_waiting_in_background(*, pull_request_ids: Iterable[int]) -> set[int]:
    """Those of these pull requests whose evaluation waits on the background queue (one look at the cache). None of
    them when the cache cannot say: the reconciler then queues them again, a duplicate being only wasted work."""
    ids = list(pull_request_ids)
    if not ids:
        return set()
    try:
        marked = cache.get_many([_background_evaluation_key(pull_request_id) for pull_request_id in ids])
    except Exception:
        logger.warning("could not read the background evaluations' marks")
        return set()
    return {pull_request_id for pull_request_id in ids if _background_evaluation_key(pull_request_id) in marked}


def reviewer_suggestion_enqueue(pull_request_id: int) -> None:
    """Work out reviewer suggestions for the pull request's head (and request them when the policy says so) after
    the commit, unless a task for it already waits."""
    from reviews.tasks import suggest_reviewers

    transaction.on_commit(partial(_queue_once, suggest_reviewers, _suggestion_key(pull_request_id), pull_request_id))


def reviewer_suggestion_queued_mark_clear(pull_request_id: int) -> None:
    _mark_clear(_suggestion_key(pull_request_id))


def _suggestion_key(pull_request_id: int) -> str:
    return f"reviewers-queued:{pull_request_id}"


def report_enqueue_now(evaluation_id: int, *, received_at: Iterable[dt.datetime] = ()) -> None:
    """Queue the report of a verdict unless one already waits. `received_at`: the receipts of the webhooks whose
    feedback loop its acceptance closes (carried in the message, ISO 8601)."""
    from reviews.tasks import report_evaluation

    receipts = [moment.isoformat() for moment in received_at]
    _queue_once(report_evaluation, _report_key(evaluation_id), evaluation_id, *([receipts] if receipts else []))


def evaluation_queued_mark_clear(pull_request_id: int, *, in_background: bool = False) -> None:
    """An evaluation starts: what changes from now on queues a new one."""
    key = _background_evaluation_key if in_background else _evaluation_key
    _mark_clear(key(pull_request_id))


def report_queued_mark_clear(evaluation_id: int) -> None:
    _mark_clear(_report_key(evaluation_id))


def _evaluation_key(pull_request_id: int) -> str:
    return f"evaluation-queued:{pull_request_id}"


def _background_evaluation_key(pull_request_id: int) -> str:
    return f"evaluation-queued-in-background:{pull_request_id}"


def _report_key(evaluation_id: int) -> str:
    return f"report-queued:{evaluation_id}"


def _queue_once(task: Any, key: str, object_id: int, *more: object, timeout: int = QUEUED_MARK_SECONDS) -> None:
    try:
        first = cache.add(key, 1, timeout=timeout)
    except Exception:
        first = True  # no cache: queue anyway, a duplicate is only wasted work
    if not first:
        return
    try:
        task.delay(object_id, *more)
    except Exception:
        _mark_clear(key)
        # Whatever asked is done; the verdict reconciler redoes what this hand-over would have done.
        logger.exception("could not run or queue %s(%s)", task.name, object_id)


def _mark_clear(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:
        logger.warning("could not clear %s", key)
