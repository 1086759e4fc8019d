"""Celery tasks for the review side. Each takes ids, loads the row, calls one service; each is idempotent."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.core.cache import cache

from reviews.integrations.vcs import VcsRateLimited, VcsUnavailable
from reviews.models import Repository
from reviews.services.sync import repositories_due_for_sync, repository_sync
from reviews.services.webhooks import webhook_delivery_claim, webhook_delivery_process, webhook_delivery_requeue

logger = logging.getLogger(__name__)

# Seconds before each retry of a delivery that failed for a reason other than its payload.
RETRY_COUNTDOWNS = (30, 120, 600, 1800, 3600)


@shared_task(bind=True, acks_late=True, max_retries=len(RETRY_COUNTDOWNS), soft_time_limit=120, time_limit=150)
def process_webhook_delivery(self, delivery_id: int) -> str:  # type: ignore[no-untyped-def]
    delivery = webhook_delivery_claim(delivery_id=delivery_id)
    if delivery is None:
        return "skipped"  # done already, or being processed by another worker
    try:
        webhook_delivery_process(delivery=delivery)
    except Exception as error:
        logger.exception("webhook delivery %s failed (attempt %s)", delivery_id, delivery.attempts + 1)
        if self.request.is_eager or self.request.retries >= self.max_retries:
            return "failed"  # recorded on the row; an admin action replays it
        webhook_delivery_requeue(delivery=delivery)
        raise self.retry(exc=error, countdown=RETRY_COUNTDOWNS[self.request.retries]) from error
    return "processed"


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
