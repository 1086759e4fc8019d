"""Reads about pairing: who a reference names, which sessions a caller sees, who paired on a pull request, and
a team's pairing insight (pair matrix, weekly hours, rotation).

Every selector runs a fixed number of queries, whatever the size of the history.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from reviews.access import rows_within
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
    """The person, if they lie within the caller's teams (`reviews.access`; `None` team ids: every person)."""
    return rows_within(Person.objects.filter(pk=person_id), team_ids).first()


# Sessions ----------------------------------------------------------------------------------------------------------


def pairing_sessions_visible(*, team_ids: Collection[int] | None) -> QuerySet[PairingSession]:
    """Sessions within the caller's teams (`reviews.access`: a participant or the repository in one of them)."""
    return rows_within(PairingSession.objects.all(), team_ids)


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
    candidates = present or sorted(drivers, key=lambda p: (p.joined_at, p.pk), reverse=True)
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class Participant:
    """A person in a session, with each of their stays (joined, left; left is None while they are there)."""

    person: Person
    role: str  # in their last stay
    stays: tuple[tuple[dt.datetime, dt.datetime | None], ...]

    @property
    def joined_at(self) -> dt.datetime:
        return self.stays[0][0]

    @property
    def left_at(self) -> dt.datetime | None:
        return self.stays[-1][1]

    @property
    def present(self) -> bool:
        return self.left_at is None


def pairing_session_participants(session: PairingSession) -> list[Participant]:
    """The session's people in the order they first joined, each stay of theirs together. Uses prefetched
    participations."""
    stays: dict[int, list[PairingParticipant]] = defaultdict(list)
    for participation in sorted(session.participations.all(), key=lambda p: (p.joined_at, p.pk)):
        stays[participation.person_id].append(participation)
    return [
        Participant(rows[-1].person, rows[-1].role, tuple((row.joined_at, row.left_at) for row in rows))
        for rows in stays.values()
    ]


# Presence: who was in a session when -------------------------------------------------------------------------------

# A participation row, as `presence` reads it.
STAY_FIELDS = ("session_id", "person_id", "joined_at", "left_at", "session__started_at", "session__ended_at")
StayRow = tuple[int, int, dt.datetime, dt.datetime | None, dt.datetime, dt.datetime | None]


def presence(rows: Iterable[StayRow], *, now: dt.datetime | None = None) -> dict[int, dict[int, list[Interval]]]:
    """session → person → when they were in it: each stay on its own (someone who left and came back was not there
    in between), within the session's span. A stay or a session still open lasts until now."""
    now = now or timezone.now()
    found: dict[int, dict[int, list[Interval]]] = defaultdict(lambda: defaultdict(list))
    for session_id, person_id, joined, left, started, ended in rows:
        begin = max(joined, started)
        finish = min(left or ended or now, ended or now)
        if finish > begin:
            found[session_id][person_id].append((begin, finish))
    return {session: {person: _union(spans) for person, spans in people.items()} for session, people in found.items()}


def together(spans_by_person: dict[int, list[Interval]], people: Iterable[int]) -> list[Interval]:
    """When all of these people were there at once."""
    common: list[Interval] | None = None
    for person in people:
        spans = spans_by_person.get(person, [])
        common = spans if common is None else _intersect(common, spans)
    return common or []


# Pairing partners on a pull request -------------------------------------------------------------------------------


PartnerSource = Literal["session", "co_author"]


@dataclass(frozen=True)
class PairingPartner:
    person: Person
    source: PartnerSource
    detail: str  # which commit, or when the session began


@dataclass(frozen=True)
class _Change:
    author_id: int
    repository_id: int
    head_ref: str
    commits: list[tuple[str, dt.datetime, set[int]]]  # sha, authored, the people who wrote it (author, co-authors)

    @property
    def written(self) -> Interval:
        """While it was being written: from a little before its first commit to its last."""
        times = [authored for _, authored, _ in self.commits]
        return min(times) - COMMIT_LEAD_TIME, max(times)


def pairing_partners(
    *, pull_request_ids: Collection[int] | QuerySet[PullRequest, Any]
) -> dict[int, list[PairingPartner]]:
    """METRICS.md's "paired with a non-author", for many pull requests at once: per pull request, the people its
    author paired with on that change while it was being written. Never the author, never a bot; a pull request
    with no partner is left out. Every surface (team page, policy, DORA, suspects, the pull request page) asks this.

    - co_author: on one of its commits the author and the partner are, between them, the commit's author and a
      `Co-authored-by:` co-author (whoever of the two opened the pull request);
    - session: the author and the partner were in a pairing session on the change at the same moment (each stay
      counts on its own: someone who left and came back was not there in between), while it was being written,
      from `COMMIT_LEAD_TIME` before its first commit to its last. A session is on the change when it names the
      pull request's repository (and its head branch, or no branch), or names no repository but its head branch.

    A pull request whose commits are not known yet has no partners yet (fail closed). Four queries, however many
    pull requests.
    """
    return _partners(_changes(pull_request_ids))


def pairing_partners_of(
    *, pull_requests: Iterable[PullRequest], commits: Mapping[int, Sequence[Commit]]
) -> dict[int, list[PairingPartner]]:
    """`pairing_partners` of pull requests already read with their commits (each commit's author identity selected
    and its co-authors prefetched), so the commits are not read again: two queries fewer, the same answer."""
    changes = {
        pull_request.pk: _Change(
            pull_request.author_id,
            pull_request.repository_id,
            pull_request.head_ref or "",
            [(commit.sha, commit.authored_at, _writers(commit)) for commit in commits[pull_request.pk]],
        )
        for pull_request in pull_requests
        if pull_request.author_id is not None and commits.get(pull_request.pk)
    }
    return _partners(changes)


def _writers(commit: Commit) -> set[int]:
    """Who wrote a commit, as `_changes` reads it: its author (else its author identity's person) and its
    co-authors who are people."""
    author = commit.author_id
    if author is None and commit.author_identity_id is not None:
        author = commit.author_identity.person_id  # type: ignore[union-attr]
    writers = {author} if author is not None else set()
    return writers | {identity.person_id for identity in commit.co_authors.all() if identity.person_id is not None}


def _partners(changes: dict[int, _Change]) -> dict[int, list[PairingPartner]]:
    found: dict[int, dict[int, tuple[PartnerSource, str]]] = defaultdict(dict)
    for pk, change in changes.items():
        for sha, _, people in sorted(change.commits, key=lambda c: (c[1], c[0])):
            if change.author_id in people:
                for partner in sorted(people - {change.author_id}):
                    found[pk].setdefault(partner, ("co_author", f"commit {sha[:12]}"))
    for pk, sessions in _session_partners(changes).items():
        for partner, started in sessions.items():
            found[pk].setdefault(partner, ("session", f"from {started.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"))
    everyone = {person_id for named in found.values() for person_id in named}
    if not everyone:
        return {}  # most changes: nobody paired (building the query below costs more than knowing that)
    by_id = Person.objects.filter(pk__in=everyone, is_bot=False).in_bulk()
    result: dict[int, list[PairingPartner]] = {}
    for pk, named in found.items():
        listed = [
            PairingPartner(person=by_id[person_id], source=source, detail=detail)
            for person_id, (source, detail) in sorted(named.items())
            if person_id in by_id
        ]
        if listed:
            result[pk] = listed
    return result


def pairing_partners_for_pull_request(*, pull_request: PullRequest) -> list[PairingPartner]:
    """`pairing_partners` of one pull request."""
    return pairing_partners(pull_request_ids=[pull_request.pk]).get(pull_request.pk, [])


def _changes(pull_request_ids: Collection[int] | QuerySet[PullRequest, Any]) -> dict[int, _Change]:
    """The pull requests that have an author and known commits, with the people who wrote each commit. The ids may
    be a query of pull requests (`.values("pk")`): thousands of them are then a subquery, not parameters."""
    ids = pull_request_ids if isinstance(pull_request_ids, QuerySet) else list(pull_request_ids)
    commit_rows = PullRequest.commits.through.objects.filter(
        pullrequest_id__in=ids, pullrequest__author__isnull=False
    ).values_list(
        "pullrequest_id",
        "pullrequest__author_id",
        "pullrequest__repository_id",
        "pullrequest__head_ref",
        "commit_id",
        "commit__sha",
        "commit__authored_at",
        Coalesce("commit__author_id", "commit__author_identity__person_id"),
    )
    heads: dict[int, tuple[int, int, str]] = {}
    commits: dict[int, list[tuple[int, str, dt.datetime]]] = defaultdict(list)
    writers: dict[int, set[int]] = defaultdict(set)
    for pk, author_id, repository_id, head_ref, commit_id, sha, authored_at, person_id in commit_rows:
        heads[pk] = (author_id, repository_id, head_ref or "")
        commits[pk].append((commit_id, sha, authored_at))
        if person_id is not None:
            writers[commit_id].add(person_id)
    co_authors = Commit.co_authors.through.objects.filter(
        commit_id__in={commit_id for listed in commits.values() for commit_id, _, _ in listed},
        identity__person__isnull=False,
    ).values_list("commit_id", "identity__person_id")
    for commit_id, person_id in co_authors:
        writers[commit_id].add(person_id)
    return {
        pk: _Change(
            author_id, repository_id, head_ref, [(sha, at, writers[commit_id]) for commit_id, sha, at in commits[pk]]
        )
        for pk, (author_id, repository_id, head_ref) in heads.items()
    }


def _session_partners(changes: dict[int, _Change]) -> dict[int, dict[int, dt.datetime]]:
    """Per pull request, who was in a session on it with its author while it was written (→ when that session
    began, the first such session)."""
    if not changes:
        return {}
    lo = min(change.written[0] for change in changes.values())
    hi = max(change.written[1] for change in changes.values())
    authors = {change.author_id for change in changes.values()}
    attended = PairingParticipant.objects.filter(
        Q(session__ended_at__isnull=True) | Q(session__ended_at__gte=lo),
        person_id__in=authors,
        session__started_at__lte=hi,
    ).values("session_id")
    rows = list(
        PairingParticipant.objects.filter(session_id__in=attended).values_list(
            *STAY_FIELDS, "session__repository_id", "session__branch"
        )
    )
    where = {row[0]: (row[4], row[6], row[7] or "") for row in rows}  # session → started, repository, branch
    present = presence(row[:6] for row in rows)
    # Person and place (repository, branch) → sessions, earliest first: a change looks up only the places that are
    # on it (`_on_change`), not every session its author attended (a year of a team is thousands of them).
    order = {pk: index for index, pk in enumerate(sorted(where, key=lambda pk: (where[pk][0], pk)))}
    sessions_at: dict[tuple[int, int | None, str], list[int]] = defaultdict(list)
    for session_id in sorted(where, key=order.__getitem__):
        _, repository_id, branch = where[session_id]
        for person_id in present.get(session_id, {}):
            sessions_at[(person_id, repository_id, branch)].append(session_id)
    partners: dict[int, dict[int, dt.datetime]] = defaultdict(dict)
    for pk, change in changes.items():
        begin, finish = change.written
        places: set[tuple[int, int | None, str]] = {
            (change.author_id, change.repository_id, change.head_ref),
            (change.author_id, change.repository_id, ""),
        }
        if change.head_ref:
            places.add((change.author_id, None, change.head_ref))
        on_change = sorted((s for place in places for s in sessions_at.get(place, ())), key=order.__getitem__)
        for session_id in on_change:
            started, repository_id, branch = where[session_id]
            if not _on_change(change, repository_id, branch):
                continue
            people = present[session_id]
            for person_id in people:
                if person_id == change.author_id:
                    continue
                shared = _intersect(people[change.author_id], people[person_id])
                if any(a <= finish and b >= begin for a, b in shared):
                    partners[pk].setdefault(person_id, started)
    return partners


def _on_change(change: _Change, repository_id: int | None, branch: str) -> bool:
    if repository_id is None:
        return bool(branch) and branch == change.head_ref
    return repository_id == change.repository_id and branch in ("", change.head_ref)


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

    Time counts where two people were in the same session at the same time (each stay of theirs on its own);
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
    in_period = _presence_in_period(team, start, end)

    paired: dict[int, list[Interval]] = defaultdict(list)
    pair_time: dict[tuple[int, int], list[Interval]] = defaultdict(list)
    pair_sessions: dict[tuple[int, int], set[int]] = defaultdict(set)
    for session_id, people in in_period.items():
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
    """session → person → each stay of theirs in it, clipped to the period; sessions with a team member only."""
    overlapping = Q(session__started_at__lt=end) & (Q(session__ended_at__isnull=True) | Q(session__ended_at__gt=start))
    team_sessions = PairingParticipant.objects.filter(overlapping, person__memberships__team=team).values("session_id")
    rows = PairingParticipant.objects.filter(session_id__in=team_sessions).values_list(*STAY_FIELDS)
    clipped: dict[int, dict[int, list[Interval]]] = defaultdict(dict)
    for session_id, people in presence(rows).items():
        for person_id, spans in people.items():
            inside = _intersect(spans, [(start, end)])
            if inside:
                clipped[session_id][person_id] = inside
    return clipped


def _rotation(members: list[Person], end: dt.datetime) -> list[RotationPair]:
    """Every pair of members with the last time they were in a session together (before the period's end)."""
    ids = [p.pk for p in members]
    shared = PairingParticipant.objects.filter(person_id__in=ids, session__started_at__lt=end).values("session_id")
    rows = PairingParticipant.objects.filter(session_id__in=shared, person_id__in=ids).values_list(*STAY_FIELDS)
    last: dict[tuple[int, int], dt.datetime] = {}
    for people in presence(rows).values():
        for a_id, b_id in itertools.combinations(sorted(people), 2):
            spans = _intersect(people[a_id], people[b_id])
            if spans:
                when = min(max(finish for _, finish in spans), end)
                last[(a_id, b_id)] = max(last.get((a_id, b_id), when), when)
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
