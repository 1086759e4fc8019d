"""Rank the changes suspected of causing an incident (`incident_correlate`).

The candidates are the pull requests shipped to production by the incident's services in the window before it
started (`TELEMETRY_SUSPECT_WINDOW_HOURS`, default 72); `telemetry.ranking` scores them. Idempotent: each
candidate's SuspectChange is upserted by incident + pull request (a lead's verdict is kept), and unconfirmed
suspects no longer among the candidates are removed. Confirmed and rejected ones stay, ranked after the
candidates, so that a lead's decision is never lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from reviews.instruments import INCIDENTS_CORRELATED
from telemetry import conf
from telemetry.models import Deployment, Incident, SuspectChange
from telemetry.ranking import RankedChange, rank_changes
from telemetry.selectors.suspects import suspect_change_facts


@dataclass(frozen=True)
class CorrelationResult:
    suspects: int
    removed: int


def incident_correlate(*, incident_id: int, window: dt.timedelta | None = None) -> CorrelationResult | None:
    """Rank the incident's suspects; None when the incident no longer exists."""
    window = window or conf.suspect_window()
    with transaction.atomic():
        # One correlation of an incident at a time: a second waits here and then ranks the same inputs again.
        incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
        if incident is None:
            return None
        facts = suspect_change_facts(incident=incident, window=window)
        ranked = rank_changes(facts, incident_started_at=incident.started_at, window=window)
        removed = _store(incident, ranked)
        Incident.objects.filter(pk=incident.pk).update(correlated_at=timezone.now(), correlation_error="")
    INCIDENTS_CORRELATED.inc()
    return CorrelationResult(len(ranked), removed)


def _store(incident: Incident, ranked: list[RankedChange]) -> int:
    confirmed = dict(
        SuspectChange.objects.filter(incident=incident, verdict=SuspectChange.Verdict.CONFIRMED).values_list(
            "pull_request_id", "deployment_id"
        )
    )
    SuspectChange.objects.bulk_create(
        [
            SuspectChange(
                incident=incident,
                pull_request_id=change.pull_request_id,
                deployment_id=change.deployment_id,
                score=change.score,
                rank=change.rank,
                reasons=[reason.as_dict() for reason in change.reasons],
            )
            for change in ranked
        ],
        update_conflicts=True,
        unique_fields=["incident", "pull_request"],
        update_fields=["deployment", "score", "rank", "reasons"],
    )
    candidates = [change.pull_request_id for change in ranked]
    outside = SuspectChange.objects.filter(incident=incident).exclude(pull_request_id__in=candidates)
    removed, _ = outside.filter(verdict=SuspectChange.Verdict.SUSPECTED).delete()
    kept = list(outside.order_by("rank", "pk"))
    for offset, suspect in enumerate(kept, start=len(ranked) + 1):
        suspect.rank = offset
    SuspectChange.objects.bulk_update(kept, ["rank"])
    moved = {
        (confirmed[change.pull_request_id], change.deployment_id)
        for change in ranked
        if change.pull_request_id in confirmed and confirmed[change.pull_request_id] != change.deployment_id
    }
    if moved:
        _caused_incident_resync(deployment_ids={pk for pair in moved for pk in pair})
    return removed


def _caused_incident_resync(*, deployment_ids: set[int]) -> None:
    """A confirmed cause turned out to have shipped with another deployment (a late report): the failed
    deployment is the one that shipped it."""
    confirmed = SuspectChange.objects.filter(deployment=OuterRef("pk"), verdict=SuspectChange.Verdict.CONFIRMED)
    Deployment.objects.filter(pk__in=deployment_ids).update(caused_incident=Exists(confirmed))
