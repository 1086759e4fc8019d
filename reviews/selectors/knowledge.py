"""Knowledge per area (the bus factor): for each area of a team's repositories, the people who authored, reviewed or
paired on changes there in a period; an area known by one person only is flagged, with whom to pair or review with
next so that knowledge spreads.

Areas, as established tools cut them:
- a directory prefix at a configurable depth (`familiarity.directory_area`: "payments/ledger/" at depth 2);
- a CODEOWNERS entry, where the repository has one (the entry that decides a file's owners: the last match);
- whatever other apps register in `area_maps` (telemetry: each service, from its path filters), without this module
  importing them.

A change counts in the period when it was opened in it (authored; paired on: METRICS.md's "paired with a
non-author", `pairing.pairing_partners`), or reviewed in it (a submitted review of any state). A person counts once
per area, whatever they did and how often; bots never count. The suggestion comes from the reviewer suggestions'
own order (`services.reviewers.least_loaded`): the least loaded member of the team, neither away nor a bot, who has
not worked in the area, beside the one who knows it; each suggestion adds to that person's load so that one person
is not handed every area.

A bounded number of queries, whatever the size of the history (see `team_knowledge`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from reviews.models import ChangedFile, CodeownersFile, Membership, Person, Repository, Review
from reviews.policy import parse_codeowners
from reviews.selectors.familiarity import DEFAULT_AREA_DEPTH, area_label, directory_area
from reviews.selectors.pairing import pairing_partners
from reviews.selectors.scope import Scope
from reviews.services.reviewers import Candidate, candidates_load, least_loaded

DIRECTORY, CODEOWNERS, SERVICE = "directory", "codeowners", "service"
AREA_KINDS = (DIRECTORY, CODEOWNERS, SERVICE)
AUTHORED, REVIEWED, PAIRED = "authored", "reviewed", "paired"
WORK_KINDS = (AUTHORED, REVIEWED, PAIRED)
MAX_AREA_DEPTH = 6

KNOWLEDGE_DEFINITION = (
    "An area is a directory prefix (depth levels deep), a CODEOWNERS entry or a service (its path filters). Knowing "
    "it means having authored, reviewed or paired on (with the author) a change there in the period; a person counts "
    "once per area, bots never. An area known by one person only is flagged, with whom to pair or review with next."
)


@dataclass(frozen=True)
class AreaRef:
    """An area: its kind, the repository it lies in ("" for one that may span several, such as a service), and its
    name (directory prefix, CODEOWNERS pattern, service slug)."""

    kind: str
    repository: str
    name: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.repository}:{self.name}"


class AreaMap(Protocol):
    def areas_of(self, repository_id: int, path: str) -> Iterable[AreaRef]: ...


# Other apps add their areas here (telemetry: services), called with the team's repositories (id → full path).
AreaMapFactory = Callable[[Mapping[int, str]], AreaMap | None]
area_maps: list[AreaMapFactory] = []


@dataclass(frozen=True)
class Knower:
    person_id: int
    name: str
    authored: int
    reviewed: int
    paired: int
    changes: int  # distinct changes, whatever the person did on them


@dataclass(frozen=True)
class AreaKnowledge:
    area: AreaRef
    changes: int  # distinct changes in the area in the period
    people: tuple[Knower, ...]  # most changes first
    next_pair: tuple[int, str] | None = None  # whom to pair or review with next, when one person knows it

    @property
    def known_by_one(self) -> bool:
        return len(self.people) == 1

    @property
    def suggestion(self) -> str:
        if not self.known_by_one:
            return ""
        who = self.people[0].name
        if self.next_pair is None:
            return f"only {who} knows {self.area.label}: nobody else in the team is available to pair"
        return (
            f"only {who} knows {self.area.label}: {self.next_pair[1]} (new to it, the least loaded) should pair or "
            f"review with {who} next"
        )


@dataclass(frozen=True)
class TeamKnowledge:
    since: dt.datetime
    until: dt.datetime
    depth: int
    areas: list[AreaKnowledge]  # known by one first, then most changes first

    @property
    def lonely(self) -> list[AreaKnowledge]:
        return [area for area in self.areas if area.known_by_one]


class _Directories:
    def __init__(self, repositories: Mapping[int, str], depth: int) -> None:
        self.repositories, self.depth = repositories, depth

    def areas_of(self, repository_id: int, path: str) -> Iterable[AreaRef]:
        name = directory_area(path, self.depth)
        yield AreaRef(DIRECTORY, self.repositories[repository_id], name, area_label(name))


class _Codeowners:
    """The CODEOWNERS each repository has: pasted in Tandem, else the file read from its default branch."""

    def __init__(self, repositories: Mapping[int, str]) -> None:
        self.repositories = repositories
        rows = Repository.objects.filter(pk__in=list(repositories)).values_list(
            "pk", "codeowners", "connection__provider", "default_branch"
        )
        pasted = {pk: (text, provider) for pk, text, provider, _ in rows}
        branches = {pk: branch for pk, _, _, branch in rows}
        read = {
            repository_id: text
            for repository_id, branch, text in CodeownersFile.objects.filter(
                repository_id__in=list(repositories), fetched_at__isnull=False, error=""
            )
            .exclude(path="")
            .values_list("repository_id", "branch", "text")
            if branches.get(repository_id) == branch
        }
        self.files = {}
        for pk, (text, provider) in pasted.items():
            source = text if text.strip() else read.get(pk, "")
            if source.strip():
                self.files[pk] = parse_codeowners(source, "gitlab" if provider == "gitlab" else "github")

    def areas_of(self, repository_id: int, path: str) -> Iterable[AreaRef]:
        codeowners = self.files.get(repository_id)
        if codeowners is None:
            return
        for pattern in dict.fromkeys(codeowners.entries_for(path)):
            yield AreaRef(CODEOWNERS, self.repositories[repository_id], pattern, f"CODEOWNERS {pattern}")


def team_knowledge(
    *, scope: Scope, depth: int = DEFAULT_AREA_DEPTH, kinds: Iterable[str] = AREA_KINDS, now: dt.datetime | None = None
) -> TeamKnowledge:
    """Knowledge per area of the team's repositories (the scope's repository filter applies; its other filters narrow
    the changes counted). Queries: the repositories, the changes opened and the reviews given in the period, the
    pairing partners (`pairing_partners`, four), the changed files (two), the CODEOWNERS (two), each registered area
    map's own (telemetry: one), the names, the team's members and their load (two): the same whatever the history.
    Only the first three when no change of the period touched a file (the rest would read nothing: 15-25 ms of
    query building on the team page); no pairing partners when no change opened in it did."""
    now = now or timezone.now()
    kinds = set(kinds)
    team, since, until = scope.team, scope.since, scope.until
    repositories_qs = Repository.objects.filter(team=team)
    if scope.repositories:
        repositories_qs = repositories_qs.filter(pk__in=scope.repositories)
    repositories = dict(repositories_qs.values_list("pk", "full_path"))
    pulls = scope.pull_requests().filter(repository_id__in=list(repositories))

    # Who worked on which change: pull request → person → what they did; and each change's repository.
    work: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    repository_of: dict[int, int] = {}
    opened = pulls.filter(created_at__gte=since, created_at__lt=until, author__isnull=False, author__is_bot=False)
    # A change with no changed file lies in no area: its work counts nowhere, so it is not read (the period's
    # changes and reviews, 100,000s of rows, were read into Python before the files said they were in no area).
    has_files = Exists(ChangedFile.objects.filter(pull_request_id=OuterRef("pk")))
    authored = list(opened.filter(has_files).values_list("pk", "repository_id", "author_id"))
    for pk, repository_id, author_id in authored:
        work[pk][author_id].add(AUTHORED)
        repository_of[pk] = repository_id
    reviewed = Review.objects.filter(
        pull_request__in=pulls,
        submitted_at__gte=since,
        submitted_at__lt=until,
        reviewer__isnull=False,
        reviewer__is_bot=False,
    )
    in_an_area = Exists(ChangedFile.objects.filter(pull_request_id=OuterRef("pull_request_id")))
    reviewed_with_files = reviewed.filter(in_an_area)
    for pk, repository_id, reviewer_id in reviewed_with_files.values_list(
        "pull_request_id", "pull_request__repository_id", "reviewer_id"
    ).distinct():
        work[pk][reviewer_id].add(REVIEWED)
        repository_of[pk] = repository_id
    if not repository_of:  # no change of the period touched a file: no area, nothing more to read
        return TeamKnowledge(since, until, depth, [])
    if authored:
        for pk, partners in pairing_partners(pull_request_ids=opened.filter(has_files).values("pk")).items():
            for partner in partners:
                work[pk][partner.person.pk].add(PAIRED)

    maps: list[AreaMap] = []
    if DIRECTORY in kinds:
        maps.append(_Directories(repositories, depth))
    if CODEOWNERS in kinds and repositories:
        maps.append(_Codeowners(repositories))
    if SERVICE in kinds and repositories:
        maps += [extra for factory in area_maps if (extra := factory(repositories)) is not None]

    # Each change's areas (a repository's path is placed once), then each area's people and changes.
    placed: dict[tuple[int, str], tuple[AreaRef, ...]] = {}
    areas_of: dict[int, set[AreaRef]] = defaultdict(set)
    # Two index-friendly subqueries (an OR of them reads every changed file); a file of both is placed twice, once.
    files = itertools.chain(
        ChangedFile.objects.filter(pull_request__in=opened.values("pk")).values_list("pull_request_id", "path"),
        ChangedFile.objects.filter(pull_request__in=reviewed.values("pull_request_id")).values_list(
            "pull_request_id", "path"
        ),
    )
    for pk, path in files:
        key = (repository_of[pk], path)
        areas = placed.get(key)
        if areas is None:
            areas = placed[key] = tuple(
                dict.fromkeys(area for area_map in maps for area in area_map.areas_of(key[0], path))
            )
        areas_of[pk].update(areas)
    by_area: dict[AreaRef, dict[int, dict[str, set[int]]]] = defaultdict(dict)
    changes_of: dict[AreaRef, set[int]] = defaultdict(set)
    for pk, touched in areas_of.items():
        who = work[pk]
        for area in touched:
            changes_of[area].add(pk)
            bucket = by_area[area]
            for person_id, did in who.items():
                known = bucket.get(person_id)
                if known is None:
                    known = bucket[person_id] = {kind: set() for kind in WORK_KINDS}
                for kind in did:
                    known[kind].add(pk)

    people_ids = {person_id for by_person in by_area.values() for person_id in by_person}
    names = dict(Person.objects.filter(pk__in=people_ids).values_list("pk", "display_name"))
    candidates = _newcomers(team.pk, now)
    assigned: dict[int, int] = defaultdict(int)
    found: list[AreaKnowledge] = []
    for area, by_person in sorted(by_area.items(), key=lambda item: (-len(changes_of[item[0]]), item[0].key)):
        people = tuple(
            sorted(
                (
                    Knower(
                        person_id,
                        names.get(person_id, str(person_id)),
                        len(did[AUTHORED]),
                        len(did[REVIEWED]),
                        len(did[PAIRED]),
                        len(did[AUTHORED] | did[REVIEWED] | did[PAIRED]),
                    )
                    for person_id, did in by_person.items()
                ),
                key=lambda knower: (-knower.changes, knower.name, knower.person_id),
            )
        )
        next_pair = None
        if len(people) == 1:
            newcomers = [c for c in candidates if c.person_id not in by_person]
            if newcomers:
                chosen = min(newcomers, key=lambda c: (assigned[c.person_id], *least_loaded(c)))
                assigned[chosen.person_id] += 1
                next_pair = (chosen.person_id, chosen.name)
        found.append(AreaKnowledge(area, len(changes_of[area]), people, next_pair))
    found.sort(key=lambda item: (not item.known_by_one, -item.changes, item.area.key))
    return TeamKnowledge(since, until, depth, found)


def _newcomers(team_id: int, now: dt.datetime) -> list[Candidate]:
    """The team's members who could pair or review next: no bot, nobody away; with their current load."""
    rows = (
        Membership.objects.filter(team_id=team_id, person__is_bot=False)
        .filter(Q(person__away_until__isnull=True) | Q(person__away_until__lt=now.date()))
        .values_list("person_id", "person__display_name")
        .distinct()
    )
    candidates = {pk: Candidate(pk, name) for pk, name in rows}
    if candidates:
        candidates_load(candidates, now)
    return list(candidates.values())
