"""Reads of a team's alerts: the alerts with their evidence named, and where each figure stands now (drifting,
normal, or not enough history). A fixed number of queries whatever the number of alerts or the history's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from reviews.models import PullRequest, Team
from telemetry.daily_figures import local_day, teams_with_services
from telemetry.drift import FIGURES, Assessment, FigureSpec, assess
from telemetry.models import Deployment, Incident, TeamAlert
from telemetry.services.alerts import (
    PRODUCTION_FIGURES,
    format_value,
    history_start,
    sensitivity_of,
    stored_series,
    team_settings,
)

RECENTLY_CLOSED_SHOWN = 5


@dataclass(frozen=True)
class EvidenceRow:
    kind: str
    id: int
    value: float
    label: str
    url: str


@dataclass(frozen=True)
class FigureStatus:
    spec: FigureSpec
    assessment: Assessment

    @property
    def words(self) -> str:
        latest = self.assessment.latest
        if self.assessment.state == "not_enough_history":
            return "not enough history"
        if latest is None:
            return self.assessment.state
        return (
            f"{format_value(self.spec, self.assessment.value)} against a usual "
            f"{format_value(self.spec, latest.baseline)} ({latest.departure:.1f} deviations)"
        )


def team_alerts(*, team: Team, open_only: bool = False) -> QuerySet[TeamAlert]:
    alerts = TeamAlert.objects.filter(team=team).select_related("team", "acknowledged_by", "acknowledged_by_token")
    if open_only:
        alerts = alerts.filter(closed_at=None)
    return alerts.order_by("-opened_at", "-pk")


def alerts_evidence(alerts: list[TeamAlert]) -> dict[int, list[EvidenceRow]]:
    """Each alert's evidence, named: three queries at most, whatever the number of alerts."""
    wanted: dict[str, set[int]] = {"pull_request": set(), "deployment": set(), "incident": set()}
    for alert in alerts:
        wanted.setdefault(alert.evidence_kind, set()).update(int(item_id) for item_id, _ in alert.evidence)
    labels: dict[tuple[str, int], tuple[str, str]] = {}
    if wanted["pull_request"]:
        for pr in PullRequest.objects.filter(pk__in=wanted["pull_request"]).select_related("repository"):
            labels[("pull_request", pr.pk)] = (f"{pr.repository.full_path}#{pr.number} {pr.title}", f"/pulls/{pr.pk}/")
    if wanted["deployment"]:
        for deployment in Deployment.objects.filter(pk__in=wanted["deployment"]).select_related("service"):
            when = timezone.localtime(deployment.finished_at) if deployment.finished_at else None
            labels[("deployment", deployment.pk)] = (
                f"{deployment.service.slug} {deployment.sha[:12]} {when:%Y-%m-%d %H:%M}" if when else str(deployment),
                deployment.url,
            )
    if wanted["incident"]:
        for incident in Incident.objects.filter(pk__in=wanted["incident"]):
            labels[("incident", incident.pk)] = (incident.title, incident.url)
    return {
        alert.pk: [
            EvidenceRow(alert.evidence_kind, int(item_id), float(value), *labels.get(
                (alert.evidence_kind, int(item_id)), (f"{alert.evidence_kind} {item_id} (gone)", "")
            ))
            for item_id, value in alert.evidence
        ]
        for alert in alerts
    }  # fmt: skip


def team_figure_status(*, team: Team, now: dt.datetime | None = None) -> list[FigureStatus]:
    """Where each figure stands on the samples the last alerting run stored (one query for them)."""
    now = now or timezone.now()
    last_day = local_day(now) - dt.timedelta(days=1)
    settings = team_settings([team.pk])[team.pk]
    series = stored_series(team_ids=[team.pk], first_day=history_start(last_day, [settings]))
    producing = bool(teams_with_services([team.pk]))
    return [
        FigureStatus(
            spec,
            assess(spec, series.get((team.pk, spec.name), {}), last_day=last_day, sensitivity=sensitivity_of(settings)),
        )
        for spec in FIGURES
        if producing or spec.name not in PRODUCTION_FIGURES
    ]


def alert_json(alert: TeamAlert, evidence: list[EvidenceRow]) -> dict[str, Any]:
    spec = next(spec for spec in FIGURES if spec.name == alert.figure)
    return {
        "id": alert.pk,
        "team": alert.team.slug,
        "figure": alert.figure,
        "label": spec.label,
        "unit": spec.unit or ("share" if spec.kind == "share" else ""),
        "direction": alert.direction,
        "open": alert.closed_at is None,
        "opened_at": alert.opened_at.isoformat(),
        "first_day": alert.first_day.isoformat(),
        "last_day": alert.last_day.isoformat(),
        "value": alert.value,
        "baseline": alert.baseline,
        "change": round(alert.value - alert.baseline, 4),
        "change_ratio": round(alert.value / alert.baseline, 3) if alert.baseline else None,
        "scale": alert.scale,
        "departure": alert.departure,
        "samples": alert.samples,
        "threshold": {"deviations": alert.deviations, "sustained_days": alert.sustained_days},
        "days": alert.days,
        "evidence": [{"kind": row.kind, "id": row.id, "value": row.value, "label": row.label} for row in evidence],
        "closed_at": alert.closed_at.isoformat() if alert.closed_at else None,
        "recovered": alert.recovered,
        "closing_value": alert.closing_value,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": (
            alert.acknowledged_by.display_name
            if alert.acknowledged_by
            else f"token {alert.acknowledged_by_token.name}"
            if alert.acknowledged_by_token
            else None
        ),
        "chat_notified_at": alert.chat_notified_at.isoformat() if alert.chat_notified_at else None,
    }
