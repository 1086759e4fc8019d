"""Celery tasks for the review side. Each takes ids, loads the row, calls one service; each is idempotent."""

from __future__ import annotations

import logging

from celery import shared_task

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
