"""What a team page shows, gathered in a bounded number of queries whatever the history's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from reviews.models import PullRequest, Team
from reviews.selectors.compliance import ComplianceSummary, compliance_summary
from reviews.selectors.health import ReviewHealth, review_health, stale_pull_requests, waiting_for_review
from reviews.selectors.pairing import PairingInsight, team_pairing_insight


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


def team_page(*, team: Team, days: int = 30, now: dt.datetime | None = None) -> TeamPage:
    now = now or timezone.now()
    since, until = now - dt.timedelta(days=days), now
    pull_requests = PullRequest.objects.filter(repository__team=team)
    health = review_health(pull_requests=pull_requests, since=since, until=until)
    previous = review_health(pull_requests=pull_requests, since=since - (until - since), until=since)
    return TeamPage(
        team=team,
        since=since,
        until=until,
        health=health,
        previous=previous,
        agreements=_agreements(team, health),
        waiting=waiting_for_review(team=team, now=now),
        stale=stale_pull_requests(team=team, now=now),
        compliance=compliance_summary(team=team, since=since, until=until, now=now),
        pairing=team_pairing_insight(team=team, since=since.date(), until=until.date()),
    )


def _agreements(team: Team, health: ReviewHealth) -> WorkingAgreements:
    limit = dt.timedelta(hours=team.review_within_hours)
    in_time = sum(
        1 for flow in health.flows if flow.time_to_first_review is not None and flow.time_to_first_review <= limit
    )
    late = sum(
        1 for flow in health.flows if flow.time_to_first_review is not None and flow.time_to_first_review > limit
    )
    sized = [flow for flow in health.flows if flow.changed_lines is not None]
    within = sum(1 for flow in sized if (flow.changed_lines or 0) <= team.max_pr_size)
    return WorkingAgreements(team.review_within_hours, in_time, late, team.max_pr_size, within, len(sized) - within)


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
