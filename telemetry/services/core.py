"""Writes for production's side: services, deployments and incidents.

Idempotent by source + external id, so a retried report from CI/CD or an incident tool updates the row
it created the first time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from django.db import transaction

from reviews.access import rows_within
from reviews.models import Repository, Team
from telemetry.models import Deployment, Incident, Service, ServiceRepository


def service_upsert(
    *,
    slug: str,
    name: str,
    team: Team | None,
    repositories: Sequence[tuple[Repository, Sequence[str]]] = (),
) -> Service:
    """A service and the repositories (with path filters) it is built from."""
    with transaction.atomic():
        service, _ = Service.objects.update_or_create(slug=slug, defaults={"name": name, "team": team})
        for repository, path_filters in repositories:
            ServiceRepository.objects.update_or_create(
                service=service, repository=repository, defaults={"path_filters": list(path_filters)}
            )
    return service


def deployment_upsert(
    *,
    service: Service,
    source: str,
    external_id: str,
    environment: str,
    sha: str,
    status: str,
    started_at: dt.datetime | None = None,
    finished_at: dt.datetime | None = None,
    repository: Repository | None = None,
    ref: str = "",
    url: str = "",
    source_updated_at: dt.datetime | None = None,
    path_scoped: bool = False,
) -> tuple[Deployment, bool]:
    """Create or update a deployment (environment names are stored lower-case). Returns it and whether it was
    created."""
    if started_at and finished_at and finished_at < started_at:
        raise ValueError("finished_at is before started_at")
    deployment, created = Deployment.objects.update_or_create(
        source=source,
        external_id=external_id,
        defaults={
            "service": service,
            "environment": environment.strip().lower(),
            "sha": sha,
            "status": status,
            "started_at": started_at,
            "finished_at": finished_at,
            "repository": repository,
            "ref": ref,
            "url": url,
            "source_updated_at": source_updated_at,
            "path_scoped": path_scoped,
        },
    )
    from telemetry.services.deploy_check import checks_attach  # it imports linking, which imports this module

    checks_attach(deployment=deployment)
    return deployment, created


def incident_upsert(
    *,
    source: str,
    external_id: str,
    title: str,
    severity: str,
    status: str,
    started_at: dt.datetime,
    services: Sequence[Service],
    detected_at: dt.datetime | None = None,
    acknowledged_at: dt.datetime | None = None,
    resolved_at: dt.datetime | None = None,
    url: str = "",
    source_updated_at: dt.datetime | None = None,
    team_ids: Collection[int] | None = None,
) -> tuple[Incident, bool]:
    """Create or update an incident and set its services (a caller scoped to `team_ids` sets only those teams'
    services, see `incident_services_set`). Returns it and whether it was created."""
    if resolved_at and resolved_at < started_at:
        raise ValueError("resolved_at is before started_at")
    with transaction.atomic():
        incident, created = Incident.objects.update_or_create(
            source=source,
            external_id=external_id,
            defaults={
                "title": title,
                "severity": severity,
                "status": status,
                "started_at": started_at,
                "detected_at": detected_at,
                "acknowledged_at": acknowledged_at,
                "resolved_at": resolved_at,
                "url": url,
                "source_updated_at": source_updated_at,
            },
        )
        incident_services_set(incident=incident, services=services, team_ids=team_ids)
    return incident, created


def incident_services_set(
    *, incident: Incident, services: Sequence[Service], team_ids: Collection[int] | None = None
) -> None:
    """Link the incident to these services. A caller scoped to teams replaces only the services of its teams:
    links to services outside them belong to other teams, which would lose sight of the incident."""
    kept: list[Service] = []
    if team_ids is not None:
        kept = list(incident.services.exclude(pk__in=rows_within(Service.objects.all(), team_ids)))
    incident.services.set([*services, *kept])
