"""What a caller may see on production's side: services, teams, deployments, incidents, suspects, each
list restricted to the caller's teams (`reviews.access`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from django.db.models import Q, QuerySet

from reviews.access import rows_within, teams_of
from reviews.models import Team
from telemetry.models import Deployment, Incident, Service, SuspectChange

TeamIds = Collection[int] | None  # None: every team (a superuser); which teams: `reviews.access`


def services_visible(*, team_ids: TeamIds) -> QuerySet[Service]:
    return rows_within(Service.objects.select_related("team"), team_ids)


def teams_visible(*, team_ids: TeamIds) -> QuerySet[Team]:
    return teams_of(team_ids)


def deployment_list(
    *,
    team_ids: TeamIds,
    service: str = "",
    team: str = "",
    environment: str = "",
    status: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[Deployment]:
    deployments = rows_within(Deployment.objects.select_related("service", "repository"), team_ids)
    if service:
        deployments = deployments.filter(service__slug=service)
    if team:
        deployments = deployments.filter(service__team__slug=team)
    if environment:
        deployments = deployments.filter(environment=environment.strip().lower())
    if status:
        deployments = deployments.filter(status=status)
    if since:
        deployments = deployments.filter(finished_at__gte=since)
    if until:
        deployments = deployments.filter(finished_at__lt=until)
    return deployments.order_by("-finished_at", "-pk")


def incident_list(
    *,
    team_ids: TeamIds,
    service: str = "",
    team: str = "",
    status: str = "",
    source: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[Incident]:
    incidents = rows_within(Incident.objects.prefetch_related("services"), team_ids)
    if service:
        incidents = incidents.filter(pk__in=_incident_ids_of(Q(service__slug=service)))
    if team:
        incidents = incidents.filter(pk__in=_incident_ids_of(Q(service__team__slug=team)))
    if status:
        incidents = incidents.filter(status=status)
    if source:
        incidents = incidents.filter(source=source)
    if since:
        incidents = incidents.filter(started_at__gte=since)
    if until:
        incidents = incidents.filter(started_at__lt=until)
    return incidents.order_by("-started_at", "-pk")


def _incident_ids_of(where: Q) -> QuerySet[Any, Any]:
    return Incident.services.through.objects.filter(where).values("incident_id")


def incident_get(*, incident_id: int, team_ids: TeamIds) -> Incident | None:
    return incident_list(team_ids=team_ids).filter(pk=incident_id).first()


def suspect_list(
    *,
    team_ids: TeamIds,
    incident: int | None = None,
    verdict: str = "",
    service: str = "",
    team: str = "",
) -> QuerySet[SuspectChange]:
    suspects = rows_within(
        SuspectChange.objects.select_related(
            "incident", "deployment__service", "pull_request__repository", "pull_request__author", "decided_by"
        ),
        team_ids,
    )
    if incident is not None:
        suspects = suspects.filter(incident_id=incident)
    if verdict:
        suspects = suspects.filter(verdict=verdict)
    if service:
        suspects = suspects.filter(deployment__service__slug=service)
    if team:
        suspects = suspects.filter(deployment__service__team__slug=team)
    return suspects.order_by("-incident__started_at", "incident_id", "rank", "pk")


def suspect_get(*, suspect_id: int, team_ids: TeamIds) -> SuspectChange | None:
    return suspect_list(team_ids=team_ids).filter(pk=suspect_id).first()
