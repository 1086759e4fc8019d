"""Policy compliance of a team's merged changes, counted exactly, whatever the history's size.

Each change merged in the period is, at its merge, exactly one of:
- compliant: the verdict in force at the merge was approved;
- overridden: an override (not withdrawn) in force for the merged head let it through; its follow-up review is
  done, due or overdue;
- violation: merged while the policy was not satisfied (a recorded violation, or the verdict at merge);
- not evaluated: Tandem had no verdict before the merge (fail closed: not counted as compliant).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, CharField, Count, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from reviews.models import Override, PolicyEvaluation, PolicyViolation, PullRequest, PullRequestFigures, Team
from reviews.selectors.overrides import pull_requests_overridden

STATUSES = ("compliant", "overridden", "violation", "not_evaluated")
FOLLOWUPS = ("done", "due", "overdue")


def merged_changes(
    *,
    team: Team,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime | None = None,
    pull_requests: QuerySet[PullRequest] | None = None,
) -> QuerySet[Any]:  # PullRequest rows annotated with status, followup, reason and the verdict at merge
    """The team's pull requests (or those of `pull_requests`, a filtered set of them) merged in [since, until),
    each annotated with its status and reason at merge."""
    of_team = PullRequest.objects.filter(repository__team=team) if pull_requests is None else pull_requests
    merged = of_team.filter(state=PullRequest.State.MERGED, merged_at__gte=since, merged_at__lt=until)
    return with_status_at_merge(merged, now=now or timezone.now())


def with_status_at_merge(merged: QuerySet[PullRequest], *, now: dt.datetime) -> QuerySet[Any]:
    """These merged pull requests, each annotated with its status, follow-up, reason and the verdict at merge: the
    one definition (`merged_changes` and the stored figures, `reviews.services.figures`, read it)."""
    at_merge = PolicyEvaluation.objects.filter(
        pull_request=OuterRef("pk"), evaluated_at__lte=OuterRef("merged_at")
    ).order_by("-evaluated_at", "-pk")
    violation = PolicyViolation.objects.filter(pull_request=OuterRef("pk"))
    override = Override.objects.filter(pull_request=OuterRef("pk"), withdrawal__isnull=True).order_by("-created_at")
    # Whether an override covered the merged head is the verdict's own rule, decided in Python (one query).
    overridden = pull_requests_overridden(pull_request_ids=merged.values_list("pk", flat=True))
    queryset = merged.annotate(
        override_in_force=Case(When(pk__in=overridden, then=Value(True)), default=Value(False)),
        verdict_at_merge=Subquery(at_merge.values("outcome")[:1]),
        verdict_at_merge_id=Subquery(at_merge.values("pk")[:1]),
        violation_outcome=Subquery(violation.values("outcome")[:1]),
        override_id=Subquery(override.values("pk")[:1]),
        override_reason=Subquery(override.values("reason")[:1]),
        followup_due_at=Subquery(override.values("followup_due_at")[:1]),
        followup_done_at=Subquery(override.values("followup_done_at")[:1]),
    ).annotate(outcome_at_merge=Coalesce(F("violation_outcome"), F("verdict_at_merge")))
    return queryset.annotate(
        status=Case(
            When(Q(override_in_force=True) & Q(violation_outcome__isnull=True), then=Value("overridden")),
            When(outcome_at_merge=PolicyEvaluation.Outcome.APPROVED, then=Value("compliant")),
            When(outcome_at_merge__isnull=True, then=Value("not_evaluated")),
            default=Value("violation"),
            output_field=CharField(),
        ),
        followup=Case(
            When(Q(override_in_force=False) | Q(violation_outcome__isnull=False), then=Value("")),
            When(followup_done_at__isnull=False, then=Value("done")),
            When(followup_due_at__gte=now, then=Value("due")),
            default=Value("overdue"),
            output_field=CharField(),
        ),
    ).annotate(
        reason=Case(
            When(status="compliant", then=Value("")),
            When(status="overridden", then=Value("overridden")),
            When(status="not_evaluated", then=Value("no verdict before merge")),
            default=Concat(Value("merged while "), F("outcome_at_merge"), output_field=CharField()),
            output_field=CharField(),
        )
    )


@dataclass(frozen=True)
class StoredPeriod:
    """A period's current stored figures (`health.current_figures`: the merged pull requests of no bot, none owed)
    and the bots left out of them."""

    figures: QuerySet[PullRequestFigures]
    bots: set[int]
    # Read from the period's rollups with the figures: every status but overridden, as (repository, its path,
    # status, outcome at merge, "", count); the overridden ones (their follow-up is live) are counted from the rows.
    rolled_up: list[tuple[Any, ...]] | None = None


@dataclass(frozen=True)
class ComplianceSummary:
    merged: int = 0
    compliant: int = 0
    overridden: int = 0
    violations: int = 0
    not_evaluated: int = 0
    followups: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FOLLOWUPS, 0))
    by_repository: list[dict[str, object]] = field(default_factory=list)
    by_reason: list[dict[str, object]] = field(default_factory=list)

    @property
    def compliant_share(self) -> float | None:
        return self.compliant / self.merged if self.merged else None


@dataclass(frozen=True)
class StatusAtMerge:
    status: str
    outcome_at_merge: str  # the recorded violation's outcome, or else the verdict in force at merge ("": none)
    override_id: int | None  # the standing override, if any (its follow-up is read when counted)


def statuses_at_merge(*, pull_request_ids: list[int], now: dt.datetime) -> dict[int, StatusAtMerge]:
    """Each of these merged pull requests' status at merge (`with_status_at_merge`), for the stored figures: one
    query."""
    if not pull_request_ids:
        return {}
    rows = with_status_at_merge(PullRequest.objects.filter(pk__in=pull_request_ids), now=now).values_list(
        "pk", "status", "outcome_at_merge", "override_id"
    )
    return {pk: StatusAtMerge(status, outcome or "", override_id) for pk, status, outcome, override_id in rows}


def reason_of(status: str, outcome_at_merge: str | None) -> str:
    """The reason `with_status_at_merge` annotates, from the stored status and outcome at merge."""
    if status == "compliant":
        return ""
    if status == "overridden":
        return "overridden"
    if status == "not_evaluated":
        return "no verdict before merge"
    return f"merged while {outcome_at_merge or ''}"


def compliance_summary(
    *,
    team: Team,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime | None = None,
    pull_requests: QuerySet[PullRequest] | None = None,
    stored: StoredPeriod | None = None,
) -> ComplianceSummary:
    """Exact counts from two grouped queries, whatever the number of merged changes: the stored status at merge of
    each pull request with stored figures (`PullRequestFigures.compliance`, those owed computed first), and, for the
    bots' pull requests (in no review figure, but in compliance), the status computed from the verdicts.

    `stored`: the same period's current stored figures and bots when the caller already has them (the team page's
    review health read them a moment before): the bots and the owed probe are then not read twice."""
    from reviews.selectors.health import bot_ids, current_figures

    now = now or timezone.now()
    of_team = PullRequest.objects.filter(repository__team=team) if pull_requests is None else pull_requests
    merged = of_team.filter(state=PullRequest.State.MERGED, merged_at__gte=since, merged_at__lt=until)
    if stored is None:
        bots = bot_ids()
        figures = current_figures(merged=merged.exclude(author_id__in=bots), bots=bots)
    else:
        figures, bots = stored.figures, stored.bots
    followup = Case(
        When(~Q(compliance="overridden"), then=Value("")),
        When(override__followup_done_at__isnull=False, then=Value("done")),
        When(override__followup_due_at__gte=now, then=Value("due")),
        default=Value("overdue"),
        output_field=CharField(),
    )
    if stored is not None and stored.rolled_up is not None:
        figures = figures.filter(compliance="overridden")
    grouped = (
        figures.order_by()
        .values(
            "repository_id",
            full_path=F("repository__full_path"),
            status=F("compliance"),
            outcome=F("outcome_at_merge"),
            followup=followup,
        )
        .annotate(n=Count("pk"))
        .values_list("repository_id", "full_path", "status", "outcome", "followup", "n")
    )
    rows = list(grouped)
    if stored is not None and stored.rolled_up is not None:
        rows += stored.rolled_up
    if bots:
        computed = (
            with_status_at_merge(merged.filter(author_id__in=bots), now=now)
            .order_by()
            .values("repository_id", "repository__full_path", "status", "outcome_at_merge", "followup")
            .annotate(n=Count("pk"))
            .values_list("repository_id", "repository__full_path", "status", "outcome_at_merge", "followup", "n")
        )
        rows += list(computed)
    return _summary(rows)


def _summary(rows: list[tuple[Any, ...]]) -> ComplianceSummary:
    """The summary of (repository id, its path, status, outcome at merge, follow-up, count) rows."""
    by_status = dict.fromkeys(STATUSES, 0)
    followups = dict.fromkeys(FOLLOWUPS, 0)
    repositories: dict[str, dict[str, Any]] = {}
    reasons: dict[str, int] = {}
    for repository_id, full_path, status, outcome, followup, n in rows:
        by_status[status] += n
        if status == "overridden":
            followups[followup] += n
        entry = repositories.setdefault(
            full_path, {"repository": full_path, "repository_id": repository_id, "merged": 0, **by_zero()}
        )
        entry[status] += n
        entry["merged"] += n
        if status != "compliant":
            reason = reason_of(status, outcome)
            reasons[reason] = reasons.get(reason, 0) + n
    return ComplianceSummary(
        merged=sum(by_status.values()),
        compliant=by_status["compliant"],
        overridden=by_status["overridden"],
        violations=by_status["violation"],
        not_evaluated=by_status["not_evaluated"],
        followups=followups,
        by_repository=sorted(repositories.values(), key=lambda entry: str(entry["repository"])),
        by_reason=[{"reason": reason, "count": n} for reason, n in sorted(reasons.items(), key=_most_first)],
    )


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def by_zero() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def compliance_list(
    *,
    team: Team,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime | None = None,
    pull_requests: QuerySet[PullRequest] | None = None,
) -> QuerySet[PullRequest]:
    """The changes behind the figures, newest merge first, for a paginated page."""
    return (
        merged_changes(team=team, since=since, until=until, now=now, pull_requests=pull_requests)
        .select_related("repository", "author")
        .order_by("-merged_at", "-pk")
    )
