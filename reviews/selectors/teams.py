"""What a team page shows, gathered in a bounded number of queries whatever the history's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from reviews.models import PullRequest, Team
from reviews.selectors.compliance import ComplianceSummary, compliance_summary
from reviews.selectors.health import (
    PullRequestFlow,
    ReviewHealth,
    review_health,
    stale_pull_requests,
    waiting_for_review,
)
from reviews.selectors.pairing import PairingInsight, team_pairing_insight
from reviews.selectors.scope import Scope


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


def team_page(*, scope: Scope, now: dt.datetime | None = None) -> TeamPage:
    """The team page's figures over the scope's period and filters, and the previous period of equal length."""
    now = now or timezone.now()
    team, since, until = scope.team, scope.since, scope.until
    pull_requests = scope.pull_requests()
    health = review_health(pull_requests=pull_requests, since=since, until=until)
    previous = review_health(pull_requests=pull_requests, since=scope.previous().since, until=since)
    return TeamPage(
        team=team,
        since=since,
        until=until,
        health=health,
        previous=previous,
        agreements=_agreements(team, health),
        waiting=waiting_for_review(team=team, now=now, pull_requests=pull_requests),
        stale=stale_pull_requests(team=team, now=now, pull_requests=pull_requests),
        compliance=compliance_summary(team=team, since=since, until=until, now=now, pull_requests=pull_requests),
        pairing=team_pairing_insight(team=team, since=scope.period.first_day, until=scope.period.last_day),
        scope=scope,
    )


def agreement_kept(team: Team, flow: PullRequestFlow) -> dict[str, bool | None]:
    """Per merged pull request, each working agreement: kept (True), missed (False) or not measurable (None)."""
    limit = dt.timedelta(hours=team.review_within_hours)
    first_review = flow.time_to_first_review
    return {
        "review": None if first_review is None else first_review <= limit,
        "size": None if flow.changed_lines is None else flow.changed_lines <= team.max_pr_size,
    }


def _agreements(team: Team, health: ReviewHealth) -> WorkingAgreements:
    kept = [agreement_kept(team, flow) for flow in health.flows]
    in_time = sum(1 for k in kept if k["review"] is True)
    late = sum(1 for k in kept if k["review"] is False)
    within = sum(1 for k in kept if k["size"] is True)
    over = sum(1 for k in kept if k["size"] is False)
    return WorkingAgreements(team.review_within_hours, in_time, late, team.max_pr_size, within, over)


@dataclass(frozen=True)
class TeamSummary:
    team: Team
    merged: int
    reviewed: int
    waiting: int
    median_pickup_hours: float | None


def teams_overview(*, teams: QuerySet[Team], days: int = 30, now: dt.datetime | None = None) -> list[TeamSummary]:
    """A line per team: merged in the period, how many were reviewed, pickup, and what waits for review now."""
    now = now or timezone.now()
    since = now - dt.timedelta(days=days)
    summaries = []
    for team in teams.filter(archived=False).order_by("name"):
        health = review_health(pull_requests=PullRequest.objects.filter(repository__team=team), since=since, until=now)
        summaries.append(
            TeamSummary(
                team=team,
                merged=health.merged,
                reviewed=health.coverage["reviewed"],
                waiting=len(waiting_for_review(team=team, now=now)),
                median_pickup_hours=health.pickup_time.median_hours,
            )
        )
    return summaries
