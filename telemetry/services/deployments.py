"""Deployments reported by CI/CD (the REST API) and by the VCS (GitHub `deployment` / `deployment_status`,
GitLab `Deployment Hook`), written to the same rows and queued for linking to what they shipped.

Which service a VCS deployment belongs to. A VCS names a repository, never a Tandem service, so:

1. the repository's services are the services linked to it (`ServiceRepository`); a repository no service links
   gets one of its own (slug from its path, the repository's team), so no deployment is lost;
2. when the environment names one of them, that one: `production/auth` or `auth/production` (GitLab
   environment folders), `auth-production` or `production-auth`; the rest of the name is the environment;
3. otherwise, when the repository has one service, that one;
4. otherwise (a monorepo deployed whole) every one of its services gets a row of its own (external id suffixed
   with the service's slug), marked `path_scoped`: linking gives each only the pull requests touching its path
   filters, and the row counts in a service's DORA figures only when it shipped one of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from reviews.access import lies_within
from reviews.integrations.records import DeploymentRecord, WebhookEvent
from reviews.models import Commit, Repository
from telemetry.models import Deployment, Service, ServiceRepository
from telemetry.services.core import deployment_upsert
from telemetry.services.enqueue import deployment_link_enqueue

FINAL_STATUSES = frozenset({"success", "failure", "error", "canceled"})


class DeploymentRejected(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class DeploymentForbidden(DeploymentRejected):
    """The caller may not write this deployment (it belongs to another team's service)."""


def deployment_report(
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
    team_ids: Collection[int] | None = None,
) -> tuple[Deployment, bool]:
    """A deployment reported over the API: created, or updated when the same source + external id comes again.

    A final status without a finish time finishes now. `team_ids` (None: any) are the teams the caller acts for:
    an external id already used by another team's deployment is refused rather than taken over.
    """
    if status in FINAL_STATUSES and finished_at is None:
        finished_at = timezone.now()
    if started_at and finished_at and finished_at < started_at:
        raise DeploymentRejected("finished_at is before started_at.", "finished_at")
    if repository is not None and not service.service_repositories.filter(repository=repository).exists():
        raise DeploymentRejected(f"{repository.full_path} is not one of {service.slug}'s repositories.", "repository")
    repository = repository or repository_for_sha(service=service, sha=sha)
    sha = full_sha(repository=repository, sha=sha)
    with transaction.atomic():
        existing = Deployment.objects.select_for_update().filter(source=source, external_id=external_id).first()
        if existing is not None and not lies_within(existing, team_ids):
            raise DeploymentForbidden(
                f"Deployment {source}:{external_id} belongs to a service you cannot write to.", "external_id"
            )
        deployment, created = deployment_upsert(
            service=service,
            source=source,
            external_id=external_id,
            environment=environment,
            sha=sha,
            status=status,
            started_at=started_at,
            finished_at=finished_at,
            repository=repository,
            ref=ref,
            url=url,
        )
        _queue_linking(deployment)
    return deployment, created


def deployments_from_webhook(repository: Repository, event: WebhookEvent) -> None:
    """The handler registered in `reviews.services.webhooks.deployment_handlers` (see TelemetryConfig.ready)."""
    for record in event.deployments:
        deployment_record_apply(repository=repository, record=record, source=event.provider)


def deployment_record_apply(*, repository: Repository, record: DeploymentRecord, source: str) -> list[Deployment]:
    """Write a VCS deployment to the rows of the services it belongs to (see the module's rule).

    Idempotent, and tolerant of disorder: a report older than the one stored (by the VCS's updated time) changes
    nothing, and the start time is the earliest one seen.
    """
    services, environment, path_scoped = deployment_services_for(repository=repository, environment=record.environment)
    written = []
    for service in services:
        external_id = f"{repository.connection_id}:{record.external_id}"
        if path_scoped:
            external_id += f":{service.slug}"
        existing = Deployment.objects.filter(source=source, external_id=external_id).first()
        if existing is not None and _is_older(record, existing):
            continue  # a late delivery of an older state
        started_at = min(filter(None, [existing.started_at if existing else None, record.created_at]))
        if record.finished_at is not None:
            started_at = min(started_at, record.finished_at)
        deployment, _ = deployment_upsert(
            service=service,
            source=source,
            external_id=external_id,
            environment=environment,
            sha=record.sha,
            status=record.status,
            started_at=started_at,
            finished_at=record.finished_at,
            repository=repository,
            ref=record.ref or (existing.ref if existing else ""),
            url=record.url or (existing.url if existing else ""),
            source_updated_at=record.updated_at,
            path_scoped=path_scoped,
        )
        _queue_linking(deployment)
        written.append(deployment)
    return written


def _is_older(record: DeploymentRecord, existing: Deployment) -> bool:
    stored = existing.source_updated_at
    if stored is None:
        return False
    # At the same moment, a final status outranks one that is still under way.
    return record.updated_at < stored or (
        record.updated_at == stored and existing.status in FINAL_STATUSES and record.status not in FINAL_STATUSES
    )


def deployment_services_for(*, repository: Repository, environment: str) -> tuple[list[Service], str, bool]:
    """The services a deployment of `repository` to `environment` belongs to, the environment's own name, and
    whether the rows are path-scoped (a monorepo deployed whole)."""
    environment = environment.strip().lower()
    services = [
        link.service
        for link in ServiceRepository.objects.filter(repository=repository)
        .select_related("service")
        .order_by("service__slug")
    ]
    if not services:
        return [_service_of_its_own(repository)], environment, False
    named = _named_by_environment(environment, services)
    if named is not None:
        return [named[0]], named[1], False
    if len(services) == 1:
        return services, environment, False
    return services, environment, True


def _named_by_environment(environment: str, services: Sequence[Service]) -> tuple[Service, str] | None:
    # Longest slug first: "auth-admin" must not be read as "auth".
    for service in sorted(services, key=lambda s: (-len(s.slug), s.slug)):
        slug = service.slug.lower()
        parts = environment.split("/")
        if len(parts) > 1 and slug in parts:
            return service, "/".join(part for part in parts if part != slug)
        if environment.startswith(f"{slug}-") and len(environment) > len(slug) + 1:
            return service, environment[len(slug) + 1 :]
        if environment.endswith(f"-{slug}") and len(environment) > len(slug) + 1:
            return service, environment[: -len(slug) - 1]
    return None


def _service_of_its_own(repository: Repository) -> Service:
    base = slugify(repository.full_path.replace("/", "-"))[:40] or f"repository-{repository.pk}"
    taken = Service.objects.filter(slug=base).exclude(service_repositories__repository=repository).exists()
    slug = f"{base}-{repository.pk}" if taken else base
    service, _ = Service.objects.get_or_create(
        slug=slug, defaults={"name": repository.full_path, "team": repository.team}
    )
    ServiceRepository.objects.get_or_create(service=service, repository=repository)
    return service


def repository_for_sha(*, service: Service, sha: str) -> Repository | None:
    """The service's repository a deployment of `sha` comes from: its only one, or the one holding the commit."""
    repositories = list(service.repositories.select_related("connection").order_by("pk"))
    if len(repositories) == 1:
        return repositories[0]
    if not repositories or not sha:
        return None
    holders = list(
        Commit.objects.filter(repository__in=repositories, sha__startswith=sha.lower())
        .values_list("repository_id", flat=True)
        .distinct()[:2]
    )
    if len(holders) != 1:
        return None
    return next(r for r in repositories if r.pk == holders[0])


def full_sha(*, repository: Repository | None, sha: str) -> str:
    """An abbreviated sha made whole when the repository has exactly one commit it can stand for."""
    sha = sha.strip().lower()
    if repository is None or len(sha) >= 40:
        return sha
    found = list(Commit.objects.filter(repository=repository, sha__startswith=sha).values_list("sha", flat=True)[:2])
    return found[0] if len(found) == 1 else sha


def _queue_linking(deployment: Deployment) -> None:
    # A successful deployment is linked; one that stopped being successful has its links taken away.
    if deployment.status == Deployment.Status.SUCCESS or deployment.changes_linked_at is not None:
        deployment_link_enqueue(deployment_id=deployment.pk)
