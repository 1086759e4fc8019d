"""`/api/v1/`: the REST API of production's side."""

from __future__ import annotations

from django.urls import include, path

from telemetry.api.alerts import AlertAcknowledgeView, TeamAlertsView
from telemetry.api.evidence import EvidenceView
from telemetry.api.production import (
    DeployCheckView,
    DeploymentsView,
    IncidentsView,
    IncidentView,
    ServiceDoraView,
    SuspectsView,
    SuspectVerdictView,
    TeamDeployRiskView,
    TeamDoraView,
)

urlpatterns = [
    path("evidence", EvidenceView.as_view(), name="evidence"),
    path("deployments", DeploymentsView.as_view(), name="deployments"),
    path("deployments/check", DeployCheckView.as_view(), name="deployment-check"),
    path("incidents", IncidentsView.as_view(), name="incidents"),
    path("incidents/<int:pk>", IncidentView.as_view(), name="incident"),
    path("suspects", SuspectsView.as_view(), name="suspects"),
    path("suspects/<int:pk>/confirm", SuspectVerdictView.as_view(verdict="confirm"), name="suspect-confirm"),
    path("suspects/<int:pk>/reject", SuspectVerdictView.as_view(verdict="reject"), name="suspect-reject"),
    path("teams/<slug:slug>/dora", TeamDoraView.as_view(), name="team-dora"),
    path("teams/<slug:slug>/alerts", TeamAlertsView.as_view(), name="team-alerts"),
    path(
        "teams/<slug:slug>/alerts/<int:pk>/acknowledge", AlertAcknowledgeView.as_view(), name="team-alert-acknowledge"
    ),
    path("teams/<slug:slug>/deploy-risk", TeamDeployRiskView.as_view(), name="team-deploy-risk"),
    path("services/<slug:slug>/dora", ServiceDoraView.as_view(), name="service-dora"),
    path("", include("telemetry.api.notices")),
]
