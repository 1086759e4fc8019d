"""What telemetry adds to the review side's pages: DORA tiles and incidents on team pages, deployments and
suspicions on pull request pages. Registered in TelemetryConfig.ready(); reviews never imports this."""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils.safestring import SafeString

from reviews.charts import bar_chart
from reviews.models import PullRequest
from reviews.sections import Section, TimelineEvent
from reviews.selectors.pairing import COMMIT_LEAD_TIME
from reviews.selectors.scope import Scope
from reviews.team_charts import week_bars, weeks_axis
from telemetry import conf
from telemetry.alert_selectors import RECENTLY_CLOSED_SHOWN, alerts_evidence, team_alerts, team_figure_status
from telemetry.models import Deployment, DeploymentChange, Incident, Service, SuspectChange
from telemetry.selectors.deploy_risk import risk_level_outcomes, risky_checks
from telemetry.selectors.dora import DoraReport, services_dora

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


def team_production_section(scope: Scope) -> Section | None:
    """DORA is per service: of the page's filters only the repository applies (the services built from the chosen
    repositories); the others are named on the page as not applied."""
    team, since, until = scope.team, scope.since, scope.until
    services = Service.objects.filter(team=team)
    if scope.repositories:
        services = services.filter(repositories__in=scope.repositories).distinct()
    services_list = list(services.order_by("slug"))
    if not services_list:
        return None
    incidents = list(
        Incident.objects.filter(services__in=services_list, started_at__gte=since, started_at__lt=until)
        .distinct()
        .order_by("-started_at")
        .prefetch_related(
            Prefetch(
                "suspects",
                queryset=SuspectChange.objects.select_related(
                    "pull_request__repository", "deployment__service"
                ).order_by("rank"),
            ),
            "services",
        )[:INCIDENTS_SHOWN]
    )
    for incident in incidents:
        incident.top_suspects = list(incident.suspects.all())[:SUSPECTS_SHOWN]  # type: ignore[attr-defined]
    dora = services_dora(services=services_list, since=since, until=until)
    review_modes = [(REVIEW_MODE_LABELS.get(mode, mode), rate) for mode, rate in dora.cfr_by_review_mode.items()]
    # Production deployments of the period whose link is partial (merge order) or found no pull request, in words.
    link_notes = list(
        Deployment.objects.filter(
            service__in=services_list,
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
        {
            "dora": dora,
            "incidents": incidents,
            "review_modes": review_modes,
            "link_notes": link_notes,
            "services": services_list,
            "repository_filtered": bool(scope.repositories),
            "filters_not_applied": bool(scope.authors or scope.author_team or scope.labels or scope.size_bucket),
            "charts": dora_charts(dora),
            "pairing_lead_minutes": int(COMMIT_LEAD_TIME.total_seconds() // 60),
        },
    )


def dora_charts(dora: DoraReport) -> list[SafeString]:
    """The four keys per week of the period."""
    axis = weeks_axis(dora.weekly, what="deployment")
    return [
        bar_chart(
            week_bars(dora.weekly, "deployments"),
            title="Production deployments per week",
            x_label=axis,
            y_label="Deployments",
        ),
        bar_chart(
            week_bars(dora.weekly, "lead_time"),
            title="Median lead time for changes per week",
            x_label=axis,
            y_label="Lead time",
            unit=" h",
        ),
        bar_chart(
            week_bars(dora.weekly, "change_failure_rate"),
            title="Change failure rate per week",
            x_label=axis,
            y_label="Failed deployments",
            unit="%",
        ),
        bar_chart(
            week_bars(dora.weekly, "time_to_restore"),
            title="Median time to restore per week",
            x_label=weeks_axis(dora.weekly, what="resolution"),
            y_label="Time to restore",
            unit=" h",
        ),
    ]


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
    timeline = [
        TimelineEvent(
            deployment.finished_at or deployment.started_at or deployment.created_at,
            "deployed",
            f"Deployed to {deployment.service} {deployment.environment}: {deployment.get_status_display().lower()}",
            deployment.url,
        )
        for deployment in deployments
    ] + [
        TimelineEvent(
            suspect.incident.started_at,
            "incident",
            f"Incident “{suspect.incident.title}” started; this change is suspect #{suspect.rank} "
            f"({suspect.get_verdict_display().lower()})",
            suspect.incident.url,
        )
        for suspect in suspicions
    ]
    return Section(
        "telemetry/pull_request_production.html",
        {"deployments": deployments, "suspicions": suspicions},
        timeline=tuple(timeline),
    )


def team_alerts_section(scope: Scope) -> Section | None:
    """Open alerts with their evidence, the latest closed ones, and where each figure stands (or "not enough
    history"). Its own bounded queries, whatever the number of alerts. Alerts are the team's whole, whatever the
    page's period and filters."""
    team = scope.team
    alerts = list(team_alerts(team=team, open_only=True))
    closed = list(team_alerts(team=team).exclude(closed_at=None)[:RECENTLY_CLOSED_SHOWN])
    evidence = alerts_evidence(alerts + closed)
    return Section(
        "telemetry/team_alerts.html",
        {
            "alerts": [(alert, evidence[alert.pk]) for alert in alerts],
            "closed": closed,
            "statuses": team_figure_status(team=team),
        },
    )


def team_deploy_risk_section(scope: Scope) -> Section | None:
    """How often deployments checked at each risk level caused an incident, and the latest risky checks (the team's
    whole: of the page's filters only the period applies)."""
    team, since, until = scope.team, scope.since, scope.until
    if not team.services.exists():
        return None
    recent = risky_checks(team=team, since=since, until=until, limit=RISKY_CHECKS_SHOWN)
    outcomes = risk_level_outcomes(team=team, since=since, until=until)
    return Section("telemetry/team_deploy_risk.html", {"outcomes": outcomes, "recent": recent})
