"""From a change to a posted verdict in one pass: bring the head's facts up to date, evaluate, report.

A change marks its pull request's evaluation debt in its own transaction (`enqueue.evaluations_owed_mark`); the
pass settles it. Many changes of one pull request waiting together coalesce: the first pass evaluates the newest
state and settles the debt, and the passes after it find nothing owed and stop before any API call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db.models import Exists, OuterRef

from reviews.log_context import log_context_bound
from reviews.models import PullRequest, ReviewerSuggestion
from reviews.prepared import PreparedRead
from reviews.selectors.policy import POLICY_RELATED, effective_policy
from reviews.services.codeowners import codeowners_refresh
from reviews.services.enqueue import report_enqueue_now, reviewer_suggestion_enqueue
from reviews.services.policies import pull_request_evaluate
from reviews.services.reporting import evaluation_report_if_newest, evaluation_standing
from reviews.services.sync import fingerprints_fetch, pull_request_facts_fetch

# A report that did not reach the provider is retried by its own task, with backoff; the reconciler posts again
# every current verdict the provider has not accepted.
_REPORT_RETRIED = {"failed", "rate limited"}


# The pull request with what a pass reads of its repository, and whether its head has reviewer suggestions (one
# query fewer per pass than asking after the evaluation): compiled once per process (`reviews.prepared`).
_PASS_READ = PreparedRead(
    lambda pk: (
        PullRequest.objects.select_related("repository__connection", "repository__team", *POLICY_RELATED)
        .annotate(
            head_suggested=Exists(
                ReviewerSuggestion.objects.filter(pull_request_id=OuterRef("pk"), head_sha=OuterRef("head_sha"))
            )
        )
        .filter(pk=pk)
    ),
    pk=int,
)
_SUGGESTED = PreparedRead(
    lambda pull_request, head_sha: ReviewerSuggestion.objects.filter(
        pull_request_id=pull_request, head_sha=head_sha
    ).values_list("pk", flat=True)[:1],
    pull_request=int,
    head_sha=str,
)


def pull_request_verdict_pass(*, pull_request_id: int, received_at: Sequence[dt.datetime] = ()) -> str:
    """Settle one pull request's evaluation debt and post the verdict when it changed. Returns what happened:
    the outcome, "settled" (nothing owed any more), "gone", or "nothing to evaluate".

    `received_at`: when the webhooks behind this pass were received; the report that the provider accepts (here, or
    in its retried task) closes their feedback loop."""
    pull_request = _PASS_READ.first(pk=pull_request_id)
    if pull_request is None:
        return "gone"
    repository = pull_request.repository
    team = repository.team.slug if repository.team is not None else None
    with log_context_bound(pull_request_id=pull_request.pk, repository=repository.full_path, team=team):
        return _settle(pull_request, received_at)


def _suggest_reviewers_once(pull_request: PullRequest, known: tuple[str, bool] | None = None) -> None:
    """A new head of an open pull request (new files) gets reviewer suggestions, in a task of their own.

    `known`: (head, whether it had suggestions) as the pass's first read found it (`_PASS_READ`); asked again only
    when a push moved the head since. Suggestions stored in between cost only a task that finds them (it works out a
    head once)."""
    if pull_request.state != PullRequest.State.OPEN or not pull_request.head_sha:
        return
    if known is not None and known[0] == pull_request.head_sha:
        suggested = known[1]
    else:
        suggested = bool(_SUGGESTED.all(pull_request=pull_request.pk, head_sha=pull_request.head_sha))
    if not suggested:
        reviewer_suggestion_enqueue(pull_request.pk)


def _suggestions_known(pull_request: PullRequest) -> tuple[str, bool] | None:
    """(head, whether it has reviewer suggestions) when `_PASS_READ` read the row, else None."""
    suggested = getattr(pull_request, "head_suggested", None)
    return None if suggested is None else (pull_request.head_sha, bool(suggested))


def _settle(pull_request: PullRequest, received_at: Sequence[dt.datetime]) -> str:
    pull_request_id = pull_request.pk
    if pull_request.evaluation_owed_since is None:
        return "settled"
    suggestions_known = _suggestions_known(pull_request)
    # Read once for the pass: a policy saved after this moment queues its open pull requests' evaluations again.
    policy = effective_policy(repository=pull_request.repository)
    if pull_request.state == PullRequest.State.OPEN:
        # A failed fetch is recorded on the row: the verdict waits for the facts, and `fetch_missing_facts` tries
        # again after a backoff.
        pull_request_facts_fetch(pull_request=pull_request)
        # An approval of an older head is decided by fingerprints a backfill left owed: fetched only now, when a
        # push made them matter (a failure waits like the facts do).
        fingerprints_fetch(pull_request=pull_request)
        codeowners_refresh(repository=pull_request.repository, branch=pull_request.base_ref, policy=policy[1])
    evaluated = pull_request_evaluate(
        pull_request_id=pull_request_id, only_if_owed=True, policy=policy, repository=pull_request.repository
    )
    if evaluated is None:
        return "settled" if pull_request.head_sha else "nothing to evaluate"
    evaluation = evaluated.evaluation
    _suggest_reviewers_once(evaluation.pull_request, suggestions_known)
    if not evaluated.changed and evaluation.reported_at is not None:
        # The verdict stands and is on the commit already (it was the newest under the pull request's lock a moment
        # ago): nothing to post, and no need to ask again whether it is the newest.
        evaluation_standing(evaluation)
        return evaluation.outcome
    if evaluation_report_if_newest(evaluation=evaluation, received_at=received_at) in _REPORT_RETRIED:
        report_enqueue_now(evaluation.pk, received_at=received_at)
    return evaluation.outcome
