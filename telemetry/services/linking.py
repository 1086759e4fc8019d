"""Link a successful deployment to what it shipped: commits and the pull requests that merged them.

What a deployment shipped is the commits reachable from its sha and not from the sha of the previous successful
deployment of its chain: the same service and repository, and the same environment, where every production
environment (`TELEMETRY_PRODUCTION_ENVIRONMENTS`: `prod` and `production` alike) is one. They are found, in this
order:

1. graph: from stored commits, walking the `parents` stored on each Commit. One query loads the repository's
   commits authored since shortly before the previous deployment (and the two shas); up to five more fetch
   parents that fell outside that window. The walk is complete when every path reaches the previous deployment's
   history (a first deployment: the look-back, or a root) through commits whose parents are known; a commit only
   a push webhook has seen has none on record, so the walk cannot vouch for what lies behind it;
2. compare: otherwise the VCS compare API (`base...head`), whose commits are stored as they are read. The base is
   the previous deployment's sha; for a first deployment, the last change merged into its branch before the
   look-back. The answer is kept on the deployment, and asked for again conditionally (GitHub's ETag: a 304
   costs no quota) when the deployment is linked again;
3. merge_order: only when neither can say (no base to compare with, no token, a sha the VCS does not know, or
   the VCS still failing after the task's retries), and the link says why: the pull requests merged into the
   deployment's branch after the one the previous deployment shipped (by merge time) and up to the one this
   deployment's sha merged (else its start time).

A service's first deployment has no previous one: it ships what was merged within
`TELEMETRY_FIRST_DEPLOYMENT_LOOKBACK_DAYS` before it. A deployment's branch is its ref when pull requests are
merged into a branch of that name, else the repository's default branch (a tag, a sha).

The pull requests are the merged ones whose merge commit (or, for a fast-forward, head) is among the commits.
A service with path filters on the repository keeps only the pull requests with a changed file under them (and
their commits); commits pushed without a pull request, and pull requests whose files were never synced, are
kept only by services without path filters. A link that shipped no pull request says why in `link_error`.

Idempotent: the deployment's changes are made exactly the computed set. Linking a deployment for the first time
re-links the next deployment (a late report shrinks what the next one shipped); whenever what a production
deployment shipped changes, the incidents that started in the window after it are ranked again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import re2
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from reviews.instruments import DEPLOYMENTS_LINKED
from reviews.integrations.records import CompareRead
from reviews.integrations.vcs import VcsClient, VcsError, VcsRateLimited, VcsUnavailable
from reviews.models import ChangedFile, Commit, PullRequest, Repository
from reviews.policy.codeowners import RE2_OPTIONS, glob_to_regex
from reviews.services.credentials import repository_access_problem
from reviews.services.pull_requests import commit_upsert
from reviews.services.sync import vcs_client_for
from telemetry import conf
from telemetry.models import Deployment, DeploymentChange, Incident, ServiceRepository
from telemetry.services.deployments import repository_for_sha
from telemetry.services.enqueue import deployment_link_enqueue, incident_correlate_enqueue

# How far before the previous deployment the graph query reaches: branch commits are usually authored shortly
# before they are merged; older ones are fetched by sha, a few rounds at most. And how far after this deployment's
# end: a commit it shipped was written before it (give or take a wrong clock), and a deployment linked long after
# it was made (a backfill, the demo's seed, a relink) must not read every commit written since.
GRAPH_SLACK = dt.timedelta(days=7)
MAX_FILL_ROUNDS = 5

ClientFactory = Callable[..., VcsClient]
Change = tuple[int | None, int | None]  # (commit id, pull request id)


class LinkError(Exception):
    """The deployment cannot be linked as it stands (no repository to look in): recorded, not retried."""


@dataclass(frozen=True)
class LinkResult:
    method: str
    commits: int
    pull_requests: int
    note: str = ""  # what `link_error` now says: why the link is partial or empty


@dataclass(frozen=True)
class _Node:
    pk: int
    parents: tuple[str, ...] | None  # None: not known (only a push webhook has seen the commit)
    # When it landed on its branch: the committer's time, which a rebase or a cherry-pick renews (the author's
    # time does not: a rebase-merged change written weeks ago would look like history).
    landed_at: dt.datetime


@dataclass(frozen=True)
class _Walk:
    commits: dict[str, int]  # sha → commit id of what the walk shipped
    complete: bool  # every path ended where it should, through commits whose parents are known


@dataclass(frozen=True)
class Shipment:
    """What a deployment ships, computed without writing anything: the same answer a link would store."""

    repository: Repository
    previous: Deployment | None
    branch: str
    method: str
    changes: frozenset[Change]
    note: str  # what `link_error` would say

    @property
    def pull_request_ids(self) -> list[int]:
        return sorted({pull_request for _, pull_request in self.changes if pull_request is not None})


@dataclass(frozen=True)
class _Shipped:
    method: str
    commits: dict[str, int] | None  # sha → commit id; None when only pull requests are known
    pull_request_ids: list[int]
    why_merge_order: str = ""  # merge order only: why the commits could not be found


def deployment_changes_link(
    *,
    deployment_id: int,
    allow_vcs: bool = True,
    vcs_error: str = "",
    client_factory: ClientFactory = vcs_client_for,
) -> LinkResult:
    """Make the deployment's DeploymentChange rows what it shipped. VcsUnavailable and VcsRateLimited propagate
    (the task retries); `allow_vcs=False` skips the compare API, `vcs_error` says why (it is recorded)."""
    deployment = Deployment.objects.select_related("service", "repository__connection").get(pk=deployment_id)
    first_link = deployment.changes_linked_at is None
    if deployment.status != Deployment.Status.SUCCESS or deployment.finished_at is None:
        note = f"Not a finished successful deployment ({deployment.status}): it shipped nothing."
        _write(deployment, set(), method="none", error=note)
        return LinkResult("none", 0, 0, note)
    repository = deployment.repository or repository_for_sha(service=deployment.service, sha=deployment.sha)
    if repository is None:
        message = f"Cannot tell which of {deployment.service.slug}'s repositories {deployment.sha[:12]} is in."
        Deployment.objects.filter(pk=deployment.pk).update(link_error=message)
        raise LinkError(message)
    if deployment.repository_id is None:
        Deployment.objects.filter(pk=deployment.pk).update(repository=repository)
        deployment.repository = repository
    shipment = deployment_shipment(
        deployment, repository, allow_vcs=allow_vcs, vcs_error=vcs_error, client_factory=client_factory
    )
    changes = set(shipment.changes)
    changed = _write(deployment, changes, method=shipment.method, error=shipment.note)
    if first_link:
        _relink_next(deployment, repository)
    if first_link or changed:
        _rank_incidents_after(deployment)
    commits = sum(1 for commit, _ in changes if commit is not None)
    DEPLOYMENTS_LINKED.labels(shipment.method).inc()
    return LinkResult(shipment.method, commits, len(shipment.pull_request_ids), shipment.note)


def deployment_shipment(
    deployment: Deployment,
    repository: Repository,
    *,
    allow_vcs: bool,
    vcs_error: str = "",
    client_factory: ClientFactory = vcs_client_for,
) -> Shipment:
    """What `deployment` (saved or not: the deploy check asks about one not yet made) ships from `repository`,
    written nowhere. Only the compare API (when `allow_vcs`) stores the commits it reads."""
    previous = _previous(deployment, repository)
    branch = deployment_branch(repository=repository, ref=deployment.ref, sha=deployment.sha)
    shipped = _shipped(
        deployment, repository, previous, branch=branch, allow_vcs=allow_vcs, client_factory=client_factory
    )
    path_filters = _path_filters(deployment, repository)
    changes = _changes(repository, shipped, path_filters)
    note = _note(deployment, previous, branch, shipped, changes, path_filters, vcs_error=vcs_error)
    return Shipment(repository, previous, branch, shipped.method, frozenset(changes), note)


def chain_environments(environment: str) -> list[str]:
    """The environments whose deployments follow one another: every production name is one chain."""
    production = conf.production_environments()
    return production if environment in production else [environment]


def deployment_branch(*, repository: Repository, ref: str, sha: str) -> str:
    """The branch a deployment was made from: its ref, when pull requests are merged into a branch of that name;
    else the repository's default branch (a tag, a sha, or no ref at all)."""
    name = ref.strip().removeprefix("refs/heads/")
    if not name or name == repository.default_branch or name.startswith("refs/") or sha.startswith(name.lower()):
        return repository.default_branch
    if PullRequest.objects.filter(repository=repository, base_ref=name).exists():
        return name
    return repository.default_branch


def _previous(deployment: Deployment, repository: Repository) -> Deployment | None:
    finished = deployment.finished_at
    # A deployment not yet made (a dry run) comes after every one finished by its time.
    earlier = Q(finished_at__lte=finished) if deployment.pk is None else Q(finished_at=finished, pk__lt=deployment.pk)
    return (
        Deployment.objects.filter(
            service_id=deployment.service_id,
            environment__in=chain_environments(deployment.environment),
            repository=repository,
            status=Deployment.Status.SUCCESS,
        )
        .filter(Q(finished_at__lt=finished) | earlier)
        .order_by("-finished_at", "-pk")
        .first()
    )


def _shipped(
    deployment: Deployment,
    repository: Repository,
    previous: Deployment | None,
    *,
    branch: str,
    allow_vcs: bool,
    client_factory: ClientFactory,
) -> _Shipped:
    finished = deployment.finished_at or timezone.now()  # linking is only asked of finished deployments
    if previous is not None and previous.sha == deployment.sha:
        return _Shipped("graph", {}, [])  # the same sha again: nothing new
    floor = None if previous else finished - conf.first_deployment_lookback()
    since = (previous.finished_at if previous and previous.finished_at else finished) - GRAPH_SLACK
    walked = _walk_graph(
        repository,
        deployment.sha,
        previous.sha if previous else None,
        since=min(since, floor or since),
        until=finished + GRAPH_SLACK,
        floor=floor,
    )
    if walked is not None and walked.complete:
        return _Shipped("graph", walked.commits, [])
    base = previous.sha if previous else _first_base(repository, branch, floor or finished)
    why = ""
    if base is None:
        why = (
            f"the stored commits do not reach back to the look-back, and no change merged into {branch} before it "
            "gives a base to compare with"
        )
    elif not allow_vcs:
        why = "the stored commits do not say, and the VCS was not asked"
    elif problem := repository_access_problem(repository):
        why = f"{problem}: cannot compare {base[:12]}...{deployment.sha[:12]}"
    else:
        try:
            commits = _compare(deployment, repository, base, client_factory)
        except (VcsUnavailable, VcsRateLimited):
            raise
        except VcsError as error:
            why = f"compare {base[:12]}...{deployment.sha[:12]} failed: {error}"
        else:
            return _Shipped("compare", commits, [])
    merged = _merged_between(repository, deployment, previous, floor, branch)
    return _Shipped("merge_order", None, merged, why_merge_order=why)


def _first_base(repository: Repository, branch: str, floor: dt.datetime) -> str | None:
    """For a first deployment: the last change merged into its branch before the look-back (else into the default
    branch, which a release branch was cut from)."""
    for name in dict.fromkeys([branch, repository.default_branch]):
        row = (
            _merged_into(repository, name)
            .filter(merged_at__lte=floor)
            .order_by("-merged_at", "-pk")
            .values_list("merge_commit_sha", "head_sha")
            .first()
        )
        if row and (row[0] or row[1]):
            return row[0] or row[1]
    return None


# --- 1. the stored commit graph -----------------------------------------------------------------------------------


def _walk_graph(
    repository: Repository,
    head: str,
    base: str | None,
    *,
    since: dt.datetime,
    until: dt.datetime,
    floor: dt.datetime | None,
) -> _Walk | None:
    """The commits reachable from `head` and not from `base` (nor authored before `floor`); None when the head is
    not stored. Complete only when no path was cut short: with a base, every path reached the base's history
    (itself known); without one, every path ended at the floor or at a root."""
    shas = [sha for sha in (head, base) if sha]
    graph = _recent_nodes(repository, since, until, shas)
    if head not in graph:
        return None
    for round_ in range(MAX_FILL_ROUNDS + 1):
        behind, behind_known = _ancestors(graph, base) if base else (set(), True)
        shipped, missing, unknown, reached_base = _walk(graph, head, behind, floor)
        if not missing or round_ == MAX_FILL_ROUNDS:
            break
        fetched = _nodes(Commit.objects.filter(repository=repository, sha__in=sorted(missing)))
        if not fetched:
            break
        graph.update(fetched)
    complete = not missing and not unknown and (base is None or (reached_base and behind_known))
    return _Walk(shipped, complete)


_NODE_FIELDS = ("pk", "sha", "parents", "parents_known", "authored_at", "committed_at")


def _recent_nodes(repository: Repository, since: dt.datetime, until: dt.datetime, shas: list[str]) -> dict[str, _Node]:
    """The repository's commits authored or committed between `since` and `until`, and `shas`: one query, a UNION
    whose every part reads its own index (with OR, PostgreSQL may read all of the repository's commits instead)."""
    commits = Commit.objects.filter(repository=repository)
    rows = (
        commits.filter(authored_at__gte=since, authored_at__lte=until)
        .values_list(*_NODE_FIELDS)
        .union(
            commits.filter(committed_at__gte=since, committed_at__lte=until).values_list(*_NODE_FIELDS),
            commits.filter(sha__in=shas).values_list(*_NODE_FIELDS),
        )
    )
    return _node_rows(rows)


def _nodes(commits: QuerySet[Commit]) -> dict[str, _Node]:
    return _node_rows(commits.values_list(*_NODE_FIELDS))


def _node_rows(rows: Iterable[tuple[Any, ...]]) -> dict[str, _Node]:
    return {
        sha: _Node(pk, tuple(parents or ()) if known else None, committed_at or authored_at)
        for pk, sha, parents, known, authored_at, committed_at in rows
    }


def _ancestors(graph: dict[str, _Node], start: str) -> tuple[set[str], bool]:
    """The stored history of `start`, and whether it is whole as far as it is stored (no commit on it whose
    parents are unknown: what lies behind such a commit would be taken for new)."""
    seen: set[str] = set()
    known = True
    stack = [start]
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        node = graph.get(sha)
        if node is None:
            continue
        if node.parents is None:
            known = False
            continue
        stack.extend(node.parents)
    return seen, known


def _walk(
    graph: dict[str, _Node], head: str, behind: set[str], floor: dt.datetime | None
) -> tuple[dict[str, int], set[str], set[str], bool]:
    """What `head` reaches short of `behind` and `floor`: shipped commits, shas not stored, stored commits whose
    parents are unknown, and whether the base's history was reached."""
    shipped: dict[str, int] = {}
    missing: set[str] = set()
    unknown: set[str] = set()
    reached_base = False
    stack = [head]
    while stack:
        sha = stack.pop()
        if sha in shipped:
            continue
        if sha in behind:
            reached_base = True
            continue
        node = graph.get(sha)
        if node is None:
            missing.add(sha)
            continue
        if floor is not None and node.landed_at < floor and sha != head:
            continue  # a first deployment: what came before the look-back is history
        shipped[sha] = node.pk
        if node.parents is None:
            unknown.add(sha)
            continue
        stack.extend(node.parents)
    return shipped, missing, unknown, reached_base


# --- 2. the VCS compare API ---------------------------------------------------------------------------------------


def _compare(
    deployment: Deployment, repository: Repository, base: str, client_factory: ClientFactory
) -> dict[str, int]:
    """sha → commit id of what `base...head` lists. The answer kept from last time is asked for conditionally;
    an unchanged one is read back from the commits stored then."""
    head = deployment.sha
    kept = deployment.compared if isinstance(deployment.compared, dict) else {}
    same = kept.get("base") == base and kept.get("head") == head and isinstance(kept.get("shas"), list)
    client = client_factory(repository)
    try:
        compared = client.compare(repository.full_path, base, head, etag=str(kept.get("etag") or "") if same else "")
        if compared.unchanged:
            shas = [str(sha) for sha in kept["shas"]]
            stored = dict(Commit.objects.filter(repository=repository, sha__in=shas).values_list("sha", "pk"))
            if len(stored) == len(set(shas)):
                return stored
            compared = client.compare(repository.full_path, base, head)  # the stored commits are not all there
    finally:
        client.close()
    return _store_compared(deployment, repository, base, compared)


def _store_compared(deployment: Deployment, repository: Repository, base: str, compared: CompareRead) -> dict[str, int]:
    with transaction.atomic():
        commits = {record.sha: commit_upsert(repository=repository, record=record).pk for record in compared.commits}
        kept = {"base": base, "head": deployment.sha, "etag": compared.etag, "shas": list(commits)}
        Deployment.objects.filter(pk=deployment.pk).update(compared=kept)
    deployment.compared = kept
    return commits


# --- 3. merge order -----------------------------------------------------------------------------------------------


def _merged_into(repository: Repository, branch: str) -> QuerySet[PullRequest]:
    merged = PullRequest.objects.filter(repository=repository, state=PullRequest.State.MERGED)
    if branch == repository.default_branch:
        return merged.filter(Q(base_ref=branch) | Q(base_ref=""))
    return merged.filter(base_ref=branch)


def _merged_between(
    repository: Repository,
    deployment: Deployment,
    previous: Deployment | None,
    floor: dt.datetime | None,
    branch: str,
) -> list[int]:
    upper = _merged_at(repository, deployment.sha) or deployment.started_at or deployment.finished_at
    if previous is not None:
        lower = _merged_at(repository, previous.sha) or previous.started_at or previous.finished_at
    else:
        lower = floor
    merged = _merged_into(repository, branch).filter(merged_at__lte=upper)
    if lower is not None:
        merged = merged.filter(merged_at__gt=lower)
    return sorted(merged.values_list("pk", flat=True))


def _merged_at(repository: Repository, sha: str) -> dt.datetime | None:
    return (
        PullRequest.objects.filter(repository=repository, state=PullRequest.State.MERGED)
        .filter(Q(merge_commit_sha=sha) | Q(head_sha=sha))
        .order_by("merged_at")
        .values_list("merged_at", flat=True)
        .first()
    )


# --- what the link says -------------------------------------------------------------------------------------------


def _note(
    deployment: Deployment,
    previous: Deployment | None,
    branch: str,
    shipped: _Shipped,
    changes: set[Change],
    path_filters: list[str],
    *,
    vcs_error: str,
) -> str:
    """Why the link is not the whole truth (merge order), and why it shipped no pull request, in words."""
    parts = []
    if shipped.method == "merge_order":
        why = vcs_error or shipped.why_merge_order
        parts.append(f"Found by merge order, not from commits: {why}.")
    if not any(pull_request for _, pull_request in changes):
        parts.append(_nothing_shipped(deployment, previous, branch, shipped, changes, path_filters))
    return " ".join(parts)


def _nothing_shipped(
    deployment: Deployment,
    previous: Deployment | None,
    branch: str,
    shipped: _Shipped,
    changes: set[Change],
    path_filters: list[str],
) -> str:
    since = f"the previous deployment ({previous.sha[:12]})" if previous else "the look-back"
    if previous is not None and previous.sha == deployment.sha:
        return f"No pull request: the same commit ({deployment.sha[:12]}) as the previous deployment."
    found = len(shipped.commits) if shipped.commits is not None else len(shipped.pull_request_ids)
    what = "commits" if shipped.commits is not None else f"pull requests merged into {branch}"
    if found == 0:
        return f"No pull request: no {what} since {since}."
    if path_filters:
        filters = ", ".join(path_filters)
        return f"No pull request: none of the {found} {what} since {since} touched {filters}."
    return f"No pull request: the {len(changes)} commits since {since} were not merged by a pull request."


# --- from commits to changes --------------------------------------------------------------------------------------


def _path_filters(deployment: Deployment, repository: Repository) -> list[str]:
    filters = (
        ServiceRepository.objects.filter(service_id=deployment.service_id, repository=repository)
        .values_list("path_filters", flat=True)
        .first()
    )
    return [str(f) for f in filters or [] if str(f).strip()]


def _changes(repository: Repository, shipped: _Shipped, path_filters: list[str]) -> set[Change]:
    if shipped.commits is None:
        return _changes_by_pull_request(repository, shipped.pull_request_ids, path_filters)
    if not shipped.commits:
        return set()
    shas = list(shipped.commits)
    pull_request_of: dict[str, int] = {}
    for pk, merge_sha, head_sha in (
        PullRequest.objects.filter(repository=repository, state=PullRequest.State.MERGED)
        .filter(Q(merge_commit_sha__in=shas) | Q(head_sha__in=shas))
        .order_by("pk")
        .values_list("pk", "merge_commit_sha", "head_sha")
    ):
        if merge_sha in shipped.commits:
            pull_request_of[merge_sha] = pull_request_of.get(merge_sha, pk)
        if head_sha in shipped.commits and head_sha != merge_sha:
            pull_request_of.setdefault(head_sha, pk)
    pull_request_ids = sorted(set(pull_request_of.values()))
    through = PullRequest.commits.through
    branch_commits: dict[int, int] = {}
    for commit_id, pull_request_id in through.objects.filter(
        pullrequest_id__in=pull_request_ids, commit_id__in=list(shipped.commits.values())
    ).values_list("commit_id", "pullrequest_id"):
        branch_commits[commit_id] = min(pull_request_id, branch_commits.get(commit_id, pull_request_id))
    kept = _touching(pull_request_ids, path_filters) if path_filters else None
    changes: set[Change] = set()
    for sha, commit_id in shipped.commits.items():
        pull_request_id = pull_request_of.get(sha) or branch_commits.get(commit_id)
        if kept is not None and pull_request_id not in kept:
            continue
        changes.add((commit_id, pull_request_id))
    return changes


def _changes_by_pull_request(
    repository: Repository, pull_request_ids: list[int], path_filters: list[str]
) -> set[Change]:
    if path_filters:
        pull_request_ids = sorted(_touching(pull_request_ids, path_filters))
    rows = list(PullRequest.objects.filter(pk__in=pull_request_ids).values_list("pk", "merge_commit_sha", "head_sha"))
    shas = {sha for _, merge_sha, head_sha in rows for sha in (merge_sha, head_sha) if sha}
    commit_ids = dict(Commit.objects.filter(repository=repository, sha__in=shas).values_list("sha", "pk"))
    changes: set[Change] = set()
    for pk, merge_sha, head_sha in rows:
        changes.add((commit_ids.get(merge_sha or head_sha), pk))
    return changes


def _touching(pull_request_ids: list[int], path_filters: list[str]) -> set[int]:
    """The pull requests with a changed file (or a file renamed away) under one of the path filters."""
    # A lead writes the filters: RE2, in linear time, as for every glob (`**/**/…` backtracks in `re`).
    pattern = re2.compile("|".join(f"(?:{glob_to_regex(f)})" for f in path_filters), RE2_OPTIONS)
    kept: set[int] = set()
    for pull_request_id, path, previous_path in ChangedFile.objects.filter(
        pull_request_id__in=pull_request_ids
    ).values_list("pull_request_id", "path", "previous_path"):
        if pattern.match(path) or (previous_path and pattern.match(previous_path)):
            kept.add(pull_request_id)
    return kept


def _write(deployment: Deployment, changes: set[Change], *, method: str, error: str = "") -> bool:
    """Make the deployment's changes exactly `changes`; True when that changed anything."""
    with transaction.atomic():
        # Serialise with any other linking of the same deployment: the last one computes from the same inputs.
        Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
        existing = {
            (commit_id, pull_request_id): pk
            for pk, commit_id, pull_request_id in DeploymentChange.objects.filter(deployment=deployment).values_list(
                "pk", "commit_id", "pull_request_id"
            )
        }
        stale = [pk for key, pk in existing.items() if key not in changes]
        if stale:
            DeploymentChange.objects.filter(pk__in=stale).delete()
        DeploymentChange.objects.bulk_create(
            [
                DeploymentChange(deployment=deployment, commit_id=commit_id, pull_request_id=pull_request_id)
                for commit_id, pull_request_id in sorted(changes - existing.keys(), key=_sort_key)
            ]
        )
        now = timezone.now()
        Deployment.objects.filter(pk=deployment.pk).update(changes_linked_at=now, link_method=method, link_error=error)
    deployment.changes_linked_at, deployment.link_method, deployment.link_error = now, method, error
    return bool(stale) or bool(changes - existing.keys())


def _sort_key(change: Change) -> tuple[int, int]:
    return (change[0] or 0, change[1] or 0)


def _relink_next(deployment: Deployment, repository: Repository) -> None:
    """A deployment linked for the first time: the next one, if already linked, shipped less than it thought."""
    finished = deployment.finished_at or timezone.now()
    following = (
        Deployment.objects.filter(
            service_id=deployment.service_id,
            environment__in=chain_environments(deployment.environment),
            repository=repository,
            status=Deployment.Status.SUCCESS,
            changes_linked_at__isnull=False,
        )
        .filter(Q(finished_at__gt=finished) | Q(finished_at=finished, pk__gt=deployment.pk))
        .order_by("finished_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    if following is not None:
        deployment_link_enqueue(deployment_id=following)


def _rank_incidents_after(deployment: Deployment) -> None:
    """What a production deployment shipped changed: the incidents that started within the window after it may
    have gained or lost a suspect."""
    if deployment.environment not in conf.production_environments() or deployment.finished_at is None:
        return
    finished = deployment.finished_at
    for incident_id in (
        Incident.objects.filter(
            services=deployment.service_id, started_at__gte=finished, started_at__lte=finished + conf.suspect_window()
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    ):
        incident_correlate_enqueue(incident_id=incident_id)
