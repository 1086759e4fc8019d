"""The production side of the demo: services, deployments and incidents over the demo's pull requests."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from django.db import transaction

from reviews.demo import DAYS
from reviews.models import PullRequest, Repository, Team
from telemetry.models import Deployment, Incident, Service, SuspectChange
from telemetry.services import deployment_upsert, incident_upsert, service_upsert
from telemetry.services.correlation import incident_correlate
from telemetry.services.linking import deployment_changes_link
from telemetry.services.suspects import suspect_confirm

# slug, name, team, repository, path filters
SERVICES = [
    ("payments-api", "Payments API", "payments", "acme/payments-api", ()),
    ("auth", "Auth", "platform", "acme/platform", ("services/auth/**",)),
    ("billing", "Billing", "platform", "acme/platform", ("services/billing/**", "deploy/**")),
    ("web", "Web", "platform", "acme/web", ()),
    ("mobile-app", "Mobile app", "mobile", "acme/mobile-app", ()),
]
INCIDENT_TITLES = {
    "payments-api": ["Elevated 5xx on checkout", "Double charges on retried payments", "Ledger totals off by a cent"],
    "auth": ["Login failures for SSO users", "Session tokens expiring early", "Password reset emails delayed"],
    "billing": ["Invoices rendered with wrong totals", "Billing run stuck", "Webhook backlog growing"],
    "web": ["Slow page loads on dashboard", "Blank page on Safari", "Search results empty"],
    "mobile-app": ["Crash on app start (Android 14)", "Push notifications not delivered", "Checkout button disabled"],
}


def seed_telemetry(*, anchor: dt.datetime, rng: random.Random, progress: Callable[[str], None]) -> dict[str, int]:
    """Deployments first, linked to what they shipped; the incidents after them, each ranked once. (Incidents
    written first were ranked again after every deployment linked in the window before them.)"""
    deployments = incidents = 0
    with transaction.atomic():
        services = []
        for slug, name, team_slug, repo_path, paths in SERVICES:
            repository = Repository.objects.get(full_path=repo_path, connection__name__endswith="(demo)")
            service = service_upsert(
                slug=slug, name=name, team=Team.objects.get(slug=team_slug), repositories=[(repository, paths)]
            )
            deployed = _seed_deployments(service, repository, anchor, random.Random(rng.random()))
            deployments += len(deployed)
            services.append((service, deployed, random.Random(rng.random())))
        progress(f"links of {deployments} deployments to the changes they shipped")
        _link_deployments()
        progress("incidents and their suspect changes")
        for service, deployed, incident_rng in services:
            incidents += _seed_incidents(service, deployed, incident_rng)
        _rank_suspects()
    return {"deployments": deployments, "incidents": incidents}


def _link_deployments() -> None:
    """What the Celery job would do, inline and without the VCS: link every deployment, oldest first."""
    successful = Deployment.objects.filter(source="demo", status=Deployment.Status.SUCCESS)
    for deployment_id in successful.order_by("finished_at", "pk").values_list("pk", flat=True):
        deployment_changes_link(deployment_id=deployment_id, allow_vcs=False)


def _rank_suspects() -> None:
    """Rank every incident's suspects, and confirm the top suspect of each service's first incident (so that the
    change failure rate and the notices have something to show)."""
    confirmed_services: set[int] = set()
    for incident in Incident.objects.filter(source="demo").order_by("started_at", "pk").prefetch_related("services"):
        incident_correlate(incident_id=incident.pk)
        top = SuspectChange.objects.filter(incident=incident).order_by("rank", "pk").first()
        service_ids = {service.pk for service in incident.services.all()}
        if top is not None and not service_ids & confirmed_services:
            suspect_confirm(suspect=top, decided_by=None)
            confirmed_services |= service_ids


def _seed_deployments(
    service: Service, repository: Repository, anchor: dt.datetime, rng: random.Random
) -> list[dt.datetime]:
    """Weekday production deployments (a staging one before each) of whatever was merged by then."""
    merges = list(
        PullRequest.objects.filter(repository=repository, state=PullRequest.State.MERGED)
        .order_by("merged_at")
        .values_list("merged_at", "merge_commit_sha")
    )
    finished_times: list[dt.datetime] = []
    day = anchor - dt.timedelta(days=DAYS)
    index = 0
    while day < anchor:
        per_day = 0 if day.weekday() >= 5 else rng.choice([0, 1, 1, 2])
        for slot in range(per_day):
            started = day + dt.timedelta(hours=10 + slot * 5, minutes=rng.randint(0, 50))
            shipped = [sha for merged_at, sha in merges if merged_at is not None and merged_at <= started]
            if not shipped:
                continue
            failed = rng.random() < 0.05
            finished = started + dt.timedelta(minutes=rng.randint(4, 25))
            for environment in ("staging", "production"):
                index += 1
                deployment_upsert(
                    service=service,
                    source="demo",
                    external_id=f"{service.slug}-{index}",
                    environment=environment,
                    sha=shipped[-1],
                    status="failure" if failed and environment == "production" else "success",
                    started_at=started - dt.timedelta(minutes=30) if environment == "staging" else started,
                    finished_at=finished - dt.timedelta(minutes=30) if environment == "staging" else finished,
                    repository=repository,
                    ref="main",
                )
            if not failed:
                finished_times.append(finished)
        day += dt.timedelta(days=1)
    return finished_times


def _seed_incidents(service: Service, deployed: list[dt.datetime], rng: random.Random) -> int:
    """Two or three incidents per service, each starting a little after one of its deployments."""
    count = rng.randint(2, 3)
    for index, finished in enumerate(sorted(rng.sample(deployed, k=min(count, len(deployed))))):
        started = finished + dt.timedelta(hours=rng.uniform(0.2, 20))
        resolved = started + dt.timedelta(hours=rng.uniform(0.3, 8))
        incident_upsert(
            source="demo",
            external_id=f"{service.slug}-incident-{index}",
            title=rng.choice(INCIDENT_TITLES[service.slug]),
            severity=rng.choice([Incident.Severity.SEV1, Incident.Severity.SEV2, Incident.Severity.SEV3]),
            status=Incident.Status.RESOLVED,
            started_at=started,
            detected_at=started + dt.timedelta(minutes=rng.randint(2, 30)),
            acknowledged_at=started + dt.timedelta(minutes=rng.randint(5, 40)),
            resolved_at=resolved,
            services=[service],
        )
    return count
