"""Celery tasks for the review side. Each takes ids, loads the row, calls one service; each is idempotent."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.core.cache import cache
from django.utils import timezone

from reviews.integrations.vcs import VcsRateLimited, VcsUnavailable
from reviews.log_context import log_context_bound
from reviews.models import (
    Connection,
    PolicyEvaluation,
    Repository,
    WebhookDelivery,
)
from reviews.selectors.affected import open_pull_requests_with_closing_risk_windows
from reviews.selectors.health import bot_ids
from reviews.selectors.verdicts import (
    pull_requests_owing_evaluation,
    pull_requests_without_verdict,
    verdicts_not_accepted,
)
from reviews.services.codeowners import codeowners_refresh_due
from reviews.services.credentials import NoAccess, connection_has_credentials
from reviews.services.enqueue import (
    evaluation_enqueue_now,
    evaluation_queued_mark_clear,
    evaluations_owed_mark,
    evaluations_waiting_in_background,
    pull_request_evaluations_enqueue,
    report_enqueue_now,
    report_queued_mark_clear,
    reviewer_suggestion_queued_mark_clear,
)
from reviews.services.figures import pull_request_figures_refresh
from reviews.services.pacing import background_lane_yield
from reviews.services.reporting import evaluation_report
from reviews.services.reviewers import reviewer_suggestion_pass
from reviews.services.sync import (
    pull_requests_facts_due,
    repositories_due_for_sync,
    repository_sync,
)
from reviews.services.verdicts import pull_request_verdict_pass
from reviews.services.webhooks import (
    PROCESS_SOFT_TIME_LIMIT,
    PROCESS_TIME_LIMIT,
    webhook_deliveries_claim,
    webhook_deliveries_dispatch,
    webhook_deliveries_release,
    webhook_delivery_process,
)

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, soft_time_limit=PROCESS_SOFT_TIME_LIMIT, time_limit=PROCESS_TIME_LIMIT)
def process_webhook_delivery(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    """Process one stored delivery and settle the verdicts it changed (one pass); returns how it ended."""
    return deliveries_process([delivery_id], token=self.request.id or "")[0]


@shared_task(bind=True, acks_late=True, soft_time_limit=PROCESS_SOFT_TIME_LIMIT, time_limit=PROCESS_TIME_LIMIT)
def process_webhook_deliveries(self, delivery_ids: list[int]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The dispatcher's hand-over: a batch of due deliveries, processed in order, then one verdict pass for each
    pull request they touched (ten events of one pull request waiting together cost one evaluation)."""
    return dict(Counter(deliveries_process(list(delivery_ids), token=self.request.id or "")))


def deliveries_process(delivery_ids: list[int], *, token: str) -> list[str]:
    """Claim the deliveries (one statement for the batch), apply each in order, then settle the evaluation debt of
    every pull request they touched, each once, in one pass: an event waits in a queue once. Retries are not
    Celery's: a failed attempt is scheduled on the row, and the dispatcher hands it over again when it is due, so
    nothing waits in a broker that can lose it. A verdict pass that fails leaves its debt marked, for a queued
    evaluation and, failing that, the reconciler."""
    claimed = {delivery.pk: delivery for delivery in webhook_deliveries_claim(delivery_ids=delivery_ids, token=token)}
    outcomes: list[str] = []
    receipts: dict[int, list[dt.datetime]] = {}  # pull request → when the deliveries that touched it were received
    for index, delivery_id in enumerate(delivery_ids):
        delivery = claimed.pop(delivery_id, None)
        if delivery is None:
            outcomes.append("skipped")  # done already, or being processed by another worker
            continue
        try:
            with log_context_bound(delivery_id=delivery_id, provider=delivery.provider):
                processed = webhook_delivery_process(delivery=delivery)
        except BaseException:
            # Stopped early (the time limit, the database away): the rest of the batch is due again at once, not
            # held until its claim goes stale.
            _release_quietly([claimed[pk] for pk in delivery_ids[index + 1 :] if pk in claimed], token=token)
            raise
        outcomes.append(processed.outcome)
        for pull_request_id in processed.touched:
            receipts.setdefault(pull_request_id, []).append(delivery.received_at)
    for pull_request_id in sorted(receipts):
        try:
            pull_request_verdict_pass(pull_request_id=pull_request_id, received_at=receipts[pull_request_id])
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            logger.exception("verdict pass for pull request %s failed; queued again", pull_request_id)
            evaluation_enqueue_now(pull_request_id)
    return outcomes


def _release_quietly(deliveries: list[WebhookDelivery], *, token: str) -> None:
    try:
        webhook_deliveries_release(deliveries=deliveries, token=token)
    except Exception:
        logger.exception("could not give back %s claimed deliveries; they are taken back when stale", len(deliveries))


SYNC_LOCK_SECONDS = 1900  # the sync task's hard time limit: a dead worker's lock expires with it

# Seconds before each retry of a sync the VCS could not serve (5xx, timeouts).
SYNC_RETRY_COUNTDOWNS = (60, 300, 900)


@shared_task(bind=True, acks_late=True, max_retries=8, soft_time_limit=1800, time_limit=1900)
def sync_repository(self, repository_id: int, full: bool = False, since: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Sync one repository; waits out rate limits with a countdown and resumes from the watermark."""
    repository = Repository.objects.select_related("connection").filter(pk=repository_id, is_active=True).first()
    if repository is None:
        return "skipped"
    lock = f"sync-repository:{repository_id}"
    if not cache.add(lock, self.request.id or "inline", timeout=SYNC_LOCK_SECONDS):
        return "already running"  # another worker is syncing it; the next beat comes soon enough
    try:
        run = repository_sync(
            repository=repository,
            full=full,
            since=dt.datetime.fromisoformat(since) if since else None,
            # Between two pull requests, outside their transactions: the webhooks' work goes first.
            on_pull_request=lambda _: background_lane_yield(work="sync"),
        )
    except NoAccess as error:
        return f"not synced: {error}"  # on the sync run too; retrying would not change it
    except VcsRateLimited as error:
        if self.request.is_eager:
            raise
        raise self.retry(exc=error, countdown=max(1, int(error.retry_after))) from error
    except VcsUnavailable as error:
        if self.request.is_eager or self.request.retries >= len(SYNC_RETRY_COUNTDOWNS):
            raise
        raise self.retry(exc=error, countdown=SYNC_RETRY_COUNTDOWNS[self.request.retries]) from error
    finally:
        cache.delete(lock)
    return f"synced {run.pull_requests_synced} pull requests in {run.api_calls} API calls"


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def sync_all_repositories(provider: str) -> int:
    """Beat: queue an incremental sync for every repository of one provider."""
    repository_ids = repositories_due_for_sync(provider=provider)
    for repository_id in repository_ids:
        sync_repository.delay(repository_id)
    return len(repository_ids)


REPORT_RETRY_COUNTDOWNS = (10, 60, 300, 900, 3600)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def evaluate_pull_request(pull_request_id: int) -> str:
    """Settle the pull request's evaluation debt: bring its facts up to date, evaluate, report a changed verdict.
    Nothing is done when another pass settled it since it was queued."""
    evaluation_queued_mark_clear(pull_request_id)  # what changes from now on queues a new one
    return pull_request_verdict_pass(pull_request_id=pull_request_id)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def evaluate_pull_request_in_background(pull_request_id: int) -> str:
    """The same as `evaluate_pull_request`, on the background worker's queue: what a sync stored (a backfill queues
    one for each open pull request) waits behind the sync, never in front of the webhooks' passes, and while the
    fast worker is busy (its mark is kept meanwhile: nothing queues a second copy of a waiting evaluation)."""
    background_lane_yield(work="evaluation")
    evaluation_queued_mark_clear(pull_request_id, in_background=True)
    return pull_request_verdict_pass(pull_request_id=pull_request_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def fetch_missing_facts() -> int:
    """Beat: evaluate again the open pull requests whose head's files, commits or reviews could not be fetched,
    once their backoff ran out; the evaluation fetches them first and posts the verdict when it changes."""
    pull_request_ids = pull_requests_facts_due()
    pull_request_evaluations_enqueue(pull_request_ids=pull_request_ids)
    return len(pull_request_ids)


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def refresh_codeowners() -> int:
    """Beat: read again (conditionally) the CODEOWNERS copies that failed or grew old, and evaluate again the open
    pull requests whose code owners changed."""
    pull_request_ids = codeowners_refresh_due()
    pull_request_evaluations_enqueue(pull_request_ids=pull_request_ids)
    return len(pull_request_ids)


# How far back each run of `reevaluate_closing_risk_windows` looks: a few of its periods, so a missed beat is
# caught up by the next one (an evaluation that changes nothing posts nothing).
RISK_WINDOW_LOOKBACK = dt.timedelta(hours=2)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def reevaluate_closing_risk_windows() -> int:
    """Beat: evaluate again the open pull requests of repositories where an incident has just left a window the
    policy reads it through (`touches_incident_within_days`, the risk's extra approvals)."""
    until = timezone.now()
    pull_request_ids = open_pull_requests_with_closing_risk_windows(since=until - RISK_WINDOW_LOOKBACK, until=until)
    pull_request_evaluations_enqueue(pull_request_ids=pull_request_ids)
    return len(pull_request_ids)


@shared_task(bind=True, acks_late=True, max_retries=len(REPORT_RETRY_COUNTDOWNS), soft_time_limit=60, time_limit=90)
def report_evaluation(self, evaluation_id: int, received_at: list[str] | None = None) -> str:  # type: ignore[no-untyped-def]
    """Post the verdict as the commit status (or check run) `tandem/review-policy`; superseded verdicts are not
    posted. `received_at`: the receipts (ISO 8601) of the webhooks whose feedback loop this post closes."""
    report_queued_mark_clear(evaluation_id)
    evaluation = PolicyEvaluation.objects.select_related("pull_request__repository__connection").get(pk=evaluation_id)
    receipts = [dt.datetime.fromisoformat(moment) for moment in received_at or []]
    outcome = evaluation_report(evaluation=evaluation, received_at=receipts)
    if outcome in {"failed", "rate limited"} and not self.request.is_eager and self.request.retries < self.max_retries:
        raise self.retry(countdown=REPORT_RETRY_COUNTDOWNS[self.request.retries])
    return outcome


# Seconds before each retry of a reviewer request the VCS could not serve (5xx, timeouts).
REVIEWER_REQUEST_RETRY_COUNTDOWNS = (10, 60, 300)


@shared_task(
    bind=True, acks_late=True, max_retries=len(REVIEWER_REQUEST_RETRY_COUNTDOWNS), soft_time_limit=60, time_limit=90
)
def suggest_reviewers(self, pull_request_id: int) -> str:  # type: ignore[no-untyped-def]
    """Suggest reviewers for the pull request's current head (once per head) and, when the policy asks, request them
    on the VCS (once per head: the stored suggestion says whom it requested)."""
    reviewer_suggestion_queued_mark_clear(pull_request_id)
    try:
        return reviewer_suggestion_pass(pull_request_id=pull_request_id)
    except VcsUnavailable as error:
        if self.request.is_eager or self.request.retries >= len(REVIEWER_REQUEST_RETRY_COUNTDOWNS):
            return f"not requested: {error}"
        raise self.retry(exc=error, countdown=REVIEWER_REQUEST_RETRY_COUNTDOWNS[self.request.retries]) from error


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def dispatch_due_deliveries() -> int:
    """Beat, every few seconds: hand every due delivery to a worker (new ones whose hand-over was lost, retries
    whose backoff ran out, those of a worker that died). Idempotent: processing claims each delivery once."""
    return webhook_deliveries_dispatch(send=process_webhook_deliveries.delay)


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def requeue_waiting_deliveries() -> int:
    """The dispatcher's former name, kept so that messages queued by an older release still run."""
    return webhook_deliveries_dispatch(send=process_webhook_deliveries.delay)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def reconcile_verdicts() -> str:
    """Beat: evaluate every pull request whose evaluation debt outlived its pass, and every open pull request
    whose head has no verdict (its evaluation was lost with a broker); post again every current verdict the
    provider has not accepted. An evaluation waiting on the background queue (a sync's) is left there: its hand-over
    was not lost, and on the webhooks queue a backfill's thousands would stand in front of the webhooks' passes."""
    owed = set(pull_requests_owing_evaluation()) | set(pull_requests_without_verdict())
    waiting = evaluations_waiting_in_background(pull_request_ids=owed)
    unevaluated = sorted(owed - waiting)
    evaluations_owed_mark(pull_request_ids=unevaluated)
    for pull_request_id in unevaluated:
        evaluation_enqueue_now(pull_request_id)
    postable = [connection.pk for connection in Connection.objects.all() if connection_has_credentials(connection)]
    unreported = verdicts_not_accepted(connection_ids=postable)
    for evaluation_id in unreported:
        report_enqueue_now(evaluation_id)
    in_background = f", {len(waiting)} waiting in the background" if waiting else ""
    return f"evaluated {len(unevaluated)}, reported {len(unreported)}{in_background}"


FIGURES_BATCHES_PER_RUN = 10


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def refresh_pull_request_figures() -> str:
    """Beat: compute the stored review figures that are owed, outdated or missing, a batch at a time (pages compute
    what they read anyway; this keeps them from having to). Idempotent; whatever is left waits for the next run."""
    bots = bot_ids()
    computed = 0
    for _ in range(FIGURES_BATCHES_PER_RUN):
        stored = pull_request_figures_refresh(bots=bots)
        computed += stored
        if not stored:
            break
    return f"computed {computed}"
