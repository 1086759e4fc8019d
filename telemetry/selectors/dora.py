"""DORA metrics (METRICS.md, "DORA"): the four keys and the change failure rate by review mode, of a team's or
a service's production deployments over a period, and the rows they are measured over.

Every selector runs a bounded number of queries, whatever the history's size: rows are restricted to a period
or to a set of ids first, then aggregated in plain Python.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.db.models import Exists, Min, OuterRef
from django.utils import timezone

from reviews.models import PullRequest, Team
from reviews.selectors.health import Distribution, percentile, week_of, weeks_of
from reviews.selectors.overrides import pull_requests_overridden
from reviews.selectors.review_facts import NO_FACTS, pull_request_review_facts
from reviews.selectors.stored_figures import current_pull_request_figures
from telemetry import conf
from telemetry.models import Deployment, DeploymentChange, Incident, Service, SuspectChange
from telemetry.selectors.suspects import PULL_REQUEST_FIELDS

REVIEW_MODES = ("paired", "one_approval", "two_or_more", "overridden", "unreviewed")
BANDS = ("elite", "high", "medium", "low")


@dataclass(frozen=True)
class DeploymentFrequency:
    """Deployments per day over the period; the band from its whole weeks (7 days each from the period's start),
    the days after the last whole week being a partial week: counted in `deployments`, left out of the band."""

    deployments: int
    per_day: float
    deployment_days: int
    whole_weeks: int
    partial_week_days: float  # days after the last whole week (0: none)
    median_days_per_week: float | None  # days with a deployment, median over whole weeks
    median_deployments_per_week: float | None
    weeks_with_deployments: int  # whole weeks with at least one
    band: str  # elite / high / medium / low; "" without a whole week to judge on


@dataclass(frozen=True)
class LeadTime:
    pull_requests: int
    median_hours: float | None
    p90_hours: float | None
    parts: dict[str, float | None]  # median hours of coding, pickup, review, merge_to_deploy


@dataclass(frozen=True)
class ChangeFailureRate:
    deployments: int
    failed: int  # with at least one confirmed suspect change
    rate: float | None
    with_unconfirmed_suspects: int  # shown, never counted


@dataclass(frozen=True)
class TimeToRestore:
    incidents: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class ReviewModeRate:
    pull_requests: int
    failed: int
    rate: float | None


@dataclass(frozen=True)
class DoraReport:
    since: dt.datetime
    until: dt.datetime
    services: list[str]
    deployment_frequency: DeploymentFrequency
    lead_time: LeadTime
    change_failure_rate: ChangeFailureRate
    time_to_restore: TimeToRestore
    cfr_by_review_mode: dict[str, ReviewModeRate]
    # Per ISO week of the period (`reviews.selectors.health.weeks_of`): deployments, failed (a confirmed cause),
    # the median lead time of the changes first deployed that week and the median time to restore of the
    # incidents resolved that week, in hours.
    weekly: list[dict[str, object]] = field(default_factory=list)


def team_dora(*, team: Team, since: dt.datetime, until: dt.datetime) -> DoraReport:
    return services_dora(services=list(Service.objects.filter(team=team).order_by("slug")), since=since, until=until)


def service_dora(*, service: Service, since: dt.datetime, until: dt.datetime) -> DoraReport:
    return services_dora(services=[service], since=since, until=until)


def services_dora(*, services: Sequence[Service], since: dt.datetime, until: dt.datetime) -> DoraReport:
    """The four keys (and CFR by review mode) of these services over [since, until), as METRICS.md defines them.

    - A deployment counts when it is successful, to a production environment, finished in the period (and, when
      path-scoped, shipped a change of its service).
    - Lead time: per merged pull request whose first counted production deployment of these services finished in
      the period: first commit authored (else opened) → that deployment's finish. Parts: coding (first commit →
      ready), pickup (ready → first review activity, or approval, or merge), review (→ merge), merge → deployed.
    - Change failure rate: counted deployments with a confirmed suspect ÷ counted deployments.
    - Time to restore: incident start → resolved, over the services' incidents resolved in the period.
    - CFR by review mode: over the pull requests of the lead time, the share that is a confirmed cause; each
      pull request is in one mode: overridden, else paired, else two or more approvals, else one, else unreviewed.
    """
    service_ids = [service.pk for service in services]
    deployments = _counted_deployments(service_ids, since, until)
    shipped = _first_production_deployments(service_ids, [d["pk"] for d in deployments], since, until)
    rows = {
        row["pk"]: row
        for row in PullRequest.objects.filter(
            pk__in=list(shipped), merged_at__isnull=False, author__is_bot=False
        ).values(*PULL_REQUEST_FIELDS)
    }
    reviews = _reviews(rows)
    restored = _restored(service_ids, since, until)
    lead_times = [(shipped[pk], _lead_time_of(row, shipped[pk])) for pk, row in rows.items()]
    return DoraReport(
        since=since,
        until=until,
        services=[service.slug for service in services],
        deployment_frequency=_frequency(deployments, since, until),
        lead_time=_lead_time(rows, reviews, shipped),
        change_failure_rate=_change_failure_rate(deployments),
        time_to_restore=_time_to_restore(restored),
        cfr_by_review_mode=_by_review_mode(rows, reviews),
        weekly=_weekly(deployments, lead_times, restored, since, until),
    )


@dataclass(frozen=True)
class _Reviewed:
    """What DORA reads of how a pull request was reviewed (`reviews.selectors.review_facts`): the end of its pickup
    (first review activity, else first approval that counted, else the merge), its approvals that counted, paired."""

    pickup_end: dt.datetime
    approvals: int
    paired: bool


def _reviews(rows: dict[int, dict[str, Any]]) -> dict[int, _Reviewed]:
    """From the stored per-pull-request figures (their pickup time ends where the facts say pickup ends); the facts
    themselves only for a pull request without stored figures (one that says merged_at but is not merged)."""
    stored = current_pull_request_figures(pull_request_ids=list(rows), fields=("pickup_time", "approvals", "paired"))
    found = {}
    for pk, figures in stored.items():
        ready = rows[pk]["ready_at"] or rows[pk]["created_at"]
        pickup = figures.pickup_time
        pickup_end = rows[pk]["merged_at"] if pickup is None else ready + dt.timedelta(seconds=pickup)
        found[pk] = _Reviewed(pickup_end, figures.approvals, figures.paired)
    facts = pull_request_review_facts(pull_request_ids=[pk for pk in rows if pk not in stored])
    for pk in rows.keys() - stored.keys():
        merged, fact = rows[pk]["merged_at"], facts.get(pk, NO_FACTS)
        pickup_end = min(fact.first_activity or merged, fact.first_approval or merged, merged)
        found[pk] = _Reviewed(pickup_end, len(fact.approvals), fact.paired)
    return found


def _weekly(
    deployments: list[dict[str, Any]],
    lead_times: list[tuple[dt.datetime, dt.timedelta]],
    restored: list[tuple[dt.datetime, dt.datetime]],
    since: dt.datetime,
    until: dt.datetime,
) -> list[dict[str, object]]:
    deployed: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for row in deployments:
        deployed[week_of(row["finished_at"])].append(row)
    leads: dict[dt.date, list[dt.timedelta]] = defaultdict(list)
    for shipped_at, lead_time in lead_times:
        leads[week_of(shipped_at)].append(lead_time)
    restores: dict[dt.date, list[dt.timedelta]] = defaultdict(list)
    for started, resolved in restored:
        restores[week_of(resolved)].append(resolved - started)
    weeks = []
    for week in weeks_of(since, until):
        monday = cast(dt.date, week["week"])
        rows = deployed.get(monday, [])
        failed = sum(1 for row in rows if row["confirmed"])
        weeks.append(
            {
                **week,
                "deployments": len(rows),
                "failed": failed,
                "change_failure_rate": round(100 * failed / len(rows)) if rows else None,
                "lead_time": Distribution.of(leads.get(monday, [])).median_hours,
                "time_to_restore": Distribution.of(restores.get(monday, [])).median_hours,
            }
        )
    return weeks


def _counted_deployments(service_ids: list[int], since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    suspects = SuspectChange.objects.filter(deployment=OuterRef("pk"))
    rows = (
        Deployment.objects.filter(
            service_id__in=service_ids,
            environment__in=conf.production_environments(),
            status=Deployment.Status.SUCCESS,
            finished_at__gte=since,
            finished_at__lt=until,
        )
        .annotate(
            shipped=Exists(DeploymentChange.objects.filter(deployment=OuterRef("pk"), pull_request__isnull=False)),
            confirmed=Exists(suspects.filter(verdict=SuspectChange.Verdict.CONFIRMED)),
            suspected=Exists(suspects.filter(verdict=SuspectChange.Verdict.SUSPECTED)),
        )
        .order_by("finished_at", "pk")
        .values("pk", "service_id", "finished_at", "path_scoped", "shipped", "confirmed", "suspected")
    )
    return [dict(row) for row in rows if not row["path_scoped"] or row["shipped"]]


def counted_deployments(*, service_ids: list[int], since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """The deployments DORA counts (frequency, change failure rate), one dict each: pk, service_id, finished_at,
    confirmed (a confirmed suspect: failed), suspected. For callers that group them otherwise (alerts, per day)."""
    return _counted_deployments(service_ids, since, until)


@dataclass(frozen=True)
class RestoredIncident:
    pk: int
    started_at: dt.datetime
    resolved_at: dt.datetime
    service_ids: frozenset[int]

    @property
    def time_to_restore(self) -> dt.timedelta:
        return self.resolved_at - self.started_at


def restored_incidents(*, service_ids: list[int], since: dt.datetime, until: dt.datetime) -> list[RestoredIncident]:
    """The services' incidents resolved in [since, until): what time to restore is measured over."""
    links = Incident.services.through.objects.filter(
        service_id__in=service_ids, incident__resolved_at__gte=since, incident__resolved_at__lt=until
    ).values_list("incident_id", "service_id", "incident__started_at", "incident__resolved_at")
    found: dict[int, tuple[dt.datetime, dt.datetime, set[int]]] = {}
    for pk, service_id, started_at, resolved_at in links:
        if resolved_at is not None:  # the filter says so; the type does not
            found.setdefault(pk, (started_at, resolved_at, set()))[2].add(service_id)
    return [
        RestoredIncident(pk, started, resolved, frozenset(services))
        for pk, (started, resolved, services) in sorted(found.items())
    ]


def _first_production_deployments(
    service_ids: list[int], deployment_ids: list[int], since: dt.datetime, until: dt.datetime
) -> dict[int, dt.datetime]:
    """Pull request → the finish of the first production deployment of these services that shipped it, for the
    pull requests whose first one is in the period."""
    in_period = DeploymentChange.objects.filter(deployment_id__in=deployment_ids, pull_request__isnull=False).values(
        "pull_request_id"
    )
    firsts = (
        DeploymentChange.objects.filter(
            pull_request_id__in=in_period,
            deployment__service_id__in=service_ids,
            deployment__environment__in=conf.production_environments(),
            deployment__status=Deployment.Status.SUCCESS,
            deployment__finished_at__isnull=False,
        )
        .values("pull_request_id")
        .annotate(first=Min("deployment__finished_at"))
        .values_list("pull_request_id", "first")
    )
    return {pk: first for pk, first in firsts if since <= first < until}


def _frequency(deployments: list[dict[str, Any]], since: dt.datetime, until: dt.datetime) -> DeploymentFrequency:
    days = max((until - since).total_seconds() / 86400, 1 / 24)
    whole_weeks = math.floor(days / 7)
    deployed_days = {timezone.localtime(row["finished_at"]).date() for row in deployments}
    days_in_week: list[set[dt.date]] = [set() for _ in range(whole_weeks)]
    count_in_week = [0] * whole_weeks
    for row in deployments:
        week = (row["finished_at"] - since) // dt.timedelta(days=7)
        if 0 <= week < whole_weeks:
            days_in_week[week].add(timezone.localtime(row["finished_at"]).date())
            count_in_week[week] += 1
    median_days = percentile(sorted(float(len(d)) for d in days_in_week), 50)
    median_count = percentile(sorted(float(c) for c in count_in_week), 50)
    weeks_with = sum(1 for count in count_in_week if count)
    return DeploymentFrequency(
        deployments=len(deployments),
        per_day=round(len(deployments) / days, 2),
        deployment_days=len(deployed_days),
        whole_weeks=whole_weeks,
        partial_week_days=round(days - 7 * whole_weeks, 2),
        median_days_per_week=median_days,
        median_deployments_per_week=median_count,
        weeks_with_deployments=weeks_with,
        band=frequency_band(
            whole_weeks=whole_weeks,
            median_days_per_week=median_days,
            median_deployments_per_week=median_count,
            weeks_with_deployments=weeks_with,
        ),
    )


def frequency_band(
    *,
    whole_weeks: int,
    median_days_per_week: float | None,
    median_deployments_per_week: float | None,
    weeks_with_deployments: int,
) -> str:
    """METRICS.md's DORA band, judged on whole weeks only:

    - elite (on demand, several a day): the median week has more deployments than days;
    - high (between once a day and once a week): the median week has a day with a deployment;
    - medium (between once a week and once a month): at least one week in four has one;
    - low: less. No whole week: no band ("").
    """
    if whole_weeks == 0 or median_days_per_week is None or median_deployments_per_week is None:
        return ""
    if median_deployments_per_week > 7:
        return "elite"
    if median_days_per_week >= 1:
        return "high"
    if 4 * weeks_with_deployments >= whole_weeks:
        return "medium"
    return "low"


def _lead_time(
    rows: dict[int, dict[str, Any]], reviews: dict[int, _Reviewed], shipped: dict[int, dt.datetime]
) -> LeadTime:
    total, coding, pickup, review, deploy = [], [], [], [], []
    for pk, row in rows.items():
        deployed, merged = shipped[pk], row["merged_at"]
        ready = row["ready_at"] or row["created_at"]
        first_commit = row["first_commit_at"] or row["created_at"]
        pickup_end = min(reviews[pk].pickup_end, merged)
        total.append(_lead_time_of(row, deployed))
        coding.append(max(ready - first_commit, dt.timedelta(0)))
        pickup.append(max(pickup_end - ready, dt.timedelta(0)))
        review.append(merged - max(pickup_end, ready))
        deploy.append(deployed - merged)
    overall = Distribution.of(total)
    parts = {
        "coding": Distribution.of(coding).median_hours,
        "pickup": Distribution.of(pickup).median_hours,
        "review": Distribution.of(review).median_hours,
        "merge_to_deploy": Distribution.of(deploy).median_hours,
    }
    return LeadTime(len(rows), overall.median_hours, overall.p90_hours, parts)


def _lead_time_of(row: dict[str, Any], deployed: dt.datetime) -> dt.timedelta:
    """First commit authored (else opened) → the first production deployment containing the merge."""
    started: dt.datetime = row["first_commit_at"] or row["created_at"]
    return deployed - started


def _change_failure_rate(deployments: list[dict[str, Any]]) -> ChangeFailureRate:
    failed = sum(1 for row in deployments if row["confirmed"])
    unconfirmed = sum(1 for row in deployments if row["suspected"] and not row["confirmed"])
    rate = round(failed / len(deployments), 4) if deployments else None
    return ChangeFailureRate(len(deployments), failed, rate, unconfirmed)


def _restored(service_ids: list[int], since: dt.datetime, until: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """(started, resolved) of the services' incidents resolved in the period (`restored_incidents`)."""
    incidents = restored_incidents(service_ids=service_ids, since=since, until=until)
    return [(incident.started_at, incident.resolved_at) for incident in incidents]


def _time_to_restore(restored: list[tuple[dt.datetime, dt.datetime]]) -> TimeToRestore:
    durations = Distribution.of(resolved - started for started, resolved in restored)
    return TimeToRestore(len(restored), durations.median_hours, durations.p90_hours)


def _by_review_mode(rows: dict[int, dict[str, Any]], reviews: dict[int, _Reviewed]) -> dict[str, ReviewModeRate]:
    ids = list(rows)
    overridden = pull_requests_overridden(pull_request_ids=ids)
    failed = set(
        SuspectChange.objects.filter(pull_request_id__in=ids, verdict=SuspectChange.Verdict.CONFIRMED).values_list(
            "pull_request_id", flat=True
        )
    )
    counts = {mode: [0, 0] for mode in REVIEW_MODES}
    for pk in ids:
        approvals = reviews[pk].approvals
        if pk in overridden:
            mode = "overridden"
        elif reviews[pk].paired:
            mode = "paired"
        elif approvals >= 2:
            mode = "two_or_more"
        elif approvals == 1:
            mode = "one_approval"
        else:
            mode = "unreviewed"
        counts[mode][0] += 1
        counts[mode][1] += pk in failed
    return {
        mode: ReviewModeRate(total, bad, round(bad / total, 4) if total else None)
        for mode, (total, bad) in counts.items()
    }
