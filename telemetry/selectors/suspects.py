"""Suspects: the facts one incident's candidate changes are ranked on (`telemetry.ranking`).

A fixed number of queries whatever the history's size: rows are restricted to a set of ids first, then
aggregated in plain Python.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from reviews.models import ChangedFile, Override, PolicyViolation, PullRequest
from reviews.selectors.overrides import pull_requests_overridden
from reviews.selectors.review_facts import NO_FACTS, pull_request_review_facts
from telemetry import conf
from telemetry.models import Deployment, DeploymentChange, Incident, SuspectChange
from telemetry.ranking import ChangeFacts, ConfirmedFile

# The pull request columns a suspect is ranked on, and DORA's lead time reads (`telemetry.selectors.dora`).
PULL_REQUEST_FIELDS = (
    "pk",
    "author_id",
    "merged_by_id",
    "repository_id",
    "head_ref",
    "additions",
    "deletions",
    "changed_files",
    "created_at",
    "ready_at",
    "last_pushed_at",
    "first_commit_at",
    "merged_at",
)


def suspect_change_facts(*, incident: Incident, window: dt.timedelta) -> list[ChangeFacts]:
    """The pull requests shipped to production by the incident's services in `window` before it started, with
    what is known of each. A fixed number of queries (about fifteen), whatever the history's size."""
    started_at = incident.started_at
    service_ids = list(incident.services.values_list("pk", flat=True))
    deployments = list(
        Deployment.objects.filter(
            service_id__in=service_ids,
            environment__in=conf.production_environments(),
            status=Deployment.Status.SUCCESS,
            finished_at__gte=started_at - window,
            finished_at__lte=started_at,
        ).values_list("pk", "service_id", "finished_at")
    )
    finished: dict[int, dt.datetime] = {pk: at for pk, _, at in deployments if at is not None}
    last_of_service: dict[int, tuple[dt.datetime, int]] = {}
    for pk, service_id, _ in deployments:
        latest = (finished[pk], pk)
        last_of_service[service_id] = max(last_of_service.get(service_id, latest), latest)
    last = {pk for _, pk in last_of_service.values()}
    # A pull request shipped twice (two services of a monorepo) is suspected through the later deployment.
    shipped_by: dict[int, int] = {}
    for deployment_id, pull_request_id in (
        DeploymentChange.objects.filter(deployment_id__in=list(finished), pull_request__isnull=False)
        .values_list("deployment_id", "pull_request_id")
        .distinct()
    ):
        current = shipped_by.get(pull_request_id)
        if current is None or (finished[deployment_id], deployment_id) > (finished[current], current):
            shipped_by[pull_request_id] = deployment_id
    rows = {row["pk"]: row for row in PullRequest.objects.filter(pk__in=list(shipped_by)).values(*PULL_REQUEST_FIELDS)}
    ids = sorted(rows)
    reviews = pull_request_review_facts(pull_request_ids=ids)
    files = _files(ids)
    overrides = _overrides(ids)
    violations = dict(PolicyViolation.objects.filter(pull_request_id__in=ids).values_list("pull_request_id", "outcome"))
    confirmed = _confirmed_files(rows, files, before=started_at)
    facts = []
    for pk in ids:
        row, review = rows[pk], reviews.get(pk, NO_FACTS)
        stamps = review.rubber_stamps
        deployment_id = shipped_by[pk]
        facts.append(
            ChangeFacts(
                pull_request_id=pk,
                deployment_id=deployment_id,
                deployed_at=finished[deployment_id],
                last_deployment=deployment_id in last,
                changed_lines=_changed_lines(row, files.get(pk)),
                changed_files=row["changed_files"] or len(files.get(pk, ())) or None,
                approvals=len(review.approvals),
                review_comments=review.comments,
                rubber_stamp_after=stamps[0].after_last_push if stamps else None,
                self_merged=row["merged_by_id"] is not None and row["merged_by_id"] == row["author_id"],
                overrides=tuple(overrides.get(pk, ())),
                violation=violations.get(pk, ""),
                paired_with=tuple(sorted(partner.person.display_name for partner in review.partners)),
                confirmed_files=tuple(confirmed.get(pk, ())),
            )
        )
    return facts


def _files(ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for pull_request_id, path, additions, deletions in (
        ChangedFile.objects.filter(pull_request_id__in=ids)
        .order_by("pull_request_id", "path")
        .values_list("pull_request_id", "path", "additions", "deletions")
    ):
        found[pull_request_id].append((path, additions + deletions))
    return found


def _changed_lines(row: dict[str, Any], files: list[tuple[str, int]] | None) -> int | None:
    if row["additions"] is not None and row["deletions"] is not None:
        return int(row["additions"] + row["deletions"])
    return sum(lines for _, lines in files) if files else None


def _overrides(ids: list[int]) -> dict[int, list[str]]:
    """The overrides in force (the one rule, `pull_requests_overridden`): one withdrawn, or left behind by a later
    push, merged nothing through."""
    found: dict[int, list[str]] = defaultdict(list)
    in_force = pull_requests_overridden(pull_request_ids=ids)
    for pull_request_id, name, reason in (
        Override.objects.filter(pull_request_id__in=in_force, withdrawal__isnull=True)
        .order_by("created_at", "pk")
        .values_list("pull_request_id", "overridden_by__display_name", "reason")
    ):
        reason = " ".join(reason.split())
        found[pull_request_id].append(f"by {name}: “{reason[:120]}”" if reason else f"by {name}")
    return found


def _confirmed_files(
    rows: dict[int, dict[str, Any]], files: dict[int, list[tuple[str, int]]], *, before: dt.datetime
) -> dict[int, list[ConfirmedFile]]:
    """The candidates' files that an earlier incident's confirmed cause changed too (same repository)."""
    paths = sorted({path for pk in rows for path, _ in files.get(pk, ())})
    repositories = sorted({row["repository_id"] for row in rows.values()})
    earlier: dict[tuple[int, str], list[ConfirmedFile]] = defaultdict(list)
    for repository_id, path, title, started_at in (
        ChangedFile.objects.filter(
            path__in=paths,
            pull_request__repository_id__in=repositories,
            pull_request__suspicions__verdict=SuspectChange.Verdict.CONFIRMED,
            pull_request__suspicions__incident__started_at__lt=before,
        )
        .order_by("path", "pull_request__suspicions__incident__started_at")
        .values_list(
            "pull_request__repository_id",
            "path",
            "pull_request__suspicions__incident__title",
            "pull_request__suspicions__incident__started_at",
        )
        .distinct()
    ):
        earlier[(repository_id, path)].append(ConfirmedFile(path, title, started_at))
    found: dict[int, list[ConfirmedFile]] = defaultdict(list)
    for pk, row in rows.items():
        for path, _ in files.get(pk, ()):
            found[pk].extend(earlier.get((row["repository_id"], path), ()))
    return found
