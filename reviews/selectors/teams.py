"""What a team page shows, gathered in a bounded number of queries whatever the history's size."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from reviews.models import PullRequest, PullRequestFigures, Repository, SyncRun, Team
from reviews.selectors.compliance import ComplianceSummary, StoredPeriod, compliance_summary
from reviews.selectors.health import (
    Distribution,
    PullRequestFlow,
    ReadOnce,
    ReviewHealth,
    StoredFlows,
    agreement_counts,
    review_health,
    stale_pull_requests,
    stored_duration,
    waiting_for_review,
    waiting_for_review_counts,
)
from reviews.selectors.pairing import PairingInsight, team_pairing_insight
from reviews.selectors.scope import Scope
from reviews.selectors.stored_figures import current_pull_request_figures


@dataclass(frozen=True)
class WorkingAgreements:
    review_within_hours: int
    reviewed_in_time: int
    reviewed_late: int
    max_pr_size: int
    within_size: int
    over_size: int


@dataclass(frozen=True)
class TeamPage:
    team: Team
    since: dt.datetime
    until: dt.datetime
    health: ReviewHealth
    previous: ReviewHealth
    agreements: WorkingAgreements
    waiting: list[PullRequest]
    stale: list[PullRequest]
    compliance: ComplianceSummary
    pairing: PairingInsight
    scope: Scope


def team_page(*, scope: Scope, now: dt.datetime | None = None, previous_weeks: bool = True) -> TeamPage:
    """The team page's figures over the scope's period and filters, and the previous period of equal length
    (`previous_weeks` False: without its weeks, for the HTML page, which compares the periods' totals only)."""
    now = now or timezone.now()
    team, since, until = scope.team, scope.since, scope.until
    pull_requests = scope.pull_requests()
    repositories = _unfiltered_repositories(scope)
    agreement = (dt.timedelta(hours=team.review_within_hours), team.max_pr_size)
    read_once = ReadOnce()  # the bots, who waits on whom now, the names: read for the period, reused for the previous
    health = review_health(
        pull_requests=pull_requests,
        since=since,
        until=until,
        repositories=repositories,
        agreement=agreement,
        read_once=read_once,
    )
    previous = review_health(
        pull_requests=pull_requests,
        since=scope.previous().since,
        until=since,
        repositories=repositories,
        read_once=read_once,
        weekly=previous_weeks,
    )
    return TeamPage(
        team=team,
        since=since,
        until=until,
        health=health,
        previous=previous,
        agreements=_agreements(team, health),
        waiting=waiting_for_review(team=team, now=now, pull_requests=pull_requests),
        stale=stale_pull_requests(team=team, now=now, pull_requests=pull_requests),
        compliance=compliance_summary(
            team=team, since=since, until=until, now=now, pull_requests=pull_requests, stored=_stored_period(health)
        ),
        pairing=team_pairing_insight(team=team, since=scope.period.first_day, until=scope.period.last_day),
        scope=scope,
    )


def _unfiltered_repositories(scope: Scope) -> QuerySet[Repository] | None:
    """The repositories whose pull requests are exactly the scope's (none when it filters by more than the
    repository): their per-hour rollups then hold the page's sums."""
    if scope.authors or scope.author_team or scope.labels or scope.size_bucket:
        return None
    repositories = Repository.objects.filter(team=scope.team)
    return repositories.filter(pk__in=scope.repositories) if scope.repositories else repositories


def _stored_period(health: ReviewHealth) -> StoredPeriod | None:
    """The period's stored figures the review health read (none owed any more), for compliance to count too."""
    if isinstance(health.flows, StoredFlows):
        return StoredPeriod(health.flows.figures, health.flows.bots, health.flows.compliance_rows)
    return None


def agreement_kept(team: Team, flow: PullRequestFlow) -> dict[str, bool | None]:
    """Per merged pull request, each working agreement: kept (True), missed (False) or not measurable (None)."""
    limit = dt.timedelta(hours=team.review_within_hours)
    first_review = flow.time_to_first_review
    return {
        "review": None if first_review is None else first_review <= limit,
        "size": None if flow.changed_lines is None else flow.changed_lines <= team.max_pr_size,
    }


def _agreements(team: Team, health: ReviewHealth) -> WorkingAgreements:
    """`agreement_kept` counted over the period's merged pull requests."""
    counts = agreement_counts(
        health=health, review_within=dt.timedelta(hours=team.review_within_hours), max_size=team.max_pr_size
    )
    return WorkingAgreements(
        team.review_within_hours, counts["in_time"], counts["late"], team.max_pr_size, counts["within"], counts["over"]
    )


@dataclass(frozen=True)
class TeamFigures:
    """A team's key figures over one period (METRICS.md), as the organisation overview compares them."""

    merged: int
    reviewed: int
    median_pickup_hours: float | None
    median_cycle_hours: float | None

    @property
    def reviewed_percent(self) -> int | None:
        return round(100 * self.reviewed / self.merged) if self.merged else None


@dataclass(frozen=True)
class TeamSummary:
    team: Team
    now: TeamFigures
    before: TeamFigures  # the previous period of the same length
    waiting: int


def teams_overview(
    *, teams: QuerySet[Team], since: dt.datetime, until: dt.datetime, now: dt.datetime | None = None
) -> list[TeamSummary]:
    """A line per team: its key figures in the period and the one before, and what waits for review now.

    A fixed number of queries whatever the number of teams and the history: the stored per-pull-request figures of
    every team's pull requests merged in both periods, split by team and period afterwards."""
    now = now or timezone.now()
    before_since = since - (until - since)
    teams_shown = list(teams.filter(archived=False).order_by("name"))
    in_periods = PullRequest.objects.filter(
        repository__team__in=[team.pk for team in teams_shown], merged_at__gte=before_since, merged_at__lt=until
    )
    team_of = dict(in_periods.values_list("pk", "repository__team_id"))
    # The stored per-pull-request figures (those owed computed first): the pull requests they count (merged, not a
    # bot's) with the same pickup and cycle times, coverage and merge time as the team page's.
    figures = current_pull_request_figures(
        pull_request_ids=list(team_of), fields=("merged_at", "coverage", "pickup_time", "cycle_time")
    )
    current: dict[int, list[PullRequestFigures]] = defaultdict(list)
    previous: dict[int, list[PullRequestFigures]] = defaultdict(list)
    for row in figures.values():
        (current if row.merged_at >= since else previous)[team_of[row.pull_request_id]].append(row)
    waiting = waiting_for_review_counts(teams=teams_shown, now=now)
    return [
        TeamSummary(team, _figures(current[team.pk]), _figures(previous[team.pk]), waiting[team.pk])
        for team in teams_shown
    ]


def _figures(rows: list[PullRequestFigures]) -> TeamFigures:
    return TeamFigures(
        merged=len(rows),
        reviewed=sum(1 for row in rows if row.coverage == "reviewed"),
        median_pickup_hours=Distribution.of(stored_duration(row.pickup_time) for row in rows).median_hours,
        median_cycle_hours=Distribution.of(stored_duration(row.cycle_time) for row in rows).median_hours,
    )


def team_repositories(*, team: Team) -> list[Repository]:
    """The team's active repositories, each with `last_synced`: when its last completed sync finished (None: never).
    One query."""
    completed = Q(sync_runs__status=SyncRun.Status.COMPLETED)
    return list(
        Repository.objects.filter(team=team, is_active=True)
        .annotate(last_synced=Max("sync_runs__finished_at", filter=completed))
        .order_by("full_path")
    )
