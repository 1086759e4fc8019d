"""Pairing sessions: started and steered from the API, recorded whole (manual entry, imports, the demo), or
inferred from `Co-authored-by:` trailers.

Rules the API sessions keep (each refusal raises a `PairingError` and writes nothing):
- a session has at least two participants and exactly one driver among those present;
- a person is in at most one open session at a time;
- a caller acting for some teams (an API token) may only touch sessions whose participants all belong to them;
- a session whose participants drop below two ends there and then: pairing alone is not pairing.

Retries are safe: a start repeated with the same client id, a join of someone already present, a leave of
someone who has left and an end of an ended session (at the same time, or with none given) change nothing and
return the session as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from reviews.access import outside_teams, repositories_to_name
from reviews.models import Commit, PairingParticipant, PairingSession, Person, PullRequest, Repository
from reviews.selectors.affected import merged_pull_requests_of_pairing, open_pull_requests_of_pairing
from reviews.selectors.pairing import (
    COMMIT_LEAD_TIME,
    STAY_FIELDS,
    Interval,
    PersonReference,
    people_by_reference,
    presence,
    together,
)
from reviews.services.enqueue import pull_request_evaluations_enqueue
from reviews.services.figures import pull_request_figures_owed_mark

Role = PairingParticipant.Role
Source = PairingSession.Source

# Co-authored commits of the same people less than this far apart belong to one inferred session.
INFERRED_GAP = dt.timedelta(hours=3)
# An inferred session spans its commits, and at least this long (METRICS.md, pairing hours).
INFERRED_MIN_LENGTH = COMMIT_LEAD_TIME
# Clients' clocks drift: a start or end this far in the future is still "now".
_CLOCK_SKEW = dt.timedelta(minutes=5)


class PairingError(Exception):
    """A pairing request refused; nothing was written. `field` names the input at fault, when one is."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PairingInvalid(PairingError):
    """Bad input (400)."""


class PairingConflict(PairingError):
    """The session's state does not allow it: it has ended, or a client id is already taken (409)."""


class PairingForbidden(PairingError):
    """The caller does not act for every participant's team (403)."""


# Recording a whole session ------------------------------------------------------------------------------------------


def pairing_session_record(
    *,
    source: str,
    external_id: str,
    participants: Sequence[tuple[Person, str]],
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
    repository: Repository | None = None,
    branch: str = "",
) -> PairingSession:
    """Record a whole session at once (manual entry, imports, the demo), idempotent by source + external id.

    Inferred sessions of the same people that it overlaps are dropped: this session says it better.
    """
    if ended_at is not None and ended_at < started_at:
        raise ValueError("A pairing session cannot end before it starts.")
    with transaction.atomic():
        before = PairingSession.objects.filter(source=source, external_id=external_id).first()
        session, _ = PairingSession.objects.update_or_create(
            source=source,
            external_id=external_id,
            defaults={"started_at": started_at, "ended_at": ended_at, "repository": repository, "branch": branch},
        )
        if before is not None:
            _figures_owed_of(before)  # as it was: its old participants, repository and times
        # One stay per participant, the whole session long: whatever else was recorded for it goes.
        firsts: dict[int, int] = {}
        for pk, person_id in session.participations.order_by("-joined_at", "-pk").values_list("pk", "person_id"):
            firsts[person_id] = pk
        listed = {person.pk for person, _ in participants}
        session.participations.exclude(pk__in=[pk for person_id, pk in firsts.items() if person_id in listed]).delete()
        for person, role in participants:
            values = {"role": role, "joined_at": started_at, "left_at": ended_at}
            if person.pk in firsts:
                PairingParticipant.objects.filter(pk=firsts[person.pk]).update(**values)
            else:
                PairingParticipant.objects.create(session=session, person=person, **values)
        if source != Source.CO_AUTHOR:
            _inferred_duplicates_remove(session, {person.pk for person, _ in participants})
        _figures_owed_of(session)
    return session


# The session API ----------------------------------------------------------------------------------------------------


def pairing_session_start(
    *,
    participants: Sequence[tuple[PersonReference, str]],
    client_id: str = "",
    repository_id: int | None = None,
    branch: str = "",
    started_at: dt.datetime | None = None,
    team_ids: Collection[int] | None = None,
) -> tuple[PairingSession, bool]:
    """Start a session. Returns it and whether it was created.

    `participants` are (person reference, role) pairs; `team_ids` are the teams the caller acts for (`None`:
    any). A start retried with the same `client_id` returns the session the first one created, whatever
    happened to it since (people joined, left, it ended); the same `client_id` naming someone who never took part
    is a conflict. The unique (source, external id) constraint makes two concurrent retries one session.
    """
    now = timezone.now()
    started_at = started_at or now
    if started_at > now + _CLOCK_SKEW:
        raise PairingInvalid("A session cannot start in the future.", field="started_at")
    if len(participants) < 2:
        raise PairingInvalid("A pairing session needs at least two participants.", field="participants")
    if any(role not in Role.values for _, role in participants):
        raise PairingInvalid("A participant's role is driver or navigator.", field="participants")
    drivers = sum(1 for _, role in participants if role == Role.DRIVER)
    if drivers != 1:
        raise PairingInvalid(f"Exactly one participant drives; {drivers} were given.", field="participants")
    references = [reference for reference, _ in participants]
    people = _people_resolve(references, field="participants")
    _check_scope(people, team_ids, as_given=references)
    _check_distinct(people)
    repository = _repository_resolve(repository_id, team_ids)
    with transaction.atomic():
        _lock_people(people)
        if client_id:
            existing = PairingSession.objects.filter(source=Source.API, external_id=client_id).first()
            if existing is not None:
                return _retried_start(existing, people), False
        _check_free(people, field="participants")
        try:
            with transaction.atomic():
                session = PairingSession.objects.create(
                    source=Source.API,
                    external_id=client_id,
                    repository=repository,
                    branch=branch,
                    started_at=started_at,
                )
        except IntegrityError:
            # The same client id, started at the same moment by a retry that got there first.
            existing = PairingSession.objects.get(source=Source.API, external_id=client_id)
            return _retried_start(existing, people), False
        PairingParticipant.objects.bulk_create(
            PairingParticipant(session=session, person=person, role=role, joined_at=started_at)
            for person, (_, role) in zip(people, participants, strict=True)
        )
        _reevaluate_pull_requests_of(session)
    return session, True


def _reevaluate_pull_requests_of(session: PairingSession) -> None:
    """Pairing can count as review: the participants' open pull requests get a fresh verdict."""
    pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_of_pairing(session=session))


def _figures_owed_of(session: PairingSession, *, since: dt.datetime | None = None) -> None:
    """Pairing can count as review: the figures of the participants' pull requests merged since it began (or since
    `since`, where it began before a change) are owed."""
    pull_request_figures_owed_mark(pull_requests=merged_pull_requests_of_pairing(session=session, since=since))


def _retried_start(session: PairingSession, people: list[Person]) -> PairingSession:
    # Participations are never deleted from an API session: whoever started it is still among them.
    if not {p.pk for p in people} <= set(session.participations.values_list("person_id", flat=True)):
        raise PairingConflict("This client_id was used to start another session.", field="client_id")
    return session


def pairing_session_driver_switch(
    *, session: PairingSession, person: PersonReference, team_ids: Collection[int] | None = None
) -> PairingSession:
    """Hand the keyboard to `person`, a present participant; the driver until now navigates."""
    with transaction.atomic():
        session, present = _open_session(session, team_ids)
        target = _people_resolve([person], field="person")[0]
        participation = _present(present, target)
        if participation.role != Role.DRIVER:
            _drive(present, participation)
    return session


def pairing_participant_add(
    *,
    session: PairingSession,
    person: PersonReference,
    role: str = Role.NAVIGATOR,
    team_ids: Collection[int] | None = None,
    at: dt.datetime | None = None,
) -> PairingSession:
    """Someone joins (mobbing). Joining as driver makes the driver until now a navigator.

    Someone who left and comes back starts a new stay (a new row): they were not there in between. Coming back
    the moment they left continues the stay they left. Someone present already is left as they are, whatever the
    role asked (a retried join; /driver hands over the keyboard).
    """
    at = at or timezone.now()
    with transaction.atomic():
        session, present = _open_session(session, team_ids)
        newcomer = _people_resolve([person], field="person")[0]
        if any(p.person_id == newcomer.pk for p in present):
            return session
        _check_scope([newcomer], team_ids, as_given=[person])
        _lock_people([newcomer])
        _check_free([newcomer], field="person")
        participation = _stay_begin(session, newcomer, max(at, session.started_at))
        if role == Role.DRIVER:
            _drive([*present, participation], participation)
    return session


def _stay_begin(session: PairingSession, person: Person, at: dt.datetime) -> PairingParticipant:
    last = session.participations.filter(person=person).order_by("-joined_at").first()
    if last is not None and last.left_at is not None and at <= last.left_at:
        PairingParticipant.objects.filter(pk=last.pk).update(left_at=None, role=Role.NAVIGATOR)
        last.left_at, last.role = None, Role.NAVIGATOR
        return last
    return PairingParticipant.objects.create(session=session, person=person, role=Role.NAVIGATOR, joined_at=at)


def pairing_participant_remove(
    *,
    session: PairingSession,
    person: PersonReference,
    driver: PersonReference | None = None,
    team_ids: Collection[int] | None = None,
    at: dt.datetime | None = None,
) -> PairingSession:
    """Someone leaves. When the driver leaves, `driver` names who drives next; when fewer than two people
    remain, the session ends. Someone who has left already (a retry, or the session ended) changes nothing."""
    at = at or timezone.now()
    with transaction.atomic():
        session, participations = _locked_session(session, team_ids)
        who = _people_resolve([person], field="person")[0]
        # Someone who took part and is not present now has left already (whatever rows their stays have).
        theirs = [p for p in participations if p.person_id == who.pk]
        if theirs and all(p.left_at is not None for p in theirs):
            return session
        present = _still_open(session, participations)
        leaver = _present(present, who)
        at = max(at, leaver.joined_at)
        remaining = [p for p in present if p.pk != leaver.pk]
        if len(remaining) < 2:
            _end(session, remaining + [leaver], at)
            return session
        successor = None
        if driver is not None:
            successor = _present(remaining, _people_resolve([driver], field="driver")[0], field="driver")
        elif leaver.role == Role.DRIVER:
            raise PairingInvalid("The driver is leaving: say who drives next.", field="driver")
        PairingParticipant.objects.filter(pk=leaver.pk).update(left_at=at, role=Role.NAVIGATOR)
        _figures_owed_of(session)
        if successor is not None and successor.role != Role.DRIVER:
            _drive(remaining, successor)
    return session


def pairing_session_end(
    *, session: PairingSession, ended_at: dt.datetime | None = None, team_ids: Collection[int] | None = None
) -> PairingSession:
    """End a session (now, or at `ended_at`).

    Ending a session that has ended changes nothing when no time is given or the same time is (a retry); another
    time is a conflict.
    """
    now = timezone.now()
    with transaction.atomic():
        session, participations = _locked_session(session, team_ids)
        if session.ended_at is not None and ended_at in (None, session.ended_at):
            return session
        present = _still_open(session, participations)
        ended_at = ended_at or now
        if ended_at > now + _CLOCK_SKEW:
            raise PairingInvalid("A session cannot end in the future.", field="ended_at")
        if ended_at < session.started_at:
            raise PairingInvalid("A session cannot end before it starts.", field="ended_at")
        changes = [t for p in session.participations.all() for t in (p.joined_at, p.left_at) if t is not None]
        if ended_at < max(changes, default=session.started_at):
            raise PairingInvalid("A session cannot end before someone joined or left it.", field="ended_at")
        _end(session, present, ended_at)
        _reevaluate_pull_requests_of(session)
    return session


def _open_session(
    session: PairingSession, team_ids: Collection[int] | None
) -> tuple[PairingSession, list[PairingParticipant]]:
    """The session, locked and re-read, with its present participants; refused if ended or out of scope."""
    session, participations = _locked_session(session, team_ids)
    return session, _still_open(session, participations)


def _locked_session(
    session: PairingSession, team_ids: Collection[int] | None
) -> tuple[PairingSession, list[PairingParticipant]]:
    """The session, locked and re-read, with every participation (present or not); refused if out of scope."""
    session = PairingSession.objects.select_for_update().get(pk=session.pk)
    participations = list(session.participations.select_related("person"))
    _check_scope([p.person for p in participations], team_ids)
    return session, participations


def _still_open(session: PairingSession, participations: list[PairingParticipant]) -> list[PairingParticipant]:
    """The present participants of a session that has not ended; a conflict once it has."""
    if session.ended_at is not None:
        raise PairingConflict("This session has already ended.")
    return [p for p in participations if p.left_at is None]


def _present(present: Iterable[PairingParticipant], person: Person, *, field: str = "person") -> PairingParticipant:
    for participation in present:
        if participation.person_id == person.pk:
            return participation
    raise PairingInvalid(f"{person} is not taking part in this session.", field=field)


def _drive(present: Iterable[PairingParticipant], driver: PairingParticipant) -> None:
    others = [p.pk for p in present if p.pk != driver.pk]
    PairingParticipant.objects.filter(pk__in=others, role=Role.DRIVER).update(role=Role.NAVIGATOR)
    PairingParticipant.objects.filter(pk=driver.pk).update(role=Role.DRIVER)


def _end(session: PairingSession, present: Iterable[PairingParticipant], at: dt.datetime) -> None:
    PairingParticipant.objects.filter(pk__in=[p.pk for p in present]).update(left_at=at)
    session.ended_at = at
    session.save(update_fields=["ended_at"])
    people = set(session.participations.values_list("person_id", flat=True))
    _inferred_duplicates_remove(session, people)
    _figures_owed_of(session)


def _people_resolve(references: Sequence[PersonReference], *, field: str) -> list[Person]:
    resolved = people_by_reference(references=references)
    problems = [r.problem for r in resolved if r.person is None]
    if problems:
        raise PairingInvalid(" ".join(problems), field=field)
    return [r.person for r in resolved if r.person is not None]


def _check_distinct(people: Sequence[Person]) -> None:
    seen: set[int] = set()
    for person in people:
        if person.pk in seen:
            raise PairingInvalid(f"{person} is listed twice.", field="participants")
        seen.add(person.pk)


def _check_scope(
    people: Sequence[Person], team_ids: Collection[int] | None, *, as_given: Sequence[PersonReference] = ()
) -> None:
    """Refuse people outside the caller's teams. People the caller named (`as_given`, in the order of `people`)
    are named back as written, never by their names: walking ids must not list other teams' people."""
    beyond = outside_teams(Person, [p.pk for p in people], team_ids)
    if not beyond:
        return
    if as_given:
        named = [str(reference) for reference, p in zip(as_given, people, strict=True) if p.pk in beyond]
    else:  # the people of a session the caller sees: their names are on it
        named = [str(p) for p in people if p.pk in beyond]
    raise PairingForbidden(f"Not in your teams: {', '.join(named)}.")


def _check_free(people: Sequence[Person], *, field: str) -> None:
    busy = (
        PairingParticipant.objects.filter(person__in=people, left_at__isnull=True, session__ended_at__isnull=True)
        .select_related("person")
        .order_by("person_id")
    )
    messages = [f"{p.person} is already in pairing session {p.session_id}." for p in busy]
    if messages:
        raise PairingInvalid(" ".join(messages), field=field)


def _lock_people(people: Sequence[Person]) -> None:
    """Serialise starts and joins of the same people, so nobody ends up in two open sessions."""
    list(Person.objects.select_for_update().filter(pk__in=[p.pk for p in people]).order_by("pk").values("pk"))


def _repository_resolve(repository_id: int | None, team_ids: Collection[int] | None) -> Repository | None:
    if repository_id is None:
        return None
    # Repositories of other teams are not the caller's to name (nor to learn about).
    repository = repositories_to_name(team_ids).filter(pk=repository_id).first()
    if repository is None:
        raise PairingInvalid(f"No repository has id {repository_id}.", field="repository")
    return repository


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


def _inferred_duplicates_remove(session: PairingSession, people: set[int]) -> None:
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
