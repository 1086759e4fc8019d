"""From a change to a posted verdict in one pass: bring the head's facts up to date, evaluate, report.

A change marks its pull request's evaluation debt in its own transaction (`enqueue.evaluations_owed_mark`); the
pass settles it. Many changes of one pull request waiting together coalesce: the first pass evaluates the newest
state and settles the debt, and the passes after it find nothing owed and stop before any API call.
"""

from __future__ import annotations

from reviews.models import PullRequest
from reviews.services.codeowners import codeowners_refresh
from reviews.services.enqueue import report_enqueue_now
from reviews.services.policies import evaluation_should_report, pull_request_evaluate
from reviews.services.reporting import evaluation_report
from reviews.services.sync import pull_request_facts_fetch

# A report that did not reach the provider is retried by its own task, with backoff; the reconciler posts again
# every current verdict the provider has not accepted.
_REPORT_RETRIED = {"failed", "rate limited"}


def pull_request_verdict_pass(*, pull_request_id: int) -> str:
    """Settle one pull request's evaluation debt and post the verdict when it changed. Returns what happened:
    the outcome, "settled" (nothing owed any more), "gone", or "nothing to evaluate"."""
    pull_request = PullRequest.objects.select_related("repository__connection").filter(pk=pull_request_id).first()
    if pull_request is None:
        return "gone"
    if pull_request.evaluation_owed_since is None:
        return "settled"
    if pull_request.state == PullRequest.State.OPEN:
        # A failed fetch is recorded on the row: the verdict waits for the facts, and `fetch_missing_facts` tries
        # again after a backoff.
        pull_request_facts_fetch(pull_request=pull_request)
        codeowners_refresh(repository=pull_request.repository, branch=pull_request.base_ref)
    evaluated = pull_request_evaluate(pull_request_id=pull_request_id, only_if_owed=True)
    if evaluated is None:
        return "settled" if pull_request.head_sha else "nothing to evaluate"
    evaluation = evaluated.evaluation
    if evaluation_should_report(evaluation) and evaluation_report(evaluation=evaluation) in _REPORT_RETRIED:
        report_enqueue_now(evaluation.pk)
    return evaluation.outcome
