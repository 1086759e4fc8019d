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
from collections.abc import Collection, Iterable, Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews.access import outside_teams, repositories_to_name
from reviews.models import PairingParticipant, PairingSession, Person, Repository
from reviews.selectors.affected import merged_pull_requests_of_pairing, open_pull_requests_of_pairing
from reviews.selectors.pairing import (
    PersonReference,
    people_by_reference,
)
from reviews.services.enqueue import pull_request_evaluations_enqueue
from reviews.services.figures import pull_request_figures_owed_mark
from reviews.services.pairing.errors import PairingConflict, PairingForbidden, PairingInvalid
from reviews.services.pairing.inference import inferred_duplicates_remove

Role = PairingParticipant.Role
Source = PairingSession.Source

# Clients' clocks drift: a start or end this far in the future is still "now".
_CLOCK_SKEW = dt.timedelta(minutes=5)


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
            inferred_duplicates_remove(session, {person.pk for person, _ in participants})
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
    inferred_duplicates_remove(session, people)
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
