"""Reads for production's side, one module per concern; every public name is re-exported here.

- visible: what a caller may see (services, teams, deployments, incidents, suspects), scoped by `reviews.access`.
- suspects: the facts one incident's candidate changes are ranked on.
- dora: DORA metrics of a team or of services over a period, and the rows they count.
- deploy_risk: how often each deploy-check risk level went wrong.
- notices: one person's notices.
- repair: work whose task never ran, for the sweep.

Every selector runs a bounded number of queries, whatever the history's size.

"""

from telemetry.selectors.deploy_risk import RISK_LEVELS, RiskLevelOutcome, risk_level_outcomes
from telemetry.selectors.dora import (
    BANDS,
    REVIEW_MODES,
    ChangeFailureRate,
    DeploymentFrequency,
    DoraReport,
    LeadTime,
    RestoredIncident,
    ReviewModeRate,
    TimeToRestore,
    counted_deployments,
    frequency_band,
    restored_incidents,
    service_dora,
    services_dora,
    team_dora,
)
from telemetry.selectors.notices import notifications_of, notifications_unread_count
from telemetry.selectors.repair import deployments_awaiting_link, incidents_awaiting_correlation
from telemetry.selectors.suspects import PULL_REQUEST_FIELDS, suspect_change_facts
from telemetry.selectors.visible import (
    TeamIds,
    deployment_list,
    incident_get,
    incident_list,
    services_visible,
    suspect_get,
    suspect_list,
    teams_visible,
)

__all__ = [
    "BANDS",
    "PULL_REQUEST_FIELDS",
    "REVIEW_MODES",
    "RISK_LEVELS",
    "ChangeFailureRate",
    "DeploymentFrequency",
    "DoraReport",
    "LeadTime",
    "RestoredIncident",
    "ReviewModeRate",
    "RiskLevelOutcome",
    "TeamIds",
    "TimeToRestore",
    "counted_deployments",
    "deployment_list",
    "deployments_awaiting_link",
    "frequency_band",
    "incident_get",
    "incident_list",
    "incidents_awaiting_correlation",
    "notifications_of",
    "notifications_unread_count",
    "restored_incidents",
    "risk_level_outcomes",
    "service_dora",
    "services_dora",
    "services_visible",
    "suspect_change_facts",
    "suspect_get",
    "suspect_list",
    "team_dora",
    "teams_visible",
]
