"""Who knows which part of a repository: the people who authored, reviewed or paired on changes under a directory
prefix (an "area"), counted by aggregate queries over ChangedFile, Review and PairingParticipant, never per file.

Reviewer suggestions read it with a decay (recent work counts more); the bus factor per area
(`reviews.selectors.knowledge`) cuts areas with the same `directory_area`.
A file's area is its directory cut to `depth` levels ("payments/ledger/"); a file at the top level is in the root
area "". An area of a shallower file ("payments/") also counts files in its sub-directories that are not areas of the
same question: "knows payments/" is read broadly.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db.models import Case, CharField, Count, Q, QuerySet, Value, When
from django.db.models.functions import TruncWeek

from reviews.models import ChangedFile, PairingParticipant, PullRequest, Review

# Recent work counts more: a change this old counts half as much as one made today.
FAMILIARITY_HALF_LIFE_DAYS = 30
# How far back familiarity is read for a suggestion (older work counts for almost nothing after the decay).
FAMILIARITY_WINDOW = dt.timedelta(days=90)
DEFAULT_AREA_DEPTH = 2
# A change touching more areas than this is read through its first areas (sorted): queries stay bounded.
MAX_AREAS = 12

AUTHORED, REVIEWED, PAIRED = "authored", "reviewed", "paired"
ROOT_AREA = ""


def directory_area(path: str, depth: int = DEFAULT_AREA_DEPTH) -> str:
    """The area of a file: its directory cut to `depth` levels, with a trailing slash; "" at the top level."""
    directories = path.strip("/").split("/")[:-1]
    return "".join(f"{part}/" for part in directories[:depth])


def change_areas(paths: Iterable[str], depth: int = DEFAULT_AREA_DEPTH) -> list[str]:
    return sorted({directory_area(path, depth) for path in paths})[:MAX_AREAS]


def area_label(area: str) -> str:
    return area.rstrip("/") or "the top level"


@dataclass
class AreaWork:
    """What one person did in one area: distinct changes per kind, and the decayed weight of it all."""

    changes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    weight: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.changes.values())


Familiarity = dict[int, dict[str, AreaWork]]  # person id -> area -> work


def decay(age: dt.timedelta) -> float:
    days = max(age.total_seconds(), 0.0) / 86400
    return float(0.5 ** (days / FAMILIARITY_HALF_LIFE_DAYS))


def area_familiarity(
    *,
    repository_ids: Sequence[int],
    areas: Sequence[str],
    since: dt.datetime,
    until: dt.datetime,
    exclude_pull_request_id: int | None = None,
) -> Familiarity:
    """Per person and area, the changes they authored, reviewed or paired on between `since` and `until` in these
    repositories. Four queries whatever the history's size; rows are grouped by person, area and week."""
    if not areas or not repository_ids:
        return {}
    found: Familiarity = defaultdict(lambda: defaultdict(AreaWork))
    pulls = PullRequest.objects.filter(repository_id__in=list(repository_ids))
    if exclude_pull_request_id is not None:
        pulls = pulls.exclude(pk=exclude_pull_request_id)

    authored = (
        ChangedFile.objects.filter(
            _in_areas(areas),
            pull_request__in=pulls.filter(created_at__gte=since, created_at__lt=until, author__is_bot=False),
        )
        .annotate(area=_area_of(areas), week=TruncWeek("pull_request__created_at"))
        .values_list("pull_request__author_id", "area", "week")
        .annotate(changes=Count("pull_request_id", distinct=True))
    )
    reviewed = (
        Review.objects.filter(
            _in_areas(areas, "pull_request__files__"),
            pull_request__in=pulls,
            submitted_at__gte=since,
            submitted_at__lt=until,
            reviewer__is_bot=False,
        )
        .annotate(area=_area_of(areas, "pull_request__files__"), week=TruncWeek("submitted_at"))
        .values_list("reviewer_id", "area", "week")
        .annotate(changes=Count("pull_request_id", distinct=True))
    )
    for kind, rows in ((AUTHORED, authored), (REVIEWED, reviewed)):
        for person_id, area, week, changes in rows:
            if person_id is None:
                continue
            work = found[person_id][area]
            work.changes[kind] += changes
            work.weight += changes * decay(until - (week + dt.timedelta(days=3.5)))

    for person_id, joined_at, touched in _pairing_rows(pulls, repository_ids, areas, since, until):
        for area in touched:
            work = found[person_id][area]
            work.changes[PAIRED] += 1
            work.weight += decay(until - joined_at)
    return {person: dict(by_area) for person, by_area in found.items()}


# A pairing session counts for the changes on its branch opened up to this long after the period's end.
PAIRING_LEAD = dt.timedelta(days=30)


def _pairing_rows(
    pulls: QuerySet[PullRequest],
    repository_ids: Sequence[int],
    areas: Sequence[str],
    since: dt.datetime,
    until: dt.datetime,
) -> list[tuple[int, dt.datetime, set[str]]]:
    """Each stay in a pairing session on the branch of a change in the areas, with the areas it touched. Two
    queries: the branches of the period's changes in the areas, then the stays on them."""
    areas_of: dict[tuple[int, str], set[str]] = defaultdict(set)
    branches = (
        ChangedFile.objects.filter(
            _in_areas(areas),
            pull_request__in=pulls.filter(created_at__gte=since, created_at__lt=until + PAIRING_LEAD),
        )
        .exclude(pull_request__head_ref="")
        .annotate(area=_area_of(areas))
        .values_list("pull_request__repository_id", "pull_request__head_ref", "area")
        .distinct()
    )
    for repository_id, branch, area in branches:
        areas_of[(repository_id, branch)].add(area)
    if not areas_of:
        return []
    stays = (
        PairingParticipant.objects.filter(
            session__repository_id__in=list(repository_ids),
            session__branch__in=sorted({branch for _, branch in areas_of}),
            joined_at__gte=since,
            joined_at__lt=until,
            person__is_bot=False,
        )
        .values_list("person_id", "joined_at", "session__repository_id", "session__branch")
        .distinct()
    )
    return [
        (person_id, joined_at, areas_of[(repository_id, branch)])
        for person_id, joined_at, repository_id, branch in stays
        if (repository_id, branch) in areas_of
    ]


def _area_condition(area: str, prefix: str = "") -> Q:
    if area == ROOT_AREA:
        return ~Q(**{f"{prefix}path__contains": "/"})
    return Q(**{f"{prefix}path__startswith": area})


def _in_areas(areas: Sequence[str], prefix: str = "") -> Q:
    condition = Q()
    for area in areas:
        condition |= _area_condition(area, prefix)
    return condition


def _area_of(areas: Sequence[str], prefix: str = "") -> Case:
    # The deepest area first: "payments/ledger/x.py" is in "payments/ledger/", not "payments/".
    ordered = sorted(areas, key=len, reverse=True)
    return Case(
        *(When(_area_condition(area, prefix), then=Value(area)) for area in ordered),
        output_field=CharField(),
    )
