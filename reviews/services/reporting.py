"""Report Tandem's verdict back to the VCS as the commit status `tandem/review-policy`, or, for a GitHub App
connection with `report_as_check_run`, as the check run of that name whose summary is the verdict's trace.

One function for both providers and both forms: the VcsClient behind `vcs_client_for` speaks GitHub or GitLab,
with a token or as a GitHub App. Both forms are retried and reconciled alike (`reported_at`, `report_error`).

Reports of one pull request run at once in several workers and are not serialised (no lock is held across a post):
the provider shows the post it accepted last, which may be an older verdict's. Each post is therefore followed by
one statement that marks it only if its verdict is still the newest; if not, the newest is posted again after it
(`_posted_last`), so what a head shows in the end is its newest verdict.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q, Subquery
from django.urls import reverse
from django.utils import timezone

from reviews.instruments import VERDICT_REPORTS, WEBHOOK_TO_VERDICT
from reviews.integrations.records import StatusState
from reviews.integrations.vcs import VcsError, VcsRateLimited
from reviews.models import PolicyEvaluation, PullRequest
from reviews.policy.markdown import trace_markdown
from reviews.prepared import PreparedRead, PreparedUpdate, bound_cursor
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
    previous = next((row for row in rows if row.pk != evaluation.pk), None)
    return _counted(_report(evaluation, checked_newest=True, shown_read=(previous,)), evaluation, received_at)


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


# The verdict before this one on its head (by `evaluated_at`, as "newest" is): what the head shows when it was
# reported, unknown when it was not (it may have been posted and its mark lost, or be on its way). Not the last one
# marked: marks are written after the posts, in whatever order their posters get there, so the latest mark can
# belong to a post the provider accepted before another (`_shown`). Compiled once.
_PREVIOUS = PreparedRead(
    lambda pull_request, head_sha, besides: (
        PolicyEvaluation.objects.filter(pull_request_id=pull_request, head_sha=head_sha)
        .exclude(pk=besides)
        .order_by("-evaluated_at", "-pk")[:1]
    ),
    pull_request=int,
    head_sha=str,
    besides=int,
)
# The newest verdict of the pull request (by `evaluated_at`, as `evaluation_should_report` asks) and the one before
# `besides` on its head (as `_PREVIOUS`), in one statement: `besides` is among the rows only when it is the newest.
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
                PolicyEvaluation.objects.filter(pull_request_id=shown_of, head_sha=head_sha)
                .exclude(pk=besides)
                .order_by("-evaluated_at", "-pk")
                .values("pk")[:1]
            )
        )
    ),
    pull_request=int,
    shown_of=int,
    head_sha=str,
    besides=int,
)
# The newest verdict of a pull request, whole: the one a report found superseded after its post must see posted last.
_NEWEST = PreparedRead(
    lambda pull_request: PolicyEvaluation.objects.filter(pull_request_id=pull_request).order_by("-evaluated_at", "-pk")[
        :1
    ],
    pull_request=int,
)
# Why a verdict's mark was taken back: an older verdict's status may have reached the provider after its own. Such a
# verdict is posted again, never taken as shown (`_report`): by its reporter's repair at once, else by the reconciler.
REPOST_OWED = "posted again: an older verdict's status may have reached the provider after this one's"
# Repairs a report makes in a row (each one for a verdict newer than the last); what is left is the reconciler's.
_REPAIRS = 3
_REPOST = PreparedUpdate(PolicyEvaluation, "reported_at", "report_error")


def _report(
    evaluation: PolicyEvaluation,
    *,
    checked_newest: bool,
    shown_read: tuple[PolicyEvaluation | None] | None = None,
    forced: bool = False,
    repairs: int = 0,
) -> str:
    """What `evaluation_report` does, less the metrics: a failure, or what stands in the way of posting at all, is
    recorded on the evaluation. `shown_read`: the verdict before it on its head (`_PREVIOUS`), when the caller read
    it. `forced`: post it whatever its mark and the head are known to show (a repair: see `_posted_last`). A verdict
    whose last report went wrong (`report_error`) is never taken as shown by what came before it either."""
    pull_request = evaluation.pull_request
    if not checked_newest and not evaluation_should_report(evaluation):
        if evaluation.report_error and evaluation.reported_at is None:
            # Its failed post may have been accepted all the same (a timeout), after the newest's.
            _repost_owed_quietly(evaluation)
        return "superseded"
    if evaluation.reported_at is not None and not forced:
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
        previous = _PREVIOUS.first(pull_request=pull_request.pk, head_sha=evaluation.head_sha, besides=evaluation.pk)
    else:
        (previous,) = shown_read
    shown = _shown(previous)
    trusted = not forced and not evaluation.report_error  # its last report went wrong: post, whatever came before
    if trusted and shown is not None and _shows_the_same(shown, evaluation, as_check_run=as_check_run):
        # Unless a repair took its mark back since it was read (`_newest_posted_again`): what it owes stays.
        PolicyEvaluation.objects.filter(pk=evaluation.pk, report_error="").update(reported_at=timezone.now())
        return "unchanged"
    try:
        if as_check_run:
            # A repair's check run is a new one: the provider shows the one created last.
            check_run_id = check_run_report(
                evaluation=evaluation, check_run_id=None if forced else _check_run_to_update(shown)
            )
            PolicyEvaluation.objects.filter(pk=evaluation.pk).update(check_run_id=check_run_id)
            evaluation.check_run_id = check_run_id
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
    _posted_last(evaluation, repairs=repairs)
    return "reported"


def _shown(previous: PolicyEvaluation | None) -> PolicyEvaluation | None:
    """What the head shows, as far as Tandem knows: the verdict before, once the provider accepted it (None: not
    known, so the verdict is posted rather than taken as shown already)."""
    return previous if previous is not None and previous.reported_at is not None else None


def _posted_last(evaluation: PolicyEvaluation, *, repairs: int) -> None:
    """The provider accepted `evaluation`'s post: mark it, and if a newer verdict was stored before the mark (its
    own post may have been accepted before this one), post the newest again, after this one.

    Why that suffices: the mark and the question "still the newest?" are one statement that starts after the
    provider answered. A verdict stored after that statement began posts after it (its pass reads this one as the
    verdict before, unmarked or marked, and posts unless the head shows the same); one stored before it is found
    here and posted again. So the post the provider accepts last is the newest verdict's (or shows the same).
    Should anything fail between the post and the mark, the newest's mark is taken back for the reconciler.
    The mark also asks that `report_error` be what it was before the post: a repair may have taken it back since
    (an older post accepted after this one), and only a post after that one may clear what it owes."""
    try:
        newest = _reported_if_newest(evaluation)
    except BaseException:
        _repost_owed_quietly(evaluation)
        raise
    if newest:
        return
    _newest_posted_again(evaluation, repairs=repairs)


def _newest_posted_again(evaluation: PolicyEvaluation, *, repairs: int) -> None:
    """A newer verdict of the same head was stored while `evaluation` was on its way: take back its mark (the
    reconciler posts it again should this process stop here) and post it now, whatever the head is said to show.
    `evaluation` itself, when it is still the newest but its mark was taken back while it was posted (a repair's),
    is posted again as it stands (what it owes stays on its row for the reconciler until a post after it)."""
    pull_request = evaluation.pull_request
    newest = _NEWEST.first(pull_request=pull_request.pk)
    if newest is None:
        return  # its row is gone (its pass rolled back): nothing newer was posted on its account
    if newest.pk != evaluation.pk:
        if not _REPOST.run(evaluation.pk, reported_at=timezone.now(), report_error=""):
            return  # its row is gone (its pass rolled back): nothing newer was posted on its account
        if newest.head_sha != evaluation.head_sha:
            _left_head_untrusted(evaluation)  # the head moved on: that commit gates nothing, unless it comes back
            return
        _REPOST.run(newest.pk, reported_at=None, report_error=REPOST_OWED)
        newest.reported_at, newest.report_error = None, REPOST_OWED
    newest.pull_request = pull_request
    if repairs >= _REPAIRS:
        return
    result = _report(newest, checked_newest=True, forced=True, repairs=repairs + 1)
    if result == "reported":
        _in_progress_run_completed(evaluation, newest)
    logger.info("%s was superseded or taken back while it was posted; the newest posted again: %s", evaluation, result)
    if result in {"failed", "rate limited"}:
        from reviews.services.enqueue import report_enqueue_now

        report_enqueue_now(newest.pk)


def _in_progress_run_completed(evaluation: PolicyEvaluation, newest: PolicyEvaluation) -> None:
    """A pending verdict's check run is in progress; once a newer verdict's run was created after it (a repair's), it
    is completed with the newest verdict, lest the check suite never complete. Best effort: the new run gates."""
    run = evaluation.check_run_id
    if evaluation.outcome != PolicyEvaluation.Outcome.PENDING or run is None or run == newest.check_run_id:
        return
    if newest.pk == evaluation.pk:
        return  # its own mark was taken back: its runs show the same verdict, still pending
    if not reports_as_check_run(evaluation):
        return
    try:
        check_run_report(evaluation=newest, check_run_id=run)
    except VcsError as error:
        logger.warning("could not complete the check run %s of %s: %s", run, evaluation, error)


def _repost_owed_quietly(evaluation: PolicyEvaluation) -> None:
    """After a post whose mark failed, or a failed post found superseded: the newest verdict of its head, if another,
    is to be posted again (it may have been accepted before this one). Best effort: the database may be what
    failed."""
    try:
        newest = _NEWEST.first(pull_request=evaluation.pull_request_id)
        if newest is not None and newest.pk != evaluation.pk and newest.head_sha == evaluation.head_sha:
            _REPOST.run(newest.pk, reported_at=None, report_error=REPOST_OWED)
        elif newest is not None and newest.pk != evaluation.pk:
            _left_head_untrusted(evaluation)
    except Exception:
        logger.exception("could not take back the mark of the newest verdict after %s was posted", evaluation)


def _left_head_untrusted(evaluation: PolicyEvaluation) -> None:
    """`evaluation`'s post may have reached a commit the head has left after a newer verdict's on it: take back the
    mark of that newer one, so that should the head come back (a force-push back), its next verdict is posted rather
    than taken as shown already (`_shown`). Nothing is posted now: that commit gates nothing while it is not the head.
    """
    newer = _PREVIOUS.first(
        pull_request=evaluation.pull_request_id, head_sha=evaluation.head_sha, besides=evaluation.pk
    )
    if newer is not None and (newer.evaluated_at, newer.pk) > (evaluation.evaluated_at, evaluation.pk):
        _REPOST.run(newer.pk, reported_at=None, report_error=REPOST_OWED)


# The mark of a verdict the provider accepted, on the condition that it is still its pull request's newest: one
# statement, the question asked only after the post was accepted (`_posted_last`).
_MARK_IF_NEWEST: dict[str, str] = {}
_REPORTED_AT = PolicyEvaluation._meta.get_field("reported_at")


def _reported_if_newest(evaluation: PolicyEvaluation) -> bool:
    """Mark the verdict reported if it is the newest of its pull request and its `report_error` is still the one read
    before its post (no repair took its mark back since); whether it was."""
    alias = router.db_for_write(PolicyEvaluation)
    connection = connections[alias]
    sql = _MARK_IF_NEWEST.get(alias) or _MARK_IF_NEWEST.setdefault(alias, _mark_if_newest_sql(connection))
    params = [
        _REPORTED_AT.get_db_prep_save(timezone.now(), connection),
        "",
        evaluation.pk,
        evaluation.report_error,
        evaluation.pull_request_id,
    ]
    with transaction.mark_for_rollback_on_error(using=alias), bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount) == 1


def _mark_if_newest_sql(connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name
    table = quote(PolicyEvaluation._meta.db_table)
    column = {field.name: quote(str(field.column)) for field in PolicyEvaluation._meta.concrete_fields}
    pk, reported_at, report_error = column["id"], column["reported_at"], column["report_error"]
    pull_request, evaluated_at = column["pull_request"], column["evaluated_at"]
    # Quoted names of the model's own columns; every value is a parameter.
    return (
        f"UPDATE {table} SET {reported_at} = %s, {report_error} = %s "  # noqa: S608
        f"WHERE {table}.{pk} = %s AND {table}.{report_error} = %s "
        f"AND {table}.{pk} = (SELECT newest.{pk} FROM {table} newest WHERE newest.{pull_request} = %s "
        f"ORDER BY newest.{evaluated_at} DESC, newest.{pk} DESC LIMIT 1)"
    )


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
