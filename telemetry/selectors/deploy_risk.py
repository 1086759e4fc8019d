"""Deploy checks: how often each risk level went wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, Subquery

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
