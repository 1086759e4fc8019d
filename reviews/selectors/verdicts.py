"""What the verdict reconciler repairs: heads with no verdict, and current verdicts the provider never accepted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from django.db.models import Exists, F, OuterRef, Subquery
from django.utils import timezone

from reviews.models import PolicyEvaluation, PullRequest

# An evaluation younger than this may still be on its way to the provider: its own task reports it.
REPORT_GRACE = dt.timedelta(minutes=1)
# Older verdicts that never went through (a repository the token cannot write to) are not retried forever.
REPORT_HORIZON = dt.timedelta(days=3)


def pull_requests_without_verdict(*, limit: int = 5000) -> list[int]:
    """Open pull requests of active repositories whose current head has never been evaluated."""
    evaluated = PolicyEvaluation.objects.filter(pull_request=OuterRef("pk"), head_sha=OuterRef("head_sha"))
    return list(
        PullRequest.objects.filter(state=PullRequest.State.OPEN, repository__is_active=True)
        .exclude(head_sha="")
        .filter(~Exists(evaluated))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


# A pass settles a debt within seconds of its change; one older than this lost its hand-over (a broker restarted
# empty, a worker killed mid-pass).
EVALUATION_DEBT_GRACE = dt.timedelta(minutes=1)


def pull_requests_owing_evaluation(*, now: dt.datetime | None = None, limit: int = 5000) -> list[int]:
    """Pull requests whose evaluation debt is older than the grace: a change whose verdict pass never ran."""
    now = now or timezone.now()
    return list(
        PullRequest.objects.filter(evaluation_owed_since__lt=now - EVALUATION_DEBT_GRACE)
        .order_by("evaluation_owed_since", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def verdicts_not_accepted(
    *, connection_ids: Collection[int], now: dt.datetime | None = None, limit: int = 5000
) -> list[int]:
    """The newest evaluation of each open pull request's current head, not yet accepted by the provider, on a
    connection Tandem can post to, of a repository nothing is known to stand in the way of (`access_error`: a
    GitHub App installation suspended or not covering it)."""
    now = now or timezone.now()
    newest = PolicyEvaluation.objects.filter(pull_request=OuterRef("pull_request")).order_by("-evaluated_at", "-pk")
    return list(
        PolicyEvaluation.objects.filter(
            pull_request__state=PullRequest.State.OPEN,
            pull_request__repository__is_active=True,
            pull_request__repository__access_error="",
            pull_request__repository__connection_id__in=list(connection_ids),
            reported_at__isnull=True,
            evaluated_at__lt=now - REPORT_GRACE,
            evaluated_at__gte=now - REPORT_HORIZON,
        )
        .filter(head_sha=F("pull_request__head_sha"))
        .filter(pk=Subquery(newest.values("pk")[:1]))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
