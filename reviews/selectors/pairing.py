"""Reads about pairing: who a reference names, which sessions a caller sees, who paired on a pull request, and
a team's pairing insight (pair matrix, weekly hours, rotation).

Every selector runs a fixed number of queries, whatever the size of the history.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from django.db.models import DateTimeField, F, Max, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from reviews.models import Commit, Identity, Membership, PairingParticipant, PairingSession, Person, PullRequest, Team

PersonReference = int | str
Interval = tuple[dt.datetime, dt.datetime]

# Work comes before the commit that records it: a commit counts as pairing for this long before its time.
COMMIT_LEAD_TIME = dt.timedelta(minutes=30)

_IDENTITY_PREFIXES = {"github": Identity.Kind.GITHUB, "gitlab": Identity.Kind.GITLAB, "email": Identity.Kind.EMAIL}


# People ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedReference:
    """What a person reference named: a person, or why it names none."""

    reference: PersonReference
    person: Person | None
    problem: str = ""


def _parse_reference(reference: PersonReference) -> int | tuple[str, str] | None:
    """A person id, or (identity kind, lower-cased value); None when the reference has neither shape."""
    if isinstance(reference, int):
        return reference
    text = reference.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    prefix, sep, value = text.partition(":")
    if sep and prefix.lower() in _IDENTITY_PREFIXES and value.strip():
        return _IDENTITY_PREFIXES[prefix.lower()], value.strip().lower()
    if "@" in text and " " not in text:
        return Identity.Kind.EMAIL, text.lower()
    return None


def people_by_reference(*, references: Sequence[PersonReference]) -> list[ResolvedReference]:
    """Resolve Tandem person ids and identity strings (`github:login`, `gitlab:username`, an e-mail address or
    `email:address`) to people, in order. Two queries however many references.

    A login present on several connections (github.com and a GitHub Enterprise) names one person only when every
    such identity belongs to the same person.
    """
    parsed = [_parse_reference(reference) for reference in references]
    ids = {p for p in parsed if isinstance(p, int)}
    pairs = {p for p in parsed if isinstance(p, tuple)}
    by_id = Person.objects.in_bulk(ids) if ids else {}
    by_identity: dict[tuple[str, str], list[Identity]] = defaultdict(list)
    if pairs:
        condition = Q()
        for kind, value in pairs:
            condition |= Q(kind=kind, value=value)
        for identity in Identity.objects.filter(condition).select_related("person"):
            by_identity[(identity.kind, identity.value)].append(identity)
    resolved = []
    for reference, key in zip(references, parsed, strict=True):
        if key is None:
            problem = f"{reference!r} is neither a person id nor an identity such as github:login or an e-mail."
            resolved.append(ResolvedReference(reference, None, problem))
        elif isinstance(key, int):
            person = by_id.get(key)
            resolved.append(ResolvedReference(reference, person, "" if person else f"No person has id {key}."))
        else:
            resolved.append(_from_identities(reference, by_identity.get(key, [])))
    return resolved


def _from_identities(reference: PersonReference, identities: list[Identity]) -> ResolvedReference:
    if not identities:
        return ResolvedReference(reference, None, f"No person is known as {reference!r}.")
    people = {identity.person_id for identity in identities}
    if None in people:
        # Unresolved identities are a lead's to attach in the admin; until then they name nobody.
        return ResolvedReference(reference, None, f"{reference!r} is not linked to a person yet.")
    if len(people) > 1:
        return ResolvedReference(reference, None, f"{reference!r} names more than one person (several connections).")
    return ResolvedReference(reference, identities[0].person)


def person_visible(*, person_id: int, team_ids: Collection[int] | None) -> Person | None:
    """The person, if they belong to one of the caller's teams (`None` team ids: every person)."""
    people = Person.objects.filter(pk=person_id)
    if team_ids is not None:
        people = people.filter(pk__in=Membership.objects.filter(team_id__in=team_ids).values("person_id"))
    return people.first()


# Sessions ----------------------------------------------------------------------------------------------------------


def pairing_sessions_visible(*, team_ids: Collection[int] | None) -> QuerySet[PairingSession]:
    """Sessions with at least one participant in the caller's teams (`None`: every session)."""
    sessions = PairingSession.objects.all()
    if team_ids is not None:
        in_teams = PairingParticipant.objects.filter(person__memberships__team_id__in=team_ids)
        sessions = sessions.filter(pk__in=in_teams.values("session_id"))
    return sessions


def _with_participants(sessions: QuerySet[PairingSession]) -> QuerySet[PairingSession]:
    return sessions.select_related("repository").prefetch_related("participations__person")


def pairing_session_get(*, session_id: int, team_ids: Collection[int] | None) -> PairingSession | None:
    return _with_participants(pairing_sessions_visible(team_ids=team_ids)).filter(pk=session_id).first()


def pairing_session_list(
    *,
    team_ids: Collection[int] | None,
    person: Person | None = None,
    team_slug: str = "",
    active: bool | None = None,
    repository_id: int | None = None,
    started_after: dt.datetime | None = None,
    started_before: dt.datetime | None = None,
) -> QuerySet[PairingSession]:
    """Visible sessions, newest first, filtered. Participants are prefetched (one query per page)."""
    sessions = pairing_sessions_visible(team_ids=team_ids)
    if person is not None:
        sessions = sessions.filter(pk__in=PairingParticipant.objects.filter(person=person).values("session_id"))
    if team_slug:
        in_team = PairingParticipant.objects.filter(person__memberships__team__slug=team_slug)
        sessions = sessions.filter(pk__in=in_team.values("session_id"))
    if active is not None:
        sessions = sessions.filter(ended_at__isnull=active)
    if repository_id is not None:
        sessions = sessions.filter(repository_id=repository_id)
    if started_after is not None:
        sessions = sessions.filter(started_at__gte=started_after)
    if started_before is not None:
        sessions = sessions.filter(started_at__lt=started_before)
    return _with_participants(sessions).order_by("-started_at", "-pk")


def pairing_session_active_for(*, person: Person) -> PairingSession | None:
    """The open session the person is taking part in now, if any."""
    active = PairingParticipant.objects.filter(person=person, left_at__isnull=True, session__ended_at__isnull=True)
    return _with_participants(PairingSession.objects.filter(pk__in=active.values("session_id"))).first()


def pairing_session_driver(session: PairingSession) -> PairingParticipant | None:
    """Who drives now (or drove last, once the session has ended). Uses prefetched participations."""
    drivers = [p for p in session.participations.all() if p.role == PairingParticipant.Role.DRIVER]
    present = [p for p in drivers if p.left_at is None or p.left_at == session.ended_at]
    candidates = present or drivers
    return candidates[0] if candidates else None


# Pairing partners on a pull request -------------------------------------------------------------------------------


PartnerSource = Literal["session", "co_author"]


@dataclass(frozen=True)
class PairingPartner:
    person: Person
    source: PartnerSource
    detail: str


def pairing_partners_for_pull_request(*, pull_request: PullRequest) -> list[PairingPartner]:
    """People who paired with the pull request's author on it, never the author, never a bot.

    - co_author: on one of its commits the author and the partner are, between them, the commit's author and a
      `Co-authored-by:` co-author;
    - session: both took part in a session that overlaps its commits' time (from `COMMIT_LEAD_TIME` before the
      first commit to the last) on its repository, or on its head branch.

    At most four queries.
    """
    author_id = pull_request.author_id
    if author_id is None:
        return []
    commits = list(
        Commit.objects.filter(pull_requests=pull_request).values(
            "pk", "sha", "authored_at", person=Coalesce("author_id", "author_identity__person_id")
        )
    )
    if not commits:
        return []
    by_id = {c["pk"]: c for c in commits}
    found: dict[int, tuple[PartnerSource, str]] = {}
    for commit_id, named in sorted(_commit_people(by_id).items(), key=lambda i: by_id[i[0]]["authored_at"]):
        commit = by_id[commit_id]
        everyone = named | ({commit["person"]} if commit["person"] else set())
        if author_id in everyone:
            for partner in everyone - {author_id}:
                found.setdefault(partner, ("co_author", f"co-author with the author on commit {commit['sha'][:12]}"))
    start = min(c["authored_at"] for c in commits) - COMMIT_LEAD_TIME
    end = max(c["authored_at"] for c in commits)
    for partner, session in _session_partners(pull_request, author_id, start, end).items():
        when = f"{session.started_at:%Y-%m-%d %H:%M}"
        found.setdefault(partner, ("session", f"pairing session {session.pk} ({session.source}) from {when}"))
    people = Person.objects.filter(pk__in=found, is_bot=False).in_bulk()
    return [
        PairingPartner(person=people[pk], source=source, detail=detail)
        for pk, (source, detail) in sorted(found.items())
        if pk in people
    ]


def _commit_people(commit_ids: Iterable[int]) -> dict[int, set[int]]:
    """The people named by each commit's co-author trailers (resolved identities only)."""
    through = Commit.co_authors.through
    rows = through.objects.filter(commit_id__in=list(commit_ids), identity__person__isnull=False).values_list(
        "commit_id", "identity__person_id"
    )
    people: dict[int, set[int]] = defaultdict(set)
    for commit_id, person_id in rows:
        people[commit_id].add(person_id)
    return people


def _session_partners(
    pull_request: PullRequest, author_id: int, start: dt.datetime, end: dt.datetime
) -> dict[int, PairingSession]:
    where = Q(repository_id=pull_request.repository_id)
    if pull_request.head_ref:
        where |= Q(branch=pull_request.head_ref)
    sessions = (
        PairingSession.objects.filter(where, started_at__lte=end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=start))
        .filter(pk__in=PairingParticipant.objects.filter(person_id=author_id).values("session_id"))
        .prefetch_related("participations")
        .order_by("started_at", "pk")
    )
    partners: dict[int, PairingSession] = {}
    for session in sessions:
        for participation in session.participations.all():
            if participation.person_id != author_id:
                partners.setdefault(participation.person_id, session)
    return partners


# Team pairing insight ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairStat:
    people: tuple[Person, Person]
    hours: float
    sessions: int
    last_paired_on: dt.date | None


@dataclass(frozen=True)
class PersonHours:
    person: Person
    total_hours: float
    weekly_hours: dict[str, float]  # ISO week ("2025-W07") → hours, every week of the period


@dataclass(frozen=True)
class RotationPair:
    people: tuple[Person, Person]
    last_paired_at: dt.datetime | None  # ever, up to the end of the period


@dataclass(frozen=True)
class PairingInsight:
    team: Team
    since: dt.date
    until: dt.date
    members: list[Person]
    weeks: list[str]
    pairs: list[PairStat]  # every pair of members, most hours first
    hours: list[PersonHours]
    not_paired: list[Person]
    rotation: list[RotationPair]  # never paired first, then least recently paired
    suggested_pairs: list[tuple[Person, Person]] = field(default_factory=list)
    partial_weeks: list[str] = field(default_factory=list)  # weeks the period covers only in part


def team_pairing_insight(*, team: Team, since: dt.date, until: dt.date) -> PairingInsight:
    """Who in the team paired with whom in [since, until] (whole days, in the current time zone).

    Time counts where two people were in the same session at the same time (each one's joined → left time);
    overlapping sessions of the same people count once. A member's hours include pairing with people outside
    the team; the matrix covers pairs of members. Three queries.
    """
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(since, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    members = sorted(
        (m.person for m in Membership.objects.filter(team=team, person__is_bot=False).select_related("person")),
        key=lambda p: (p.display_name, p.pk),
    )
    member_ids = {p.pk for p in members}
    presence = _presence_in_period(team, start, end)

    paired: dict[int, list[Interval]] = defaultdict(list)
    pair_time: dict[tuple[int, int], list[Interval]] = defaultdict(list)
    pair_sessions: dict[tuple[int, int], set[int]] = defaultdict(set)
    for session_id, people in presence.items():
        for a_id, b_id in itertools.combinations(sorted(people), 2):
            together = _intersect(people[a_id], people[b_id])
            if not together:
                continue
            paired[a_id] += together
            paired[b_id] += together
            if a_id in member_ids and b_id in member_ids:
                pair_time[(a_id, b_id)] += together
                pair_sessions[(a_id, b_id)].add(session_id)

    weeks = _iso_weeks(since, until)
    hours = []
    for person in members:
        spans = _union(paired.get(person.pk, []))
        weekly = dict.fromkeys(weeks, 0.0)
        for week, seconds in _seconds_per_week(spans, tz).items():
            weekly[week] = round(weekly.get(week, 0.0) + seconds / 3600, 2)
        hours.append(PersonHours(person=person, total_hours=_hours(spans), weekly_hours=weekly))

    pairs = []
    for a, b in itertools.combinations(members, 2):
        key = (min(a.pk, b.pk), max(a.pk, b.pk))
        spans = _union(pair_time.get(key, []))
        last = max(s[1] for s in spans).astimezone(tz).date() if spans else None
        sessions = len(pair_sessions.get(key, ()))
        pairs.append(PairStat(people=(a, b), hours=_hours(spans), sessions=sessions, last_paired_on=last))
    pairs.sort(key=lambda s: (-s.hours, s.people[0].display_name, s.people[1].display_name))

    rotation = _rotation(members, end)
    return PairingInsight(
        team=team,
        since=since,
        until=until,
        members=members,
        weeks=weeks,
        pairs=pairs,
        hours=hours,
        not_paired=[h.person for h in hours if h.total_hours == 0],
        rotation=rotation,
        suggested_pairs=_suggest(rotation),
        partial_weeks=_partial_weeks(since, until),
    )


def _presence_in_period(team: Team, start: dt.datetime, end: dt.datetime) -> dict[int, dict[int, list[Interval]]]:
    """session → person → when they were in it, clipped to the period; sessions with a team member only."""
    overlapping = Q(session__started_at__lt=end) & (Q(session__ended_at__isnull=True) | Q(session__ended_at__gt=start))
    team_sessions = PairingParticipant.objects.filter(overlapping, person__memberships__team=team).values("session_id")
    rows = PairingParticipant.objects.filter(session_id__in=team_sessions).values_list(
        "session_id", "person_id", "joined_at", "left_at", "session__started_at", "session__ended_at"
    )
    now = timezone.now()
    presence: dict[int, dict[int, list[Interval]]] = defaultdict(dict)
    for session_id, person_id, joined, left, started, ended in rows:
        begin = max(joined, started, start)
        finish = min(left or ended or now, ended or now, end)
        if finish > begin:
            presence[session_id][person_id] = [(begin, finish)]
    return presence


def _rotation(members: list[Person], end: dt.datetime) -> list[RotationPair]:
    """Every pair of members with the last time they shared a session (before the period's end)."""
    ids = [p.pk for p in members]
    last_rows = (
        PairingParticipant.objects.filter(
            person_id__in=ids,
            session__participations__person_id__in=ids,
            session__participations__person_id__gt=F("person_id"),
            session__started_at__lt=end,
        )
        .values_list("person_id", "session__participations__person_id")
        .annotate(last=Max(Coalesce("session__ended_at", Value(timezone.now(), output_field=DateTimeField()))))
    )
    last = {(a, b): min(when, end) for a, b, when in last_rows}
    pairs = [
        RotationPair(people=(a, b), last_paired_at=last.get((min(a.pk, b.pk), max(a.pk, b.pk))))
        for a, b in itertools.combinations(members, 2)
    ]
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(pairs, key=lambda r: (r.last_paired_at or never, r.people[0].display_name, r.people[1].display_name))


def _suggest(rotation: list[RotationPair]) -> list[tuple[Person, Person]]:
    """A next rotation: greedily, the least recently paired pairs in which nobody is taken twice."""
    taken: set[int] = set()
    suggested = []
    for pair in rotation:
        a, b = pair.people
        if a.pk not in taken and b.pk not in taken:
            suggested.append((a, b))
            taken |= {a.pk, b.pk}
    return suggested


# Interval arithmetic ----------------------------------------------------------------------------------------------


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for begin, finish in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    return [
        (max(a0, b0), min(a1, b1)) for a0, a1 in _union(left) for b0, b1 in _union(right) if max(a0, b0) < min(a1, b1)
    ]


def _hours(intervals: list[Interval]) -> float:
    return round(sum((finish - begin).total_seconds() for begin, finish in intervals) / 3600, 2)


def _iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _iso_weeks(since: dt.date, until: dt.date) -> list[str]:
    weeks: list[str] = []
    day = since - dt.timedelta(days=since.weekday())
    while day <= until:
        weeks.append(_iso_week(day))
        day += dt.timedelta(days=7)
    return weeks


def _partial_weeks(since: dt.date, until: dt.date) -> list[str]:
    """The ISO weeks [since, until] (whole days) does not cover from Monday to Sunday: its first, its last, or both."""
    partial = []
    if since.weekday() != 0:
        partial.append(_iso_week(since))
    if until.weekday() != 6 and _iso_week(until) not in partial:
        partial.append(_iso_week(until))
    return partial


def _seconds_per_week(intervals: list[Interval], tz: dt.tzinfo) -> dict[str, float]:
    """Split intervals at local Monday midnights."""
    seconds: dict[str, float] = defaultdict(float)
    for begin, finish in intervals:
        cursor = begin
        while cursor < finish:
            local = cursor.astimezone(tz)
            monday = local.date() - dt.timedelta(days=local.weekday())
            next_monday = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time.min, tzinfo=tz)
            stop = min(finish, next_monday)
            seconds[_iso_week(local.date())] += (stop - cursor).total_seconds()
            cursor = stop
    return seconds
