"""The pull requests behind each figure of the team page, with the per-pull-request values the figure aggregated.

No second implementation: the rows come from the same computations as the figures (`review_health`'s flows, read
from the stored per-pull-request figures the team page aggregates, and review facts; `merged_changes`,
`waiting_for_review`, `stale_pull_requests`, `agreement_kept`), so the rows of a count add up to it and the median
of a duration column is the figure's median. A bounded number of queries
whatever the number of pull requests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from reviews.models import Person, PullRequest, PullRequestFigures, Review
from reviews.selectors.compliance import STATUSES, merged_changes, reason_of
from reviews.selectors.health import (
    PullRequestFlow,
    ReviewHealth,
    StoredFlows,
    awaiting_reviewers,
    bot_ids,
    counts_for_depth,
    measured_hours,
    review_health,
    size_bucket,
    stale_pull_requests,
    waiting_for_review,
)
from reviews.selectors.scope import QueryParams, Scope, ScopeInvalid
from reviews.selectors.teams import agreement_kept

Row = dict[str, Any]

FLOW_FIGURES = {
    "time_to_first_review": "Time to first review",
    "pickup_time": "Pickup time",
    "review_time": "Review time",
    "time_to_approve": "Time to approve",
    "merge_time": "Merge time",
    "cycle_time": "Cycle time",
}
BASE_COLUMNS = (
    ("pull_request", "Pull request"),
    ("title", "Title"),
    ("repository", "Repository"),
    ("author", "Author"),
)
MERGED_COLUMNS = (("merged_at", "Merged"), ("changed_lines", "Changed lines"))


@dataclass
class _Context:
    scope: Scope
    now: dt.datetime
    reviewer: int | None
    reason: str
    followup: str
    _health: ReviewHealth | None = None

    _stored: list[tuple[PullRequestFlow, PullRequestFigures]] | None = None

    @property
    def health(self) -> ReviewHealth:
        if self._health is None:
            self._health = review_health(
                pull_requests=self.scope.pull_requests(), since=self.scope.since, until=self.scope.until
            )
        return self._health

    @property
    def flows(self) -> Sequence[PullRequestFlow]:
        """The period's flows as the figures aggregated them: their stored rows when the figures were read from
        them (`StoredFlows.stored`), which holds every value a row shows but the review facts (`_rubber_stamps` reads
        `health.flows`, which computes them); else the flows the figures were computed from."""
        stored = self.stored
        return self.health.flows if stored is None else [flow for flow, _ in stored]

    @property
    def stored(self) -> list[tuple[PullRequestFlow, PullRequestFigures]] | None:
        flows = self.health.flows
        if self._stored is None and isinstance(flows, StoredFlows):
            self._stored = flows.stored()
        return self._stored

    def statuses_at_merge(self) -> dict[int, dict[str, str]]:
        """Pull request → its status and reason at merge (`with_status_at_merge`): as stored with its figures (what
        the team page's compliance counts), else computed."""
        stored = self.stored
        if stored is not None:
            return {
                row.pull_request_id: {
                    "status": row.compliance,
                    "reason": reason_of(row.compliance, row.outcome_at_merge),
                }
                for _, row in stored
            }
        return {row["pk"]: row for row in self.merged_changes().values("pk", "status", "reason")}

    def merged_changes(self) -> QuerySet[Any]:
        """The period's merged pull requests with their status at merge, computed (`merged_changes`)."""
        scope = self.scope
        return merged_changes(
            team=scope.team, since=scope.since, until=scope.until, now=self.now, pull_requests=scope.pull_requests()
        )


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    columns: tuple[tuple[str, str], ...]
    rows: Callable[[_Context], list[Row]]
    default_sort: str = "-merged_at"
    per_reviewer: bool = False


def _flow_row(flow: PullRequestFlow, **values: Any) -> Row:
    return {
        "pull_request_id": flow.pull_request_id,
        "merged_at": flow.merged_at,
        "changed_lines": flow.changed_lines,
        **values,
    }


def _hours(duration: dt.timedelta | None) -> float | None:
    hours = measured_hours(duration)
    return None if hours is None else round(hours, 2)


def _flow_figure(figure: str) -> Callable[[_Context], list[Row]]:
    def rows(context: _Context) -> list[Row]:
        found = []
        for flow in context.flows:
            if (hours := measured_hours(getattr(flow, figure))) is not None:
                found.append(_flow_row(flow, **{figure: round(hours, 2)}))
        return found

    return rows


def _merged(context: _Context) -> list[Row]:
    verdicts = context.statuses_at_merge()
    return [
        _flow_row(
            flow,
            size=size_bucket(flow.changed_lines),
            coverage=flow.coverage,
            approvals=flow.approvals,
            pickup_time=_hours(flow.pickup_time),
            cycle_time=_hours(flow.cycle_time),
            status=verdicts.get(flow.pull_request_id, {}).get("status"),
            reason=verdicts.get(flow.pull_request_id, {}).get("reason"),
        )
        for flow in context.flows
    ]


def _coverage(kind: str) -> Callable[[_Context], list[Row]]:
    def rows(context: _Context) -> list[Row]:
        return [
            _flow_row(flow, approvals=flow.approvals, paired=flow.paired)
            for flow in context.flows
            if flow.coverage == kind
        ]

    return rows


def _approvals(context: _Context) -> list[Row]:
    return [_flow_row(flow, approvals=flow.approvals) for flow in context.flows if flow.approvals]


def _rubber_stamps(context: _Context) -> list[Row]:
    """One row per rubber stamp: who approved, how soon after the last push, on how many lines."""
    return [
        _flow_row(
            flow,
            reviewer_id=stamp.reviewer_id,
            approved_at=stamp.submitted_at,
            minutes_after_last_push=round(stamp.after_last_push.total_seconds() / 60, 1),
        )
        for flow in context.health.flows  # the stamps' facts: the flows computed, not the stored rows
        for stamp in flow.facts.rubber_stamps
        if context.reviewer is None or stamp.reviewer_id == context.reviewer
    ]


def _rework(context: _Context) -> list[Row]:
    return [_flow_row(flow, rework_cycles=flow.rework_cycles) for flow in context.flows]


def _depth(context: _Context) -> list[Row]:
    return [_flow_row(flow, comments=flow.comments) for flow in context.flows if counts_for_depth(flow)]


def _reviews_given(context: _Context) -> list[Row]:
    rows = []
    for flow in context.flows:
        given = sum(n for reviewer, n in flow.reviews_by if context.reviewer in (None, reviewer))
        if given:
            rows.append(_flow_row(flow, reviews=given))
    return rows


def _agreement(which: str, kept: bool) -> Callable[[_Context], list[Row]]:
    def rows(context: _Context) -> list[Row]:
        team = context.scope.team
        return [
            _flow_row(flow, time_to_first_review=_hours(flow.time_to_first_review))
            for flow in context.flows
            if agreement_kept(team, flow)[which] is kept
        ]

    return rows


def _compliance(status: str) -> Callable[[_Context], list[Row]]:
    def rows(context: _Context) -> list[Row]:
        changes = context.merged_changes().filter(status=status)
        if context.reason:
            changes = changes.filter(reason=context.reason)
        if context.followup:
            changes = changes.filter(followup=context.followup)
        values = changes.values(
            "pk", "merged_at", "additions", "deletions", "verdict_at_merge", "status", "followup", "reason",
            "override_reason",
        )  # fmt: skip
        return [
            {
                "pull_request_id": row["pk"],
                "merged_at": row["merged_at"],
                "changed_lines": _changed(row["additions"], row["deletions"]),
                "verdict_at_merge": row["verdict_at_merge"],
                "status": row["status"],
                "followup": row["followup"],
                "reason": row["reason"] + (f": {row['override_reason']}" if row["override_reason"] else ""),
            }
            for row in values
        ]

    return rows


def _changed(additions: int | None, deletions: int | None) -> int | None:
    return additions + deletions if additions is not None and deletions is not None else None


def _open_rows(pull_requests: Iterable[PullRequest], now: dt.datetime) -> list[Row]:
    return [
        {
            "pull_request_id": pr.pk,
            "ready_at": pr.ready_at,
            "updated_at": pr.updated_at,
            "hours_waiting": _hours(now - pr.ready_at) if pr.ready_at else None,
        }
        for pr in pull_requests
    ]


def _waiting(context: _Context) -> list[Row]:
    scope = context.scope
    waiting = waiting_for_review(team=scope.team, now=context.now, pull_requests=scope.pull_requests())
    return _open_rows(waiting, context.now)


def _stale(context: _Context) -> list[Row]:
    scope = context.scope
    return _open_rows(
        stale_pull_requests(team=scope.team, now=context.now, pull_requests=scope.pull_requests()), context.now
    )


def _waiting_on(context: _Context) -> list[Row]:
    pairs = awaiting_reviewers(context.scope.pull_requests(), bot_ids())
    ready = dict(PullRequest.objects.filter(pk__in={pr for pr, _ in pairs}).values_list("pk", "ready_at"))
    return [
        {
            "pull_request_id": pr,
            "reviewer_id": person,
            "ready_at": ready.get(pr),
            "hours_waiting": _hours(context.now - ready_at) if (ready_at := ready.get(pr)) else None,
        }
        for pr, person in pairs
        if context.reviewer in (None, person)
    ]


_COVERAGE_COLUMNS = (*MERGED_COLUMNS, ("approvals", "Approvals that counted"), ("paired", "Paired"))
_COMPLIANCE_COLUMNS = (
    *MERGED_COLUMNS,
    ("verdict_at_merge", "Verdict at merge"),
    ("status", "Status"),
    ("followup", "Follow-up"),
    ("reason", "Reason"),
)
_OPEN_COLUMNS = (("ready_at", "Ready"), ("hours_waiting", "Hours since ready"), ("updated_at", "Last activity"))

METRICS: dict[str, Metric] = {
    metric.key: metric
    for metric in (
        Metric(
            "merged",
            "Merged pull requests",
            (
                *MERGED_COLUMNS,
                ("size", "Size"),
                ("coverage", "Coverage"),
                ("approvals", "Approvals that counted"),
                ("pickup_time", "Pickup time (h)"),
                ("cycle_time", "Cycle time (h)"),
                ("status", "Policy status at merge"),
                ("reason", "Reason"),
            ),
            _merged,
        ),
        Metric(
            "reviewed", "Reviewed: approved by someone other than the author", _COVERAGE_COLUMNS, _coverage("reviewed")
        ),
        Metric(
            "paired_only",
            "Paired only: paired with a non-author, not approved",
            _COVERAGE_COLUMNS,
            _coverage("paired_only"),
        ),
        Metric("neither", "Neither reviewed nor paired: unreviewed merges", _COVERAGE_COLUMNS, _coverage("neither")),
        Metric(
            "approvals",
            "Approvals that counted",
            (*MERGED_COLUMNS, ("approvals", "Approvals that counted")),
            _approvals,
            "-approvals",
        ),
        Metric(
            "rubber_stamps",
            "Rubber-stamp approvals",
            (
                *MERGED_COLUMNS,
                ("reviewer", "Reviewer"),
                ("approved_at", "Approved"),
                ("minutes_after_last_push", "Minutes after the last push"),
            ),
            _rubber_stamps,
            "minutes_after_last_push",
            per_reviewer=True,
        ),
        *(
            Metric(key, label, (*MERGED_COLUMNS, (key, f"{label} (h)")), _flow_figure(key), f"-{key}")
            for key, label in FLOW_FIGURES.items()
        ),
        Metric(
            "rework_cycles",
            "Rework cycles",
            (*MERGED_COLUMNS, ("rework_cycles", "Rework cycles")),
            _rework,
            "-rework_cycles",
        ),
        Metric(
            "review_depth", "Review depth", (*MERGED_COLUMNS, ("comments", "Comments by others")), _depth, "-comments"
        ),
        Metric(
            "reviews_given",
            "Reviews given",
            (*MERGED_COLUMNS, ("reviews", "Reviews")),
            _reviews_given,
            "-reviews",
            per_reviewer=True,
        ),
        Metric(
            "waiting_on",
            "Waiting on a requested reviewer now",
            (("reviewer", "Reviewer"), ("ready_at", "Ready"), ("hours_waiting", "Hours since ready")),
            _waiting_on,
            "-hours_waiting",
            per_reviewer=True,
        ),
        Metric("waiting", "Waiting for review now", _OPEN_COLUMNS, _waiting, "-hours_waiting"),
        Metric("stale", "No activity for 7 days", _OPEN_COLUMNS, _stale, "updated_at"),
        Metric(
            "reviewed_in_time",
            "First review within the agreement",
            (*MERGED_COLUMNS, ("time_to_first_review", "Time to first review (h)")),
            _agreement("review", True),
        ),
        Metric(
            "reviewed_late",
            "First review later than the agreement",
            (*MERGED_COLUMNS, ("time_to_first_review", "Time to first review (h)")),
            _agreement("review", False),
            "-time_to_first_review",
        ),
        Metric("within_size", "Within the size agreement", MERGED_COLUMNS, _agreement("size", True)),
        Metric("over_size", "Over the size agreement", MERGED_COLUMNS, _agreement("size", False), "-changed_lines"),
        *(
            Metric(status, f"Policy: {status.replace('_', ' ')}", _COMPLIANCE_COLUMNS, _compliance(status))
            for status in STATUSES
        ),
    )
}


@dataclass
class DrillDown:
    metric: Metric
    columns: tuple[tuple[str, str], ...]
    rows: list[Row] = field(default_factory=list)
    sort: str = ""
    reviewer: Person | None = None


def drilldown(*, scope: Scope, params: QueryParams, now: dt.datetime | None = None) -> DrillDown:
    """The rows behind `metric` (a key of METRICS) in the scope, sorted by `sort` (a column, `-` for descending).
    Unknown metric, sort or reviewer: ScopeInvalid naming it."""
    now = now or timezone.now()
    key = (params.get("metric") or "merged").strip()
    metric = METRICS.get(key)
    if metric is None:
        raise ScopeInvalid("metric", f"No figure {key!r}; one of {', '.join(METRICS)}.")
    reviewer = _reviewer(params, scope) if metric.per_reviewer else None
    reason = (params.get("reason") or "").strip()[:200]
    followup = (params.get("followup") or "").strip()
    if followup and followup not in ("done", "due", "overdue"):
        raise ScopeInvalid("followup", "followup is one of done, due, overdue.")
    columns = (*BASE_COLUMNS, *metric.columns)
    sort = (params.get("sort") or metric.default_sort).strip()
    if sort.lstrip("-") not in {name for name, _ in columns}:
        raise ScopeInvalid("sort", f"No column {sort.lstrip('-')!r} to sort by.")
    context = _Context(scope, now, reviewer.pk if reviewer else None, reason, followup)
    rows = metric.rows(context)
    _attach(rows)
    _sort(rows, sort)
    return DrillDown(metric, columns, rows, sort, reviewer)


def _reviewer(params: QueryParams, scope: Scope) -> Person | None:
    """The person named by `reviewer`: one of the team, or someone who reviewed or was asked to review one of its
    changes. Anyone else is refused as unknown, so a drill-down never names another team's person."""
    text = (params.get("reviewer") or "").strip()
    if not text:
        return None
    pk = int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
    team_pull_requests = PullRequest.objects.filter(repository__team=scope.team)
    concerned = (
        Q(memberships__team=scope.team)
        | Q(pk__in=Review.objects.filter(pull_request__in=team_pull_requests).values("reviewer_id"))
        | Q(
            pk__in=PullRequest.requested_reviewers.through.objects.filter(pullrequest__in=team_pull_requests).values(
                "person_id"
            )
        )
    )
    person = Person.objects.filter(concerned, pk=pk).first() if pk is not None else None
    if person is None:
        raise ScopeInvalid("reviewer", f"No person has id {text!r}.")
    return person


def _attach(rows: list[Row]) -> None:
    """Each row's pull request (with repository and author) and reviewer name: two queries for any number."""
    # One query, not in_bulk: in_bulk splits a long id list into batches on SQLite (the bench's database).
    ids = list({row["pull_request_id"] for row in rows})
    pull_requests = {pr.pk: pr for pr in PullRequest.objects.select_related("repository", "author").filter(pk__in=ids)}
    reviewers = (
        dict(
            Person.objects.filter(pk__in={row["reviewer_id"] for row in rows if row.get("reviewer_id")}).values_list(
                "pk", "display_name"
            )
        )
        if any(row.get("reviewer_id") for row in rows)
        else {}
    )
    for row in rows:
        pull_request = pull_requests[row["pull_request_id"]]
        row["pr"] = pull_request
        row["pull_request"] = str(pull_request)
        row["title"] = pull_request.title
        row["repository"] = pull_request.repository.full_path
        row["author"] = str(pull_request.author) if pull_request.author else None
        if "reviewer_id" in row:
            row["reviewer"] = reviewers.get(row["reviewer_id"])


def _sort(rows: list[Row], sort: str) -> None:
    """By one column, missing values last whichever the direction; ties by pull request for a stable order."""
    key, descending = sort.lstrip("-"), sort.startswith("-")
    rows.sort(key=lambda row: row["pull_request"])
    present = [row for row in rows if row.get(key) is not None]
    missing = [row for row in rows if row.get(key) is None]
    present.sort(key=lambda row: row[key], reverse=descending)
    rows[:] = present + missing
