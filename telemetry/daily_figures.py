"""Every team's alert figures per local day, in bulk: the samples `telemetry.drift` judges.

The same definitions as the team page: review flow from `reviews.selectors.health.merged_flows` (time to first
review, pickup, coverage, approvals that counted, rubber stamps, pairing, as `review_facts` decides them), and DORA
from `telemetry.selectors.dora` (the deployments DORA counts, their confirmed causes, the incidents time to restore is
measured over). A fixed number of queries for any number of teams and days; the days are what costs.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection

from django.utils import timezone

from reviews.models import PullRequest
from reviews.selectors.health import PullRequestFlow, merged_flows
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
    pull_requests = PullRequest.objects.filter(repository__team_id__in=team_ids)
    team_of = dict(
        pull_requests.filter(state=PullRequest.State.MERGED, merged_at__gte=since, merged_at__lt=until).values_list(
            "pk", "repository__team_id"
        )
    )
    for flow in merged_flows(pull_requests=pull_requests, since=since, until=until):
        team_id = team_of.get(flow.pull_request_id)
        if team_id is not None:
            _add_flow(samples, team_id, local_day(flow.merged_at), flow)


def _add_flow(samples: Samples, team_id: int, day: dt.date, flow: PullRequestFlow) -> None:
    pk = flow.pull_request_id
    if flow.time_to_first_review is not None and flow.time_to_first_review >= dt.timedelta(0):
        samples[(team_id, "time_to_first_review")][day].append((pk, _hours(flow.time_to_first_review)))
    if flow.pickup_time is not None and flow.pickup_time >= dt.timedelta(0):
        samples[(team_id, "pickup_time")][day].append((pk, _hours(flow.pickup_time)))
    # Coverage as health's `_coverage`: reviewed (an approval that counted), paired only, neither (unreviewed).
    samples[(team_id, "unreviewed_share")][day].append((pk, 0.0 if flow.approvals or flow.paired else 1.0))
    samples[(team_id, "review_coverage")][day].append((pk, 1.0 if flow.approvals else 0.0))
    # A share of approvals: one item per approval that counted, 1 for a rubber stamp.
    stamps = samples[(team_id, "rubber_stamp_share")][day]
    stamps.extend([(pk, 1.0)] * flow.rubber_stamps + [(pk, 0.0)] * (flow.approvals - flow.rubber_stamps))


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


def _hours(duration: dt.timedelta) -> float:
    return round(duration.total_seconds() / 3600, 3)
