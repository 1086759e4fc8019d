"""What telemetry adds to the review side's pages: DORA tiles and incidents on team pages, deployments and
suspicions on pull request pages. Registered in TelemetryConfig.ready(); reviews never imports this."""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch

from reviews.models import PullRequest, Team
from reviews.sections import Section
from telemetry import conf
from telemetry.models import DeployCheck, Deployment, DeploymentChange, Incident, SuspectChange
from telemetry.selectors import risk_level_outcomes, team_dora

REVIEW_MODE_LABELS = {
    "paired": "paired",
    "one_approval": "one approval",
    "two_or_more": "two or more approvals",
    "overridden": "policy overridden",
    "unreviewed": "unreviewed",
}
INCIDENTS_SHOWN = 10
LINK_NOTES_SHOWN = 10
SUSPECTS_SHOWN = 3
RISKY_CHECKS_SHOWN = 5


def team_production_section(team: Team, since: dt.datetime, until: dt.datetime) -> Section | None:
    if not team.services.exists():
        return None
    incidents = list(
        Incident.objects.filter(services__team=team, started_at__gte=since, started_at__lt=until)
        .distinct()
        .order_by("-started_at")
        .prefetch_related(
            Prefetch(
                "suspects",
                queryset=SuspectChange.objects.select_related("pull_request__repository", "deployment").order_by(
                    "rank"
                ),
            ),
            "services",
        )[:INCIDENTS_SHOWN]
    )
    for incident in incidents:
        incident.top_suspects = list(incident.suspects.all())[:SUSPECTS_SHOWN]  # type: ignore[attr-defined]
    dora = team_dora(team=team, since=since, until=until)
    review_modes = [(REVIEW_MODE_LABELS.get(mode, mode), rate) for mode, rate in dora.cfr_by_review_mode.items()]
    # Production deployments of the period whose link is partial (merge order) or found no pull request, in words.
    link_notes = list(
        Deployment.objects.filter(
            service__team=team,
            environment__in=conf.production_environments(),
            status=Deployment.Status.SUCCESS,
            finished_at__gte=since,
            finished_at__lt=until,
        )
        .exclude(link_error="")
        .select_related("service")
        .order_by("-finished_at", "-pk")[:LINK_NOTES_SHOWN]
    )
    return Section(
        "telemetry/team_production.html",
        {"dora": dora, "incidents": incidents, "review_modes": review_modes, "link_notes": link_notes},
    )


def pull_request_production_section(pull_request: PullRequest) -> Section | None:
    shipped = list(
        DeploymentChange.objects.filter(pull_request=pull_request)
        .select_related("deployment__service")
        .order_by("deployment__finished_at")
    )
    suspicions = list(
        SuspectChange.objects.filter(pull_request=pull_request)
        .select_related("incident")
        .order_by("-incident__started_at")
    )
    if not shipped and not suspicions:
        return None
    deployments = list({change.deployment_id: change.deployment for change in shipped}.values())
    return Section("telemetry/pull_request_production.html", {"deployments": deployments, "suspicions": suspicions})


def team_deploy_risk_section(team: Team, since: dt.datetime, until: dt.datetime) -> Section | None:
    """How often deployments checked at each risk level caused an incident, and the latest risky checks."""
    if not team.services.exists():
        return None
    recent = list(
        DeployCheck.objects.filter(service__team=team, checked_at__gte=since, checked_at__lt=until)
        .exclude(level=DeployCheck.Level.LOW)
        .select_related("service")
        .order_by("-checked_at", "-pk")[:RISKY_CHECKS_SHOWN]
    )
    outcomes = risk_level_outcomes(team=team, since=since, until=until)
    return Section("telemetry/team_deploy_risk.html", {"outcomes": outcomes, "recent": recent})
