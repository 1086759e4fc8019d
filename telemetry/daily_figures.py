"""Every team's alert figures per local day, in bulk: the samples `telemetry.drift` judges.

The same definitions as the team page: review flow from the stored per-pull-request figures the team page reads
(`reviews.models.PullRequestFigures`, written by `reviews.selectors.health`'s own code: time to first review, pickup,
coverage, approvals that counted, rubber stamps, as `review_facts` decides them), and DORA
from `telemetry.selectors.dora` (the deployments DORA counts, their confirmed causes, the incidents time to restore is
measured over). A fixed number of queries for any number of teams and days (and, for pull requests whose stored
figures are missing or owed, those of computing them once).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection

from django.utils import timezone

from reviews.models import PullRequest
from reviews.selectors.health import _bots, _merged_in, current_figures
from telemetry.drift import Item
from telemetry.models import Service
from telemetry.selectors.dora import counted_deployments, restored_incidents

Samples = dict[tuple[int, str], dict[dt.date, list[Item]]]  # (team id, figure) -> day -> items


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def local_day(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment).date()


def daily_samples(*, team_ids: Collection[int], first_day: dt.date, last_day: dt.date) -> Samples:
    """The teams' samples of every figure on each local day of [first_day, last_day]."""
    since, until = local_midnight(first_day), local_midnight(last_day + dt.timedelta(days=1))
    samples: Samples = defaultdict(lambda: defaultdict(list))
    _review_samples(samples, list(team_ids), since, until)
    _production_samples(samples, list(team_ids), since, until)
    return samples


def _review_samples(samples: Samples, team_ids: list[int], since: dt.datetime, until: dt.datetime) -> None:
    """From the stored per-pull-request figures (`PullRequestFigures`, the team page's: those missing or owed are
    computed and stored first), so a day costs a read of its rows, not the review facts of its pull requests."""
    bots = _bots(None)
    merged = _merged_in(PullRequest.objects.filter(repository__team_id__in=team_ids), since, until, bots)
    rows = current_figures(merged=merged, bots=bots).values_list(
        "pull_request_id",
        "pull_request__repository__team_id",
        "merged_at",
        "time_to_first_review",
        "pickup_time",
        "approvals",
        "rubber_stamps",
        "coverage",
    )
    for pk, team_id, merged_at, first_review, pickup, approvals, stamps, coverage in rows.iterator(chunk_size=5000):
        day = local_day(merged_at)
        if first_review is not None and first_review >= 0:
            samples[(team_id, "time_to_first_review")][day].append((pk, _seconds_as_hours(first_review)))
        if pickup is not None and pickup >= 0:
            samples[(team_id, "pickup_time")][day].append((pk, _seconds_as_hours(pickup)))
        # Coverage as health's: reviewed (an approval that counted), paired only, neither (unreviewed).
        samples[(team_id, "unreviewed_share")][day].append((pk, 1.0 if coverage == "neither" else 0.0))
        samples[(team_id, "review_coverage")][day].append((pk, 1.0 if coverage == "reviewed" else 0.0))
        # A share of approvals: one item per approval that counted, 1 for a rubber stamp.
        samples[(team_id, "rubber_stamp_share")][day].extend([(pk, 1.0)] * stamps + [(pk, 0.0)] * (approvals - stamps))


def _production_samples(samples: Samples, team_ids: list[int], since: dt.datetime, until: dt.datetime) -> None:
    team_of_service = dict(Service.objects.filter(team_id__in=team_ids).values_list("pk", "team_id"))
    services = list(team_of_service)
    for row in counted_deployments(service_ids=services, since=since, until=until):
        team_id, day = team_of_service[row["service_id"]], local_day(row["finished_at"])
        samples[(team_id, "deployment_frequency")][day].append((row["pk"], 1.0))
        samples[(team_id, "change_failure_rate")][day].append((row["pk"], 1.0 if row["confirmed"] else 0.0))
    for incident in restored_incidents(service_ids=services, since=since, until=until):
        day = local_day(incident.resolved_at)
        for team_id in {team_of_service[service_id] for service_id in incident.service_ids}:
            samples[(team_id, "time_to_restore")][day].append((incident.pk, _hours(incident.time_to_restore)))


def teams_with_services(team_ids: Collection[int]) -> set[int]:
    return set(Service.objects.filter(team_id__in=list(team_ids)).values_list("team_id", flat=True))


def _seconds_as_hours(seconds: float) -> float:
    return round(seconds / 3600, 3)


def _hours(duration: dt.timedelta) -> float:
    return round(duration.total_seconds() / 3600, 3)
