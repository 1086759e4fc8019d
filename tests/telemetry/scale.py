"""A long history of one service written fast with bulk_create: for the query-count test and bench/correlation.py.

Each deployment ships its own merged pull requests (two changed files, an approval, a comment each); every
`confirmed_every`-th deployment has an incident whose first pull request is a confirmed cause, so that the "files
touched in earlier confirmed incidents" factor has a history to search too.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence

from reviews.models import ChangedFile, Comment, Person, PullRequest, Repository, Review
from telemetry.models import Deployment, DeploymentChange, Incident, Service, SuspectChange

BATCH = 5000


def build_history(
    *,
    service: Service,
    repository: Repository,
    people: Sequence[Person],
    deployments: int,
    pull_requests_per_deployment: int,
    end: dt.datetime,
    spacing: dt.timedelta,
    first_number: int = 1,
    confirmed_every: int = 50,
    seed: int = 7,
) -> int:
    """Write the history; returns the next free pull request number."""
    rng = random.Random(seed)
    start = end - spacing * deployments
    rows = [
        Deployment(
            service=service,
            environment="production",
            repository=repository,
            sha=f"{first_number + index:040x}",
            status=Deployment.Status.SUCCESS,
            source="bench",
            external_id=f"{service.slug}-{first_number}-{index}",
            started_at=start + spacing * index - dt.timedelta(minutes=10),
            finished_at=start + spacing * index,
            changes_linked_at=start + spacing * index,
            link_method="graph",
        )
        for index in range(deployments)
    ]
    Deployment.objects.bulk_create(rows, batch_size=BATCH)
    pulls: list[PullRequest] = []
    shipped_by: list[Deployment] = []
    number = first_number
    for deployment in rows:
        for _ in range(pull_requests_per_deployment):
            assert deployment.finished_at is not None
            merged = deployment.finished_at - dt.timedelta(minutes=rng.randint(20, 600))
            author = people[rng.randrange(len(people))]
            pulls.append(
                PullRequest(
                    repository=repository,
                    number=number,
                    title=f"Change {number}",
                    author=author,
                    merged_by=author if rng.random() < 0.2 else None,
                    state=PullRequest.State.MERGED,
                    base_ref="main",
                    head_sha=f"{number:039x}b",
                    merge_commit_sha=f"{number:039x}m",
                    additions=rng.randint(1, 400),
                    deletions=rng.randint(0, 100),
                    changed_files=2,
                    created_at=merged - dt.timedelta(hours=rng.randint(2, 48)),
                    updated_at=merged,
                    ready_at=merged - dt.timedelta(hours=rng.randint(1, 24)),
                    first_commit_at=merged - dt.timedelta(hours=rng.randint(24, 72)),
                    merged_at=merged,
                )
            )
            shipped_by.append(deployment)
            number += 1
    PullRequest.objects.bulk_create(pulls, batch_size=BATCH)
    ChangedFile.objects.bulk_create(
        [
            ChangedFile(pull_request=pull, path=path, additions=5)
            for pull in pulls
            for path in (f"src/module_{pull.number % 300}.py", f"tests/test_{pull.number % 500}.py")
        ],
        batch_size=BATCH,
    )
    Review.objects.bulk_create(
        [
            Review(
                pull_request=pull,
                external_id="1",
                reviewer=people[(people.index(pull.author) + 1) % len(people)] if pull.author else people[0],
                state=Review.State.APPROVED,
                commit_sha=pull.head_sha,
                submitted_at=pull.merged_at - dt.timedelta(minutes=30),
            )
            for pull in pulls
            if pull.merged_at
        ],
        batch_size=BATCH,
    )
    Comment.objects.bulk_create(
        [
            Comment(
                pull_request=pull,
                external_id="1",
                author=people[(people.index(pull.author) + 2) % len(people)] if pull.author else people[0],
                body="Why this way?",
                created_at=pull.merged_at - dt.timedelta(minutes=45),
            )
            for pull in pulls
            if pull.merged_at
        ],
        batch_size=BATCH,
    )
    DeploymentChange.objects.bulk_create(
        [
            DeploymentChange(deployment=deployment, pull_request=pull)
            for pull, deployment in zip(pulls, shipped_by, strict=True)
        ],
        batch_size=BATCH,
    )
    _confirmed_incidents(service, rows, pulls, pull_requests_per_deployment, confirmed_every)
    return number


def _confirmed_incidents(
    service: Service, rows: list[Deployment], pulls: list[PullRequest], per_deployment: int, every: int
) -> None:
    incidents, suspects = [], []
    for index in range(0, len(rows), every):
        deployment = rows[index]
        assert deployment.finished_at is not None
        incidents.append(
            Incident(
                title=f"Outage {deployment.external_id}",
                source="bench",
                external_id=deployment.external_id,
                status=Incident.Status.RESOLVED,
                started_at=deployment.finished_at + dt.timedelta(hours=1),
                resolved_at=deployment.finished_at + dt.timedelta(hours=2),
            )
        )
    Incident.objects.bulk_create(incidents, batch_size=BATCH)
    Incident.services.through.objects.bulk_create(
        [Incident.services.through(incident_id=incident.pk, service_id=service.pk) for incident in incidents],
        batch_size=BATCH,
    )
    for offset, incident in enumerate(incidents):
        index = offset * every
        suspects.append(
            SuspectChange(
                incident=incident,
                deployment=rows[index],
                pull_request=pulls[index * per_deployment],
                score=60,
                rank=1,
                verdict=SuspectChange.Verdict.CONFIRMED,
            )
        )
    SuspectChange.objects.bulk_create(suspects, batch_size=BATCH)
