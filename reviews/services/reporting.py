"""Report Tandem's verdict back to the VCS as the commit status `tandem/review-policy`, or, for a GitHub App
connection with `report_as_check_run`, as the check run of that name whose summary is the verdict's trace.

One function for both providers and both forms: the VcsClient behind `vcs_client_for` speaks GitHub or GitLab,
with a token or as a GitHub App. Both forms are retried and reconciled alike (`reported_at`, `report_error`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Q, Subquery
from django.urls import reverse
from django.utils import timezone

from reviews.instruments import VERDICT_REPORTS, WEBHOOK_TO_VERDICT
from reviews.integrations.records import StatusState
from reviews.integrations.vcs import VcsError, VcsRateLimited
from reviews.models import PolicyEvaluation, PullRequest
from reviews.policy.markdown import trace_markdown
from reviews.prepared import PreparedRead, PreparedUpdate
from reviews.services.credentials import connection_app, connection_has_credentials, repository_access_problem
from reviews.services.policies import STATUS_STATES, evaluation_should_report
from reviews.services.sync import vcs_client_for

logger = logging.getLogger(__name__)


def pull_request_page_url(pull_request: PullRequest) -> str:
    return f"{settings.PUBLIC_URL}{reverse('pull-request', args=[pull_request.pk])}"


def commit_status_report(*, pull_request: PullRequest, sha: str, state: StatusState, description: str) -> None:
    """Post the status on `sha`, linking to the pull request's page in Tandem. Raises VcsError on failure."""
    repository = pull_request.repository
    client = vcs_client_for(repository)
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


def evaluation_report(
    *, evaluation: PolicyEvaluation, received_at: Sequence[dt.datetime] = (), checked_newest: bool = False
) -> str:
    """Report a stored verdict unless it is superseded or the VCS already shows the same. Returns what happened;
    a failure is recorded on the evaluation.

    `received_at` are the receipts of the webhook deliveries whose changes this verdict is the first to reflect:
    once the provider accepts it, each closes its feedback loop (`tandem_webhook_to_verdict_seconds`).
    `checked_newest`: the caller has just found it the newest verdict of the current head (no need to ask again)."""
    return _counted(_report(evaluation, checked_newest=checked_newest), evaluation, received_at)


def evaluation_report_if_newest(*, evaluation: PolicyEvaluation, received_at: Sequence[dt.datetime] = ()) -> str | None:
    """`evaluation_report` of a verdict when `evaluation_should_report` says so (the newest evaluation of an open pull
    request's current head), else None (nothing posted or counted). Whether it is the newest and what the head shows
    now are one read (was two statements in a row, the pass's after every new verdict)."""
    pull_request = evaluation.pull_request
    if pull_request.state != PullRequest.State.OPEN or evaluation.head_sha != pull_request.head_sha:
        return None
    rows = _NEWEST_OR_SHOWN.all(
        pull_request=pull_request.pk, shown_of=pull_request.pk, head_sha=evaluation.head_sha, besides=evaluation.pk
    )
    if not any(row.pk == evaluation.pk for row in rows):
        return None  # a newer verdict was stored since (or none is: fail closed, post nothing)
    shown = next((row for row in rows if row.pk != evaluation.pk), None)
    return _counted(_report(evaluation, checked_newest=True, shown_read=(shown,)), evaluation, received_at)


def _counted(result: str, evaluation: PolicyEvaluation, received_at: Sequence[dt.datetime]) -> str:
    provider = evaluation.pull_request.repository.connection.provider
    VERDICT_REPORTS.labels(provider, result).inc()
    if result == "reported":
        accepted_at = timezone.now()
        for moment in received_at:
            WEBHOOK_TO_VERDICT.labels(provider).observe(max(0.0, (accepted_at - moment).total_seconds()))
    return result


def evaluation_standing(evaluation: PolicyEvaluation) -> None:
    """Count a verdict that a pass found unchanged and already posted as `evaluation_report` would ("unchanged",
    for an open pull request's current head), without asking the database whether it is still the newest."""
    pull_request = evaluation.pull_request
    if pull_request.state == PullRequest.State.OPEN and evaluation.head_sha == pull_request.head_sha:
        VERDICT_REPORTS.labels(pull_request.repository.connection.provider, "unchanged").inc()


def check_run_report(*, evaluation: PolicyEvaluation, check_run_id: int | None = None) -> int:
    """Show the verdict as the check run `tandem/review-policy` on its head: its title the status's short text, its
    summary the trace in Markdown, its details link the pull request's page. Updates `check_run_id` when given (a
    pending one, still in progress). Returns the check run's id; raises VcsError on failure."""
    pull_request = evaluation.pull_request
    repository = pull_request.repository
    page = pull_request_page_url(pull_request)
    client = vcs_client_for(repository)
    try:
        return client.post_check_run(
            repository.full_path,
            evaluation.head_sha,
            state=STATUS_STATES[evaluation.outcome],  # type: ignore[arg-type]
            title=evaluation.description or evaluation.get_outcome_display(),
            summary=trace_markdown(evaluation.trace, page_url=page),
            target_url=page,
            external_id=str(evaluation.pk),
            check_run_id=check_run_id,
        )
    finally:
        client.close()


def reports_as_check_run(evaluation: PolicyEvaluation) -> bool:
    connection = evaluation.pull_request.repository.connection
    return connection.report_as_check_run and connection_app(connection) is not None


# The verdict the head shows now (the last one reported on it), besides the one about to be: compiled once.
_REPORTED = PreparedUpdate(PolicyEvaluation, "reported_at", "report_error")
_LAST_SHOWN = PreparedRead(
    lambda pull_request, head_sha, besides: (
        PolicyEvaluation.objects.filter(pull_request_id=pull_request, head_sha=head_sha, reported_at__isnull=False)
        .exclude(pk=besides)
        .order_by("-reported_at", "-pk")[:1]
    ),
    pull_request=int,
    head_sha=str,
    besides=int,
)
# The newest verdict of the pull request (by `evaluated_at`, as `evaluation_should_report` asks) and the one its head
# shows besides `besides` (as `_LAST_SHOWN`), in one statement: `besides` is among the rows only when it is the newest.
# The pull request's key is passed twice (`shown_of`): a prepared read binds each value once.
_NEWEST_OR_SHOWN = PreparedRead(
    lambda pull_request, shown_of, head_sha, besides: PolicyEvaluation.objects.filter(
        Q(
            pk=Subquery(
                PolicyEvaluation.objects.filter(pull_request_id=pull_request)
                .order_by("-evaluated_at", "-pk")
                .values("pk")[:1]
            )
        )
        | Q(
            pk=Subquery(
                PolicyEvaluation.objects.filter(pull_request_id=shown_of, head_sha=head_sha, reported_at__isnull=False)
                .exclude(pk=besides)
                .order_by("-reported_at", "-pk")
                .values("pk")[:1]
            )
        )
    ),
    pull_request=int,
    shown_of=int,
    head_sha=str,
    besides=int,
)


def _report(
    evaluation: PolicyEvaluation, *, checked_newest: bool, shown_read: tuple[PolicyEvaluation | None] | None = None
) -> str:
    """What `evaluation_report` does, less the metrics: a failure, or what stands in the way of posting at all, is
    recorded on the evaluation. `shown_read`: what the head shows now (`_LAST_SHOWN`), when the caller read it."""
    pull_request = evaluation.pull_request
    if not checked_newest and not evaluation_should_report(evaluation):
        return "superseded"
    if evaluation.reported_at is not None:
        return "unchanged"  # this very verdict is on the commit already
    if not connection_has_credentials(pull_request.repository.connection):
        return "no token"  # nothing to post with (the embedded default's demo): nothing to say either
    problem = repository_access_problem(pull_request.repository)
    if problem:
        # The App's installation suspended or gone, the repository not covered: said once, not retried.
        if evaluation.report_error != problem:
            PolicyEvaluation.objects.filter(pk=evaluation.pk).update(report_error=problem)
        return "no access"
    as_check_run = reports_as_check_run(evaluation)
    if shown_read is None:
        shown = _LAST_SHOWN.first(pull_request=pull_request.pk, head_sha=evaluation.head_sha, besides=evaluation.pk)
    else:
        (shown,) = shown_read
    if shown is not None and _shows_the_same(shown, evaluation, as_check_run=as_check_run):
        PolicyEvaluation.objects.filter(pk=evaluation.pk).update(reported_at=timezone.now())
        return "unchanged"
    try:
        if as_check_run:
            check_run_id = check_run_report(evaluation=evaluation, check_run_id=_check_run_to_update(shown))
            PolicyEvaluation.objects.filter(pk=evaluation.pk).update(check_run_id=check_run_id)
        else:
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
    _REPORTED.run(evaluation.pk, reported_at=timezone.now(), report_error="")
    return "reported"


def _shows_the_same(shown: PolicyEvaluation, evaluation: PolicyEvaluation, *, as_check_run: bool) -> bool:
    """A status shows the outcome and its short text; a check run shows the whole trace too."""
    same = (shown.outcome, shown.description) == (evaluation.outcome, evaluation.description)
    if as_check_run:
        return same and shown.check_run_id is not None and shown.trace == evaluation.trace
    return same


def _check_run_to_update(shown: PolicyEvaluation | None) -> int | None:
    """The head's check run still in progress (a pending verdict) is updated; a completed one is left as the record
    of what was decided then, and a new one shows the new verdict (GitHub shows the newest)."""
    if shown is None or shown.check_run_id is None or shown.outcome != PolicyEvaluation.Outcome.PENDING:
        return None
    return shown.check_run_id
