"""Deploy checks: how often each risk level went wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from reviews.models import Team
from telemetry import conf
from telemetry.models import DeployCheck, Deployment


@dataclass(frozen=True)
class RiskLevelOutcome:
    level: str  # low / medium / high, or "unchecked": deployed without a check
    deployments: int
    caused_incident: int

    @property
    def rate(self) -> float | None:
        return round(self.caused_incident / self.deployments, 4) if self.deployments else None


RISK_LEVELS = ("low", "medium", "high", "unchecked")


def risk_level_outcomes(*, team: Team, since: dt.datetime, until: dt.datetime) -> list[RiskLevelOutcome]:
    """The team's successful production deployments finished in the period, by the level of the newest deploy
    check attached to each, and how many of them caused an incident (a confirmed cause shipped with them). One
    query.
    """
    newest = DeployCheck.objects.filter(deployment=OuterRef("pk")).order_by("-checked_at", "-pk").values("level")[:1]
    rows = (
        Deployment.objects.filter(
            service__team=team,
            environment__in=conf.production_environments(),
            status=Deployment.Status.SUCCESS,
            finished_at__gte=since,
            finished_at__lt=until,
        )
        .annotate(level=Subquery(newest))
        .values("level")
        .annotate(deployments=Count("pk"), failed=Count("pk", filter=Q(caused_incident=True)))
        .values_list("level", "deployments", "failed")
    )
    found = {level or "unchecked": (total, failed) for level, total, failed in rows}
    return [RiskLevelOutcome(level, *found.get(level, (0, 0))) for level in RISK_LEVELS]


def risky_checks(*, team: Team, since: dt.datetime, until: dt.datetime, limit: int) -> list[DeployCheck]:
    """The team's deploy checks of the period that answered other than "low", newest first: for each service,
    environment and sha only its newest check (a CI job run again, or a protection rule checked again while its sha
    was not synced, is one deployment asked about, not several)."""
    newer = DeployCheck.objects.filter(
        service=OuterRef("service"), environment=OuterRef("environment"), sha=OuterRef("sha"), pk__gt=OuterRef("pk")
    )
    checks: QuerySet[DeployCheck] = (
        DeployCheck.objects.filter(service__team=team, checked_at__gte=since, checked_at__lt=until)
        .exclude(level=DeployCheck.Level.LOW)
        .exclude(Exists(newer))
        .select_related("service")
        .order_by("-checked_at", "-pk")
    )
    return list(checks[:limit])
