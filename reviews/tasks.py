"""Celery tasks for the review side. Each takes ids, loads the row, calls one service; each is idempotent."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from reviews.integrations.vcs import VcsRateLimited, VcsUnavailable
from reviews.models import Connection, PolicyEvaluation, PullRequest, Repository
from reviews.selectors.affected import open_pull_requests_with_closing_risk_windows
from reviews.selectors.verdicts import pull_requests_without_verdict, verdicts_not_accepted
from reviews.services.codeowners import codeowners_refresh, codeowners_refresh_due
from reviews.services.enqueue import (
    evaluation_enqueue_now,
    evaluation_queued_mark_clear,
    pull_request_evaluations_enqueue,
    report_enqueue_now,
    report_queued_mark_clear,
)
from reviews.services.policies import evaluation_should_report, pull_request_evaluate
from reviews.services.reporting import evaluation_report
from reviews.services.sync import (
    connection_token,
    pull_request_facts_fetch,
    pull_requests_facts_due,
    repositories_due_for_sync,
    repository_sync,
)
from reviews.services.webhooks import (
    PROCESS_SOFT_TIME_LIMIT,
    PROCESS_TIME_LIMIT,
    webhook_deliveries_dispatch,
    webhook_delivery_claim,
    webhook_delivery_process,
)

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, soft_time_limit=PROCESS_SOFT_TIME_LIMIT, time_limit=PROCESS_TIME_LIMIT)
def process_webhook_delivery(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    """Process one stored delivery. Retries are not Celery's: a failed attempt is scheduled on the row, and the
    dispatcher hands it over again when it is due, so nothing waits in a broker that can lose it."""
    delivery = webhook_delivery_claim(delivery_id=delivery_id, token=self.request.id or "")
    if delivery is None:
        return "skipped"  # done already, or being processed by another worker
    processed = webhook_delivery_process(delivery=delivery)
    for pull_request_id in processed.touched:
        evaluation_enqueue_now(pull_request_id)
    return processed.outcome


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
            repository=repository, full=full, since=dt.datetime.fromisoformat(since) if since else None
        )
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
    """Bring the pull request's details up to date when a push left them behind, evaluate, then report."""
    evaluation_queued_mark_clear(pull_request_id)  # what changes from now on queues a new one
    pull_request = PullRequest.objects.select_related("repository__connection").filter(pk=pull_request_id).first()
    if pull_request is None:
        return "gone"
    if pull_request.state == PullRequest.State.OPEN:
        # A failed fetch is recorded on the row: the verdict waits for the facts, and `fetch_missing_facts`
        # tries again after a backoff.
        pull_request_facts_fetch(pull_request=pull_request)
        codeowners_refresh(repository=pull_request.repository, branch=pull_request.base_ref)
    evaluated = pull_request_evaluate(pull_request_id=pull_request_id)
    if evaluated is None:
        return "nothing to evaluate"
    if evaluation_should_report(evaluated.evaluation):
        transaction.on_commit(lambda: report_enqueue_now(evaluated.evaluation.pk))
    return evaluated.evaluation.outcome


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
def report_evaluation(self, evaluation_id: int) -> str:  # type: ignore[no-untyped-def]
    """Post the verdict as the commit status `tandem/review-policy`; superseded verdicts are not posted."""
    report_queued_mark_clear(evaluation_id)
    evaluation = PolicyEvaluation.objects.select_related("pull_request__repository__connection").get(pk=evaluation_id)
    outcome = evaluation_report(evaluation=evaluation)
    if outcome in {"failed", "rate limited"} and not self.request.is_eager and self.request.retries < self.max_retries:
        raise self.retry(countdown=REPORT_RETRY_COUNTDOWNS[self.request.retries])
    return outcome


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def dispatch_due_deliveries() -> int:
    """Beat, every few seconds: hand every due delivery to a worker (new ones whose hand-over was lost, retries
    whose backoff ran out, those of a worker that died). Idempotent: processing claims each delivery once."""
    return webhook_deliveries_dispatch(send=process_webhook_delivery.delay)


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def requeue_waiting_deliveries() -> int:
    """The dispatcher's former name, kept so that messages queued by an older release still run."""
    return webhook_deliveries_dispatch(send=process_webhook_delivery.delay)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def reconcile_verdicts() -> str:
    """Beat: evaluate every open pull request whose head has no verdict (its evaluation was lost with a broker),
    and post again every current verdict the provider has not accepted."""
    unevaluated = pull_requests_without_verdict()
    for pull_request_id in unevaluated:
        evaluation_enqueue_now(pull_request_id)
    postable = [connection.pk for connection in Connection.objects.all() if connection_token(connection)]
    unreported = verdicts_not_accepted(connection_ids=postable)
    for evaluation_id in unreported:
        report_enqueue_now(evaluation_id)
    return f"evaluated {len(unevaluated)}, reported {len(unreported)}"
