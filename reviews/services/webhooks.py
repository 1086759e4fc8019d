"""Webhook deliveries: store as received, then process idempotently, then replay when asked.

Receiving writes only the WebhookDelivery row (so a 2xx never loses a webhook); processing happens in a
Celery task that claims the row, turns the payload into records through the provider adapter, and applies
them with the same upserts sync uses, in one transaction: a delivery either lands whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from reviews.integrations import github as github_adapter
from reviews.integrations import gitlab as gitlab_adapter
from reviews.integrations.records import PayloadError, WebhookEvent
from reviews.models import Connection, PullRequest, Repository, WebhookDelivery
from reviews.services.pairing import pairing_sessions_infer
from reviews.services.pull_requests import (
    approval_withdraw,
    comment_delete,
    comment_upsert,
    commit_status_upsert,
    commit_upsert,
    pull_request_commits_add,
    pull_request_stub,
    pull_request_upsert,
    repository_upsert,
    review_upsert,
)

logger = logging.getLogger(__name__)

# A delivery left "processing" longer than this belongs to a worker that died: it may be claimed again.
STALE_CLAIM = dt.timedelta(minutes=10)

PARSERS: dict[str, Callable[[str, dict], WebhookEvent]] = {
    "github": github_adapter.parse_webhook,
    "gitlab": gitlab_adapter.parse_webhook,
}

# Other apps process deliveries of their own providers (telemetry: pagerduty, opsgenie), registered from their
# AppConfig.ready: the function applies a claimed delivery and returns the pull requests it touched.
DeliveryProcessor = Callable[["WebhookDelivery"], list[int]]
delivery_processors: dict[str, DeliveryProcessor] = {}

# Telemetry registers here (in its AppConfig.ready) to receive deployments: reviews never imports telemetry.
DeploymentHandler = Callable[[Repository, WebhookEvent], None]
deployment_handlers: list[DeploymentHandler] = []


@dataclass(frozen=True)
class Received:
    delivery: WebhookDelivery
    created: bool


def webhook_delivery_receive(
    *,
    provider: str,
    delivery_id: str,
    event: str,
    action: str,
    headers: dict[str, str],
    body: str,
    connection: Connection | None,
) -> Received:
    """Store a delivery exactly as received, once per provider + delivery id."""
    existing = WebhookDelivery.objects.filter(provider=provider, delivery_id=delivery_id).first()
    if existing is not None:
        return Received(existing, created=False)
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                provider=provider,
                delivery_id=delivery_id,
                event=event,
                action=action[:100],
                headers=headers,
                body=body,
                connection=connection,
            )
    except IntegrityError:
        # The same delivery arrived twice at once; the other request stored it.
        return Received(WebhookDelivery.objects.get(provider=provider, delivery_id=delivery_id), created=False)
    return Received(delivery, created=True)


def webhook_delivery_claim(*, delivery_id: int) -> WebhookDelivery | None:
    """Take a pending delivery for processing. None when it is done, or another worker holds it."""
    now = timezone.now()
    claimable = Q(status=WebhookDelivery.Status.PENDING) | Q(
        status=WebhookDelivery.Status.PROCESSING, claimed_at__lt=now - STALE_CLAIM
    )
    claimed = WebhookDelivery.objects.filter(claimable, pk=delivery_id).update(
        status=WebhookDelivery.Status.PROCESSING, claimed_at=now
    )
    if not claimed:
        return None  # Nothing got updated: processed already, or another worker got there first.
    delivery = WebhookDelivery.objects.select_related("connection").get(pk=delivery_id)
    WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=delivery.attempts + 1)
    return delivery


def webhook_delivery_process(*, delivery: WebhookDelivery) -> list[int]:
    """Apply a claimed delivery. Returns the ids of the pull requests it touched.

    A payload the adapter rejects is marked failed for good (the same bytes would fail again); any other
    error propagates after marking the delivery failed, so the task can retry it.
    """
    processor = delivery_processors.get(delivery.provider)
    if processor is not None:
        return _process_with(processor, delivery)
    try:
        event = _parse(delivery)
    except PayloadError as error:
        _finish(delivery, WebhookDelivery.Status.FAILED, error=f"Invalid payload: {error}")
        return []
    if event.ignored:
        _finish(delivery, WebhookDelivery.Status.IGNORED, error=event.ignored)
        return []
    try:
        with transaction.atomic():
            connection = _connection_for(delivery)
            touched = webhook_event_apply(connection=connection, event=event)
            _finish(delivery, WebhookDelivery.Status.PROCESSED)
    except Exception as error:
        _finish(delivery, WebhookDelivery.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    return touched


def _process_with(processor: DeliveryProcessor, delivery: WebhookDelivery) -> list[int]:
    try:
        with transaction.atomic():
            touched = processor(delivery)
    except PayloadError as error:
        _finish(delivery, WebhookDelivery.Status.FAILED, error=f"Invalid payload: {error}")
        return []
    except Exception as error:
        _finish(delivery, WebhookDelivery.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    if delivery.status == WebhookDelivery.Status.PROCESSING:
        _finish(delivery, WebhookDelivery.Status.PROCESSED)
    return touched


def webhook_delivery_finish(*, delivery: WebhookDelivery, status: str, error: str = "") -> None:
    """For processors: record how a delivery ended (ignored, with the reason)."""
    _finish(delivery, status, error=error)


def webhook_deliveries_waiting(*, older_than: dt.timedelta = dt.timedelta(minutes=5), limit: int = 500) -> list[int]:
    """Deliveries that should have been processed by now: pending for a while, or held by a dead worker."""
    now = timezone.now()
    waiting = Q(status=WebhookDelivery.Status.PENDING, received_at__lt=now - older_than) | Q(
        status=WebhookDelivery.Status.PROCESSING, claimed_at__lt=now - STALE_CLAIM
    )
    return list(WebhookDelivery.objects.filter(waiting).order_by("received_at").values_list("pk", flat=True)[:limit])


def webhook_delivery_requeue(*, delivery: WebhookDelivery) -> bool:
    """Make a failed (or ignored) delivery pending again, for replay. False when it is not replayable now."""
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery.pk,
            status__in=[WebhookDelivery.Status.FAILED, WebhookDelivery.Status.IGNORED],
        ).update(status=WebhookDelivery.Status.PENDING, error="")
    )


def _parse(delivery: WebhookDelivery) -> WebhookEvent:
    try:
        payload = json.loads(delivery.body)
    except ValueError as error:
        raise PayloadError(f"body is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object")
    return PARSERS[delivery.provider](delivery.event, payload)


def _connection_for(delivery: WebhookDelivery) -> Connection:
    if delivery.connection is not None:
        return delivery.connection
    raise PayloadError("delivery has no connection")  # the receiving view always sets one


def _finish(delivery: WebhookDelivery, status: str, *, error: str = "") -> None:
    delivery.status = status
    delivery.error = error
    delivery.processed_at = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, error=error, processed_at=delivery.processed_at
    )


def webhook_event_apply(*, connection: Connection, event: WebhookEvent) -> list[int]:
    """Upsert everything one event says. Returns the ids of the pull requests it touched."""
    if event.repository is None:
        raise PayloadError(f"{event.event} event names no repository")
    repository = repository_upsert(connection=connection, record=event.repository)
    pull_request = _pull_request_for(repository, event)
    touched: set[int] = set()
    if pull_request is not None:
        touched.add(pull_request.pk)
        for review in event.reviews:
            review_upsert(pull_request=pull_request, record=review)
        for comment in event.comments:
            if event.action == "deleted":
                comment_delete(pull_request=pull_request, external_id=comment.external_id)
            else:
                comment_upsert(pull_request=pull_request, record=comment)
        if event.withdrawn_approvals:
            at = event.pull_request.updated_at if event.pull_request else timezone.now()
            for account in event.withdrawn_approvals:
                approval_withdraw(pull_request=pull_request, account=account, at=at)
    commits = [commit_upsert(repository=repository, record=commit) for commit in event.commits]
    if commits:
        touched |= _link_pushed_commits(repository, event, pull_request, commits)
        pairing_sessions_infer(repository=repository, commits=commits)
    for status in event.statuses:
        commit_status_upsert(repository=repository, record=status)
        touched |= set(
            PullRequest.objects.filter(
                repository=repository, head_sha=status.sha, state=PullRequest.State.OPEN
            ).values_list("pk", flat=True)
        )
    if event.deployments:
        for handler in deployment_handlers:
            handler(repository, event)
    return sorted(touched)


def _pull_request_for(repository: Repository, event: WebhookEvent) -> PullRequest | None:
    if event.pull_request is not None:
        pull_request, _ = pull_request_upsert(repository=repository, record=event.pull_request)
        return pull_request
    if event.pull_request_number is not None:
        return pull_request_stub(repository=repository, number=event.pull_request_number)
    return None


def _link_pushed_commits(
    repository: Repository, event: WebhookEvent, pull_request: PullRequest | None, commits: list
) -> set[int]:
    """A push to a branch adds its commits to the open pull requests from that branch."""
    targets = [pull_request] if pull_request is not None else []
    if event.ref:
        targets += list(
            PullRequest.objects.filter(repository=repository, head_ref=event.ref, state=PullRequest.State.OPEN)
        )
    for target in {t.pk: t for t in targets}.values():
        pull_request_commits_add(pull_request=target, commits=commits)
    return {t.pk for t in targets}
