"""Pairing sessions inferred from `Co-authored-by:` trailers: co-authored commits of the same people close together
form one session, reconciled with what was recorded."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from reviews.models import Commit, PairingParticipant, PairingSession, PullRequest, Repository
from reviews.selectors.pairing import (
    COMMIT_LEAD_TIME,
    STAY_FIELDS,
    Interval,
    presence,
    together,
)
from reviews.services.figures import pull_request_figures_owed_mark

Role = PairingParticipant.Role
Source = PairingSession.Source

# Co-authored commits of the same people less than this far apart belong to one inferred session.
INFERRED_GAP = dt.timedelta(hours=3)
# An inferred session spans its commits, and at least this long (METRICS.md, pairing hours).
INFERRED_MIN_LENGTH = COMMIT_LEAD_TIME


# Sessions inferred from co-author trailers -----------------------------------------------------------------------


@dataclass
class _Coauthored:
    pk: int
    sha: str
    authored_at: dt.datetime
    author_id: int | None  # the commit's author, when a person; drives the inferred session
    people: frozenset[int]  # author and co-authors that are people (not bots)


@dataclass
class _Cluster:
    people: frozenset[int]
    commits: list[_Coauthored]

    @property
    def started_at(self) -> dt.datetime:
        return min(self.commits[0].authored_at, self.ended_at - INFERRED_MIN_LENGTH)

    @property
    def ended_at(self) -> dt.datetime:
        return self.commits[-1].authored_at


def pairing_sessions_infer(*, repository: Repository, commits: Iterable[Commit]) -> list[PairingSession]:
    """Record, as inferred sessions, who paired on these commits according to their `Co-authored-by:` trailers.

    A commit whose author and co-authors include at least two people (identities not yet attached to a person,
    and bots, do not count) says those people paired. Their co-authored commits in this repository less than
    `INFERRED_GAP` apart make one session, from its first commit (at least `INFERRED_MIN_LENGTH` before its
    last) to its last; the commit author drives. The session is recorded on the branch of the pull request its
    commits belong to, when they share one: call this after linking the commits to their pull request.

    Idempotent: each session's external id is derived from its first commit and its people, so running it
    again changes nothing, and a newly seen commit that extends or joins sessions replaces them. Commits the
    same people also covered with an API or manual session (overlapping in time, any repository) make no
    inferred session: the recorded one says it better.

    Returns the inferred sessions the given commits belong to. A fixed handful of queries per call, plus a few
    writes per session that changes.
    """
    commits = [c for c in commits if c.pk is not None]
    if not commits:
        return []
    wanted = {c.pk for c in commits}
    if not Commit.co_authors.through.objects.filter(commit_id__in=wanted).exists():
        return []  # The common push: nobody to credit, nothing to lock.
    lo = min(c.authored_at for c in commits)
    hi = max(c.authored_at for c in commits)
    with transaction.atomic():
        # One inference per repository at a time, so two workers cannot both create a session for one span.
        Repository.objects.select_for_update().filter(pk=repository.pk).values("pk").first()
        while True:
            nearby = _coauthored_commits(repository, lo - INFERRED_GAP, hi + INFERRED_GAP)
            groups = {c.people for c in nearby if c.pk in wanted}
            clusters = [
                cluster
                for cluster in _clusters(c for c in nearby if c.people in groups)
                if any(c.pk in wanted for c in cluster.commits)
            ]
            if not clusters:
                return []
            first = min(cluster.commits[0].authored_at for cluster in clusters)
            last = max(cluster.commits[-1].authored_at for cluster in clusters)
            if first >= lo and last <= hi:
                break
            # A session reaches past the window: widen it until every session is seen whole.
            lo, hi = min(lo, first), max(hi, last)
        return _inferred_sessions_reconcile(repository, clusters)


def pairing_sessions_infer_for_identity(*, identity_id: int) -> list[PairingSession]:
    """Infer again the sessions of the commits an identity wrote or co-authored (say, once a lead has attached
    it to a person in the admin). One inference per repository."""
    commits = Commit.objects.filter(Q(co_authors__pk=identity_id) | Q(author_identity_id=identity_id)).distinct()
    by_repository: dict[int, list[Commit]] = defaultdict(list)
    for commit in commits.only("pk", "repository_id", "authored_at"):
        by_repository[commit.repository_id].append(commit)
    repositories = Repository.objects.in_bulk(list(by_repository))
    sessions = []
    for repository_id, repository_commits in by_repository.items():
        sessions += pairing_sessions_infer(repository=repositories[repository_id], commits=repository_commits)
    return sessions


def _coauthored_commits(repository: Repository, start: dt.datetime, end: dt.datetime) -> list[_Coauthored]:
    """The repository's commits with co-authors in [start, end], oldest first, with their people. One query."""
    rows = Commit.co_authors.through.objects.filter(
        commit__repository=repository, commit__authored_at__range=(start, end)
    ).values_list(
        "commit_id",
        "commit__sha",
        "commit__authored_at",
        "commit__author_id",
        "commit__author__is_bot",
        "commit__author_identity__person_id",
        "commit__author_identity__person__is_bot",
        "identity__person_id",
        "identity__person__is_bot",
    )
    commits: dict[int, _Coauthored] = {}
    people: dict[int, set[int]] = defaultdict(set)
    for pk, sha, authored_at, author_id, author_bot, identity_person, identity_bot, co_author, co_author_bot in rows:
        if pk not in commits:
            # The commit's author is set when it is stored; an identity attached later names them too.
            author: int | None = author_id
            if author is None and not identity_bot:
                author = identity_person
            elif author_bot:
                author = None
            commits[pk] = _Coauthored(pk, sha, authored_at, author, frozenset())
            if author is not None:
                people[pk].add(author)
        if co_author is not None and not co_author_bot:
            people[pk].add(co_author)
    found = [
        _Coauthored(c.pk, c.sha, c.authored_at, c.author_id, frozenset(people[c.pk]))
        for c in commits.values()
        if len(people[c.pk]) >= 2
    ]
    return sorted(found, key=lambda c: (c.authored_at, c.sha))


def _clusters(commits: Iterable[_Coauthored]) -> list[_Cluster]:
    """Each group of people's commits, split where they are more than INFERRED_GAP apart."""
    clusters: list[_Cluster] = []
    open_by_people: dict[frozenset[int], _Cluster] = {}
    for commit in commits:  # oldest first
        current = open_by_people.get(commit.people)
        if current is None or commit.authored_at - current.commits[-1].authored_at > INFERRED_GAP:
            current = _Cluster(people=commit.people, commits=[])
            clusters.append(current)
            open_by_people[commit.people] = current
        current.commits.append(commit)
    return clusters


def _external_id(repository: Repository, cluster: _Cluster) -> str:
    people = "+".join(str(pk) for pk in sorted(cluster.people))
    external_id = f"{repository.pk}/{cluster.commits[0].sha}/{people}"
    if len(external_id) > 200:
        external_id = f"{repository.pk}/{cluster.commits[0].sha}/{hashlib.sha256(people.encode()).hexdigest()}"
    return external_id


def _overlaps(a_start: dt.datetime, a_end: dt.datetime, b_start: dt.datetime, b_end: dt.datetime) -> bool:
    return a_start <= b_end and b_start <= a_end


def _inferred_sessions_reconcile(repository: Repository, clusters: list[_Cluster]) -> list[PairingSession]:
    """Make the inferred sessions of these clusters exactly what they should be."""
    start = min(c.started_at for c in clusters)
    end = max(c.ended_at for c in clusters)
    everyone = set().union(*(c.people for c in clusters))
    recorded = _recorded_sessions(everyone, start, end)
    existing = list(
        PairingSession.objects.filter(
            source=Source.CO_AUTHOR, repository=repository, started_at__lte=end, ended_at__gte=start
        ).prefetch_related("participations")
    )
    branches = _branches([c.pk for cluster in clusters for c in cluster.commits])
    kept: list[PairingSession] = []
    stale: set[int] = set()
    changed = False
    for cluster in clusters:
        mine = [
            s
            for s in existing
            if {p.person_id for p in s.participations.all()} == cluster.people
            and _overlaps(s.started_at, s.ended_at, cluster.started_at, cluster.ended_at)  # type: ignore[arg-type]
        ]
        if any(_covers(stays, cluster.people, cluster.started_at, cluster.ended_at) for stays in recorded):
            stale |= {s.pk for s in mine}
            continue
        external_id = _external_id(repository, cluster)
        stale |= {s.pk for s in mine if s.external_id != external_id}
        current = next((s for s in mine if s.external_id == external_id), None)
        session, wrote = _inferred_session_write(repository, cluster, external_id, current, branches)
        kept.append(session)
        changed = changed or wrote
    if stale:
        PairingSession.objects.filter(pk__in=stale).delete()
    # Pairing can count as review: the figures of these people's pull requests merged here since the earliest of
    # these sessions, as they were or are, are owed (one statement, whatever changed).
    if stale or changed:
        _figures_owed_of_people(repository, everyone, since=min([start, *(s.started_at for s in existing)]))
    return kept


def _figures_owed_of_people(repository: Repository, people: set[int], *, since: dt.datetime) -> None:
    pull_request_figures_owed_mark(
        pull_requests=PullRequest.objects.filter(
            state=PullRequest.State.MERGED, repository=repository, author_id__in=people, merged_at__gte=since
        )
    )


def _recorded_sessions(people: set[int], start: dt.datetime, end: dt.datetime) -> list[dict[int, list[Interval]]]:
    """API and manual sessions of any of these people overlapping [start, end]: who was in each, and when."""
    sessions = PairingSession.objects.filter(
        Q(ended_at__isnull=True) | Q(ended_at__gte=start),
        started_at__lte=end,
        source__in=[Source.API, Source.MANUAL],
        participations__person_id__in=people,
    )
    rows = PairingParticipant.objects.filter(session__in=sessions).values_list(*STAY_FIELDS)
    return list(presence(rows).values())


def _covers(stays: dict[int, list[Interval]], people: Iterable[int], start: dt.datetime, end: dt.datetime) -> bool:
    """Whether these people were all in the session at once at some moment of [start, end]."""
    return any(_overlaps(begin, finish, start, end) for begin, finish in together(stays, people))


def _branches(commit_ids: list[int]) -> dict[int, set[str]]:
    """The head branches of the pull requests each commit belongs to."""
    rows = PullRequest.commits.through.objects.filter(commit_id__in=commit_ids).values_list(
        "commit_id", "pullrequest__head_ref"
    )
    branches: dict[int, set[str]] = defaultdict(set)
    for commit_id, head_ref in rows:
        if head_ref:
            branches[commit_id].add(head_ref)
    return branches


def _inferred_session_write(
    repository: Repository,
    cluster: _Cluster,
    external_id: str,
    current: PairingSession | None,
    branches: dict[int, set[str]],
) -> tuple[PairingSession, bool]:
    """The inferred session of the cluster, and whether it was written (created or changed)."""
    heads = set().union(*(branches.get(c.pk, set()) for c in cluster.commits))
    values = {
        "repository_id": repository.pk,
        "branch": heads.pop() if len(heads) == 1 else "",
        "started_at": cluster.started_at,
        "ended_at": cluster.ended_at,
    }
    if current is not None:
        if all(getattr(current, key) == value for key, value in values.items()):
            return current, False  # Nothing new: the common case when the same commits are seen again.
        for key, value in values.items():
            setattr(current, key, value)
        current.save(update_fields=list(values))
        current.participations.update(joined_at=cluster.started_at, left_at=cluster.ended_at)
        return current, True
    try:
        with transaction.atomic():
            session = PairingSession.objects.create(source=Source.CO_AUTHOR, external_id=external_id, **values)
    except IntegrityError:
        # Recorded already, for a repository's commits now seen under another window: take it over.
        session = PairingSession.objects.get(source=Source.CO_AUTHOR, external_id=external_id)
        return _inferred_session_write(repository, cluster, external_id, session, branches)
    driver = cluster.commits[0].author_id
    PairingParticipant.objects.bulk_create(
        PairingParticipant(
            session=session,
            person_id=person_id,
            role=Role.DRIVER if person_id == driver else Role.NAVIGATOR,
            joined_at=cluster.started_at,
            left_at=cluster.ended_at,
        )
        for person_id in sorted(cluster.people)
    )
    return session, True


def inferred_duplicates_remove(session: PairingSession, people: set[int]) -> None:
    """Drop inferred sessions of the same people that the recorded session covers: they were in it together then."""
    stays = presence(PairingParticipant.objects.filter(session=session).values_list(*STAY_FIELDS)).get(session.pk, {})
    end = session.ended_at or timezone.now()
    overlapping = PairingSession.objects.filter(
        source=Source.CO_AUTHOR,
        started_at__lte=end,
        ended_at__gte=session.started_at,
        participations__person_id__in=people,
    )
    rows = PairingParticipant.objects.filter(session__in=overlapping).values_list(
        "session_id", "person_id", "session__started_at", "session__ended_at"
    )
    inferred: dict[int, tuple[dt.datetime, dt.datetime, set[int]]] = {}
    for session_id, person_id, started_at, ended_at in rows:
        inferred.setdefault(session_id, (started_at, ended_at or end, set()))[2].add(person_id)
    duplicates = [
        pk
        for pk, (started_at, ended_at, members) in inferred.items()
        if members <= people and _covers(stays, members, started_at, ended_at)
    ]
    if duplicates:
        PairingSession.objects.filter(pk__in=duplicates).delete()
