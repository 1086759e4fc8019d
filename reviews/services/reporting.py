"""Report Tandem's verdict back to the VCS as the commit status `tandem/review-policy`.

One function for both providers: the VcsClient behind `vcs_client_for` speaks GitHub or GitLab.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from reviews.instruments import VERDICT_REPORTS, WEBHOOK_TO_VERDICT
from reviews.integrations.records import StatusState
from reviews.integrations.vcs import VcsError, VcsRateLimited
from reviews.models import PolicyEvaluation, PullRequest
from reviews.services.policies import STATUS_STATES, evaluation_should_report
from reviews.services.sync import connection_token, vcs_client_for

logger = logging.getLogger(__name__)


def pull_request_page_url(pull_request: PullRequest) -> str:
    return f"{settings.PUBLIC_URL}{reverse('pull-request', args=[pull_request.pk])}"


def commit_status_report(*, pull_request: PullRequest, sha: str, state: StatusState, description: str) -> None:
    """Post the status on `sha`, linking to the pull request's page in Tandem. Raises VcsError on failure."""
    repository = pull_request.repository
    client = vcs_client_for(repository.connection)
    try:
        client.post_status(
            repository.full_path,
            sha,
            state=state,
            description=description,
            target_url=pull_request_page_url(pull_request),
            ref=pull_request.head_ref,
        )
    finally:
        client.close()


def evaluation_report(*, evaluation: PolicyEvaluation, received_at: Sequence[dt.datetime] = ()) -> str:
    """Report a stored verdict unless it is superseded or the VCS already shows the same. Returns what happened;
    a failure is recorded on the evaluation.

    `received_at` are the receipts of the webhook deliveries whose changes this verdict is the first to reflect:
    once the provider accepts it, each closes its feedback loop (`tandem_webhook_to_verdict_seconds`)."""
    result = _report(evaluation)
    provider = evaluation.pull_request.repository.connection.provider
    VERDICT_REPORTS.labels(provider, result).inc()
    if result == "reported":
        accepted_at = timezone.now()
        for moment in received_at:
            WEBHOOK_TO_VERDICT.labels(provider).observe(max(0.0, (accepted_at - moment).total_seconds()))
    return result


def _report(evaluation: PolicyEvaluation) -> str:
    pull_request = evaluation.pull_request
    if not evaluation_should_report(evaluation):
        return "superseded"
    if evaluation.reported_at is not None:
        return "unchanged"  # this very verdict is on the commit already
    if not connection_token(pull_request.repository.connection):
        return "no token"
    shown = (
        pull_request.evaluations.filter(head_sha=evaluation.head_sha, reported_at__isnull=False)
        .exclude(pk=evaluation.pk)
        .order_by("-reported_at")
        .first()
    )
    if shown is not None and (shown.outcome, shown.description) == (evaluation.outcome, evaluation.description):
        PolicyEvaluation.objects.filter(pk=evaluation.pk).update(reported_at=timezone.now())
        return "unchanged"
    try:
        commit_status_report(
            pull_request=pull_request,
            sha=evaluation.head_sha,
            state=STATUS_STATES[evaluation.outcome],  # type: ignore[arg-type]
            description=evaluation.description,
        )
    except VcsRateLimited as error:
        PolicyEvaluation.objects.filter(pk=evaluation.pk).update(report_error=str(error))
        return "rate limited"
    except VcsError as error:
        logger.warning("could not report %s: %s", evaluation, error)
        PolicyEvaluation.objects.filter(pk=evaluation.pk).update(report_error=str(error))
        return "failed"
    PolicyEvaluation.objects.filter(pk=evaluation.pk).update(reported_at=timezone.now(), report_error="")
    return "reported"
