"""Review health: the figures of shared/METRICS.md, computed for a set of repositories over a period.

Bounded queries whatever the history's size: one query per kind of row, restricted to the period, then plain
Python over those rows. How each pull request was reviewed and paired (approvals that counted, rubber stamps,
pairing, review activity) is `reviews.selectors.review_facts`, shared with every other surface. Bots are left out
of every figure, as authors and as reviewers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, overload

from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, Count, DateTimeField, Exists, F, FloatField, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import TruncWeek
from django.utils import timezone

from reviews.models import (
    FIGURES_DURATIONS,
    Comment,
    FiguresDailyRollup,
    FiguresRollup,
    Person,
    PullRequest,
    PullRequestFigures,
    Repository,
    Review,
    Team,
)
from reviews.selectors.order_statistics import (
    OrderStatistics,
    RowsDisagree,
    histograms_of,
    interpolated,
    measured_total,
    ranks_of,
)
from reviews.selectors.review_facts import (
    NO_FACTS,
    ReviewFacts,
    pull_request_review_facts,
    review_facts_of,
    reviews_with_reviewer,
)

SIZE_BUCKETS = (("xs", 10), ("s", 50), ("m", 250), ("l", 1000), ("xl", math.inf))
STALE_AFTER = dt.timedelta(days=7)


@dataclass(frozen=True)
class Distribution:
    """Median and 90th percentile of durations, in hours; None when there is nothing to measure."""

    count: int
    median_hours: float | None
    p90_hours: float | None

    @classmethod
    def of(cls, durations: Iterable[dt.timedelta | None]) -> Distribution:
        hours = sorted(hours for d in durations if (hours := measured_hours(d)) is not None)
        return cls(len(hours), percentile(hours, 50), percentile(hours, 90))


def measured_hours(duration: dt.timedelta | None) -> float | None:
    """A duration as a distribution counts it, in hours; None when it does not count (unknown or negative)."""
    if duration is None or duration < dt.timedelta(0):
        return None
    return duration.total_seconds() / 3600


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), rounded to 2 decimals."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    value = sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
    return round(value, 2)


@dataclass(frozen=True)
class PullRequestFlow:
    """One merged pull request's review timeline (METRICS.md "Review flow")."""

    pull_request_id: int
    merged_at: dt.datetime
    changed_lines: int | None
    time_to_first_review: dt.timedelta | None
    pickup_time: dt.timedelta | None
    review_time: dt.timedelta | None
    time_to_approve: dt.timedelta | None
    merge_time: dt.timedelta | None
    cycle_time: dt.timedelta | None
    rework_cycles: int
    approvals: int  # that counted
    rubber_stamps: int
    paired: bool
    comments: int
    reviews_by: tuple[tuple[int, int], ...] = ()  # (reviewer, reviews given): reviewer load
    facts: ReviewFacts = field(default=NO_FACTS, repr=False)

    @property
    def coverage(self) -> str:
        """reviewed (an approval that counted), paired_only (paired with a non-author, no approval), or neither."""
        if self.approvals:
            return "reviewed"
        return "paired_only" if self.paired else "neither"


@dataclass(frozen=True)
class ReviewerLoad:
    person_id: int
    name: str
    reviews_given: int
    waiting_on_them: int


@dataclass
class ReviewHealth:
    since: dt.datetime
    until: dt.datetime
    merged: int
    time_to_first_review: Distribution
    pickup_time: Distribution
    review_time: Distribution
    time_to_approve: Distribution
    merge_time: Distribution
    cycle_time: Distribution
    rework_cycles_mean: float | None
    coverage: dict[str, int]  # reviewed / paired_only / neither
    approvals: int
    rubber_stamps: int
    rubber_stamps_by_reviewer: dict[str, int]
    review_depth: float | None  # non-author comments per reviewed pull request
    size_buckets: dict[str, int]
    reviewer_load: list[ReviewerLoad]
    top_reviewer_share: float | None
    weekly: list[dict[str, object]] = field(default_factory=list)
    flows: Sequence[PullRequestFlow] = field(default_factory=list, repr=False)

    @property
    def coverage_share(self) -> float | None:
        return self.coverage["reviewed"] / self.merged if self.merged else None

    @property
    def rubber_stamp_share(self) -> float | None:
        return self.rubber_stamps / self.approvals if self.approvals else None

    @property
    def bus_factor_warning(self) -> bool:
        return self.top_reviewer_share is not None and self.top_reviewer_share > 0.5


class StoredFlows(Sequence[PullRequestFlow]):
    """The flows behind figures aggregated from the stored rows (`figures`): computed, with their review facts, only
    when first read (the drill-down lists them; the figures themselves do not need them)."""

    def __init__(
        self, figures: QuerySet[PullRequestFigures], compute: Callable[[], list[PullRequestFlow]], bots: set[int]
    ) -> None:
        self.figures = figures
        self.bots = bots  # left out of `figures`
        self._compute = compute
        self._flows: list[PullRequestFlow] | None = None
        # Read with the figures from the rollups: the agreement counts asked for, by (seconds, size), and the
        # compliance counts of every status but overridden, as (repository, path, status, outcome, "", count).
        self.agreements: dict[tuple[float, int], dict[str, int]] = {}
        self.compliance_rows: list[tuple[Any, ...]] | None = None

    def stored(self) -> list[tuple[PullRequestFlow, PullRequestFigures]]:
        """Each flow as its stored row holds it (`stored_flow`: no review facts), with the row: what the figures
        aggregated, read in one query instead of computing every flow's facts again."""
        return [(stored_flow(row), row) for row in self.figures.order_by("pull_request_id")]

    def _all(self) -> list[PullRequestFlow]:
        if self._flows is None:
            self._flows = self._compute()
        return self._flows

    @overload
    def __getitem__(self, index: int) -> PullRequestFlow: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PullRequestFlow]: ...

    def __getitem__(self, index: int | slice) -> PullRequestFlow | Sequence[PullRequestFlow]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())


def stored_flow(row: PullRequestFigures) -> PullRequestFlow:
    """A merged pull request's flow as its stored figures hold it (`reviews.services.figures` wrote them from the
    computed flow): every figure, without the review facts behind them."""
    return PullRequestFlow(
        pull_request_id=row.pull_request_id,
        merged_at=row.merged_at,
        changed_lines=row.changed_lines,
        time_to_first_review=stored_duration(row.time_to_first_review),
        pickup_time=stored_duration(row.pickup_time),
        review_time=stored_duration(row.review_time),
        time_to_approve=stored_duration(row.time_to_approve),
        merge_time=stored_duration(row.merge_time),
        cycle_time=stored_duration(row.cycle_time),
        rework_cycles=row.rework_cycles,
        approvals=row.approvals,
        rubber_stamps=row.rubber_stamps,
        paired=row.paired,
        comments=row.comments,
        reviews_by=tuple((int(reviewer), int(n)) for reviewer, n in row.reviews_by),
    )


def stored_duration(seconds: float | None) -> dt.timedelta | None:
    """A duration as the stored figures hold it (seconds), back as the flow had it."""
    return None if seconds is None else dt.timedelta(seconds=seconds)


def size_bucket(changed_lines: int | None) -> str | None:
    if changed_lines is None:
        return None
    return next(name for name, limit in SIZE_BUCKETS if changed_lines <= limit)


def team_pull_requests(team: Team) -> QuerySet[PullRequest]:
    return PullRequest.objects.filter(repository__team=team)


# Off: every figure computed from the flows on each read, as before the stored figures (bench/team_page.py compares).
STORED_FIGURES = True


@dataclass
class ReadOnce:
    """What `review_health` reads alike for every period of one page (the same `pull_requests`, the configured bot
    setting): who is a bot, the open pull requests waiting on each person now, and people's names. Read by the first
    period that needs them, and reused by the next (the team page's previous period): one read of each a page."""

    bots: set[int] | None = None
    waiting: Counter[int] | None = None
    names: dict[int, str] = field(default_factory=dict)

    def bots_of(self, include_bots: bool | None) -> set[int]:
        if include_bots is not None:  # another setting than the configured one: not this memo's
            return _bots(include_bots)
        if self.bots is None:
            self.bots = _bots(None)
        return self.bots

    def names_of(self, people: set[int]) -> dict[int, str]:
        missing = people - set(self.names)
        if missing:
            self.names.update(Person.objects.filter(pk__in=missing).values_list("pk", "display_name"))
        return {pk: self.names[pk] for pk in people if pk in self.names}


def review_health(
    *,
    pull_requests: QuerySet[PullRequest],
    since: dt.datetime,
    until: dt.datetime,
    include_bots: bool | None = None,
    repositories: QuerySet[Repository] | None = None,
    agreement: tuple[dt.timedelta, int] | None = None,
    read_once: ReadOnce | None = None,
    weekly: bool = True,
) -> ReviewHealth:
    """Figures over the pull requests (of `pull_requests`) merged in [since, until). How each was reviewed and
    paired comes from `pull_request_review_facts`, as on every other surface.

    Under the configured bot setting the figures are aggregated in SQL from the stored per-pull-request figures
    (`PullRequestFigures`), those missing or owed computed and stored first: never wrong, only slower.

    `repositories`: `pull_requests` are exactly these repositories' pull requests (no other filter), so that over
    whole UTC hours the additive figures are read from their rollups (`FiguresDailyRollup` for whole UTC days,
    `FiguresRollup` for the hours of the edges) and only the percentiles from the rows. `agreement` (review within,
    size at most): `agreement_counts` of it are counted in the same pass. `read_once`: shared by the periods of one
    page over the same `pull_requests` (`ReadOnce`). `weekly` False: no weeks (`weekly` empty, not weeks without
    figures), for a caller that shows none (the team page's previous period): their medians are not read."""
    bots = read_once.bots_of(include_bots) if read_once is not None else _bots(include_bots)
    if STORED_FIGURES and (include_bots is None or include_bots == settings.METRICS_INCLUDE_BOTS):
        if repositories is not None and _whole_hours(since) and _whole_hours(until):
            shared = read_once if read_once is not None and include_bots is None else ReadOnce(bots=bots)
            return _rolled_up_health(pull_requests, repositories, since, until, bots, agreement, shared, weekly)
        found = _stored_health(pull_requests, since, until, bots)
        return found if weekly else dataclasses.replace(found, weekly=[])
    merged = _merged(pull_requests, since, until, bots)
    ids = [row["pk"] for row in merged]
    reviews = _reviews_by_pull_request(ids, bots)
    facts = pull_request_review_facts(pull_request_ids=ids)
    flows = [_flow(row, reviews[row["pk"]], facts.get(row["pk"], NO_FACTS)) for row in merged]
    stamps = Counter(stamp.reviewer_id for found in facts.values() for stamp in found.rubber_stamps)
    given = Counter(r.reviewer_id for rows in reviews.values() for r in rows)
    return ReviewHealth(
        since=since,
        until=until,
        merged=len(flows),
        time_to_first_review=Distribution.of(f.time_to_first_review for f in flows),
        pickup_time=Distribution.of(f.pickup_time for f in flows),
        review_time=Distribution.of(f.review_time for f in flows),
        time_to_approve=Distribution.of(f.time_to_approve for f in flows),
        merge_time=Distribution.of(f.merge_time for f in flows),
        cycle_time=Distribution.of(f.cycle_time for f in flows),
        rework_cycles_mean=round(sum(f.rework_cycles for f in flows) / len(flows), 2) if flows else None,
        coverage=coverage_of(flows),
        approvals=sum(f.approvals for f in flows),
        rubber_stamps=sum(stamps.values()),
        rubber_stamps_by_reviewer=_names(stamps),
        review_depth=_depth(flows),
        size_buckets=_size_buckets(flows),
        reviewer_load=_reviewer_load(pull_requests, given, bots),
        top_reviewer_share=_top_share(given),
        weekly=_weekly(flows, since, until) if weekly else [],
        flows=flows,
    )


def computed_flows(*, pull_requests: list[PullRequest], bots: set[int]) -> list[PullRequestFlow]:
    """The flows of these merged pull requests (read with their repositories' connections; bots' left out by the
    caller), computed from their facts as `review_health` computes them: what the stored figures hold."""
    every_review = reviews_with_reviewer(pull_requests)
    facts = review_facts_of(pull_requests=pull_requests, every_review=every_review)
    reviews: dict[int, list[_Review]] = defaultdict(list)
    for review in every_review:
        if review.reviewer_id is not None and review.reviewer_id not in bots:
            reviews[review.pull_request_id].append(_Review(review.reviewer_id, review.state, review.submitted_at))
    return [
        _flow({name: getattr(pr, name) for name in _FLOW_FIELDS}, reviews[pr.pk], facts.get(pr.pk, NO_FACTS))
        for pr in pull_requests
    ]


DURATIONS = FIGURES_DURATIONS
_WEEKLY_MEDIANS = ("time_to_first_review", "pickup_time", "cycle_time")
_WEEKLY_FIGURES = {"merged", "coverage_reviewed", *(f"{name}_percentiles" for name in _WEEKLY_MEDIANS)}


class Percentiles(Aggregate):
    """PostgreSQL's `percentile_cont` of the median and the 90th percentile in one sort: linear interpolation between
    closest ranks, as `percentile` computes it."""

    function = "percentile_cont"
    template = "%(function)s(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, **extra: Any) -> None:
        from django.contrib.postgres.fields import ArrayField

        super().__init__(expression, output_field=ArrayField(FloatField()), **extra)


def _stored_health(
    pull_requests: QuerySet[PullRequest], since: dt.datetime, until: dt.datetime, bots: set[int]
) -> ReviewHealth:
    """`review_health` from the stored figures: a fixed number of grouped queries, whatever the period holds."""
    merged = _merged_in(pull_requests, since, until, bots)
    figures = current_figures(merged=merged, bots=bots)
    totals, weekly = _stored_aggregates(figures)
    given, stamps, waiting = _load_counts(pull_requests, figures, bots)
    flows = StoredFlows(figures, lambda: merged_flows(pull_requests=pull_requests, since=since, until=until), bots)
    return _aggregated_health(since, until, totals, weekly, (given, stamps, waiting), flows)


def _aggregated_health(
    since: dt.datetime,
    until: dt.datetime,
    totals: Mapping[str, Any],
    weekly: Mapping[dt.date, Mapping[str, Any]],
    people: tuple[Counter[int], Counter[int], Counter[int]],
    flows: StoredFlows,
    read_once: ReadOnce | None = None,
    with_weeks: bool = True,
) -> ReviewHealth:
    """`ReviewHealth` from the aggregates (`_figures_aggregates`' names, `_week_figures`' per week) and the counts per
    person (reviews given, rubber stamps, waiting now), with their names (one query, none for names `read_once`
    holds already)."""
    given, stamps, waiting = people
    names = (read_once or ReadOnce()).names_of(set(stamps) | set(given) | set(waiting))
    load = [ReviewerLoad(pk, names.get(pk, "?"), given[pk], waiting[pk]) for pk in set(given) | set(waiting)]
    count = totals["merged"]
    return ReviewHealth(
        since=since,
        until=until,
        merged=count,
        **{name: _distribution_of(totals, name) for name in DURATIONS},
        rework_cycles_mean=round(totals["all_rework_cycles"] / count, 2) if count else None,
        coverage={kind: totals[f"coverage_{kind}"] for kind in ("reviewed", "paired_only", "neither")},
        approvals=totals["all_approvals"],
        rubber_stamps=totals["all_rubber_stamps"],
        rubber_stamps_by_reviewer={names[pk]: n for pk, n in stamps.most_common()},
        review_depth=round(totals["depth_comments"] / totals["depth"], 2) if totals["depth"] else None,
        size_buckets={name: totals[f"size_{name}"] for name, _ in SIZE_BUCKETS},
        reviewer_load=sorted(load, key=lambda item: (-item.reviews_given, -item.waiting_on_them, item.name)),
        top_reviewer_share=_top_share(given),
        weekly=[
            {**week, **_week_figures(weekly.get(cast(dt.date, week["week"])))}
            for week in (weeks_of(since, until) if with_weeks else [])
        ],
        flows=flows,
    )


def _whole_hours(moment: dt.datetime) -> bool:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) == moment


def _rolled_up_health(
    pull_requests: QuerySet[PullRequest],
    repositories: QuerySet[Repository],
    since: dt.datetime,
    until: dt.datetime,
    bots: set[int],
    agreement: tuple[dt.timedelta, int] | None,
    read_once: ReadOnce,
    with_weeks: bool = True,
) -> ReviewHealth:
    """`_stored_health` over whole UTC hours: the sums from the period's per-day and per-hour rollups (and the open
    pull requests waiting on each reviewer, in the same query), the percentiles and agreement counts from their
    histograms and the buckets' rows (`order_statistics`), the names: three queries after the owed rows are computed
    (which keeps the rollups right)."""
    merged = _merged_in(pull_requests, since, until, bots)
    of_repositories = PullRequestFigures.objects.filter(repository__in=repositories)
    in_period = of_repositories.filter(merged_at__gte=since, merged_at__lt=until)
    figures = current_figures(merged=merged, bots=bots, summed=in_period)
    rollups, waiting = _rollups_and_waiting(repositories, pull_requests, since, until, bots, read_once.waiting)
    read_once.waiting = waiting
    # Each day's or hour's counts (with its histograms: a few hundred names) are added once, to its week and
    # repository; the week's, the repository's and the period's sums are the sums of those few.
    summed: dict[tuple[dt.date, int, str], Counter[str]] = defaultdict(Counter)
    for repository_id, full_path, hour, counts in rollups:
        summed[week_of(hour), repository_id, full_path].update(counts)
    totals, weekly_sums, by_repository = _sums_by_week_and_repository(summed)
    limits = (agreement[0].total_seconds(), agreement[1]) if agreement else None
    mondays = [cast(dt.date, week["week"]) for week in weeks_of(since, until)] if with_weeks else []
    rolled = _Histograms({repository_id for repository_id, *_ in rollups}, totals, weekly_sums)
    durations, weekly_medians, agreed = _duration_figures(of_repositories, (since, until), mondays, limits, rolled)
    given, stamps = _per_person(totals, "given:"), _per_person(totals, "stamps:")
    flows = StoredFlows(figures, lambda: merged_flows(pull_requests=pull_requests, since=since, until=until), bots)
    if limits is not None:
        flows.agreements[limits] = agreed
    flows.compliance_rows = [
        (repository_id, full_path, *name.split(":", 2)[1:], "", n)
        for (repository_id, full_path), counts in by_repository.items()
        for name, n in counts.items()
        if name.startswith("compliance:")
    ]
    no_medians = {f"{name}_p50": None for name in _WEEKLY_MEDIANS}
    weeks = {
        week: {**no_medians, **weekly_medians.get(week, {}), "merged": sums["merged"]}
        | {"coverage_reviewed": sums["coverage_reviewed"]}
        for week, sums in weekly_sums.items()
    }
    figures_totals: Counter[Any] = Counter(totals)  # a sum no rollup holds is 0
    for name, value in durations.items():
        figures_totals[name] = value
    return _aggregated_health(
        since, until, figures_totals, weeks, (given, stamps, waiting), flows, read_once, with_weeks
    )


def _sums_by_week_and_repository(
    summed: Mapping[tuple[dt.date, int, str], Counter[str]],
) -> tuple[Counter[str], Mapping[dt.date, Counter[str]], Mapping[tuple[int, str], Counter[str]]]:
    """The period's, each week's and each repository's sums of the (week, repository) sums. One repository (most
    teams): its weeks' sums are the weeks', and the period's are its own (a few thousand additions less)."""
    totals: Counter[str] = Counter()
    repositories = {(repository_id, full_path) for _, repository_id, full_path in summed}
    if len(repositories) == 1:
        weekly = {week: counts for (week, _, _), counts in summed.items()}
        for counts in weekly.values():
            totals.update(counts)
        return totals, weekly, {repositories.pop(): totals}
    weekly_sums: dict[dt.date, Counter[str]] = defaultdict(Counter)
    by_repository: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    for (week, repository_id, full_path), counts in summed.items():
        totals.update(counts)
        weekly_sums[week].update(counts)
        by_repository[repository_id, full_path].update(counts)
    return totals, weekly_sums, by_repository


def _per_person(totals: Counter[str], prefix: str) -> Counter[int]:
    return Counter({int(name[len(prefix) :]): n for name, n in totals.items() if name.startswith(prefix) and n})


def _rollups_and_waiting(
    repositories: QuerySet[Repository],
    pull_requests: QuerySet[PullRequest],
    since: dt.datetime,
    until: dt.datetime,
    bots: set[int],
    waiting: Counter[int] | None = None,
) -> tuple[list[tuple[int, str, dt.datetime, dict[str, int]]], Counter[int]]:
    """The period's rollups (repository, its path, start, counts: a whole UTC day's from `FiguresDailyRollup`, the
    edges' hours from `FiguresRollup`) and the open pull requests waiting on each person now
    (`awaiting_reviewers`; unless `waiting` holds them, read for another period of the page): one query."""
    first_day, end_day = _whole_days(since, until)
    if first_day < end_day:
        edges = Q(hour__gte=since, hour__lt=_midnight(first_day)) | Q(hour__gte=_midnight(end_day), hour__lt=until)
    else:  # no whole UTC day in the period (and the days' filter finds none)
        edges = Q(hour__gte=since, hour__lt=until)
    days = Q(day__gte=first_day, day__lt=end_day)
    fields = ("repository_id", "repository__full_path")
    parts = [
        FiguresRollup.objects.filter(edges, repository__in=repositories)
        .order_by()
        .values_list(*fields, "hour", "counts"),
        FiguresDailyRollup.objects.filter(days, repository__in=repositories)
        .order_by()
        .values_list(*fields, "day", "counts"),
    ]
    (hours_sql, hours_params), (days_sql, days_params) = (part.query.sql_with_params() for part in parts)
    # Only the ORM's own SQL is formatted in; values are parameters.
    sql = (
        f"SELECT 'hour', r.*, CAST(NULL AS bigint) FROM ({hours_sql}) r "  # noqa: S608
        f"UNION ALL SELECT 'day', d.*, CAST(NULL AS bigint) FROM ({days_sql}) d"
    )
    params = [*hours_params, *days_params]
    if waiting is None:
        waiting_sql, waiting_params = _waiting_counts(pull_requests, bots).query.sql_with_params()
        sql += f" UNION ALL SELECT 'waiting', w.person_id, NULL, NULL, NULL, w.n FROM ({waiting_sql}) w"  # noqa: S608
        params += waiting_params
    found: list[tuple[int, str, dt.datetime, dict[str, int]]] = []
    waiting_on: Counter[int] = Counter() if waiting is None else Counter(waiting)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, first, full_path, start, counts, n in cursor.fetchall():
            if kind == "waiting":
                waiting_on[int(first)] += int(n)
            else:
                found.append((int(first), full_path, _start(start), _json(counts)))
    return found, waiting_on


def _whole_days(since: dt.datetime, until: dt.datetime) -> tuple[dt.date, dt.date]:
    """The UTC days wholly in [since, until): from the first to the end (excluded; not after it: none)."""
    first = since.astimezone(dt.UTC).date()
    if _midnight(first) < since:
        first += dt.timedelta(days=1)
    return first, until.astimezone(dt.UTC).date()


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _start(value: Any) -> dt.datetime:
    """A rollup's hour or day (its first moment, UTC) as the union gives it: PostgreSQL casts the day to a timestamp
    (midnight in the session's time zone, UTC), SQLite gives text."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return _midnight(value)
    return _utc(value)


def _utc(moment: Any) -> dt.datetime:
    """A timestamp as a raw cursor gives it (SQLite: text, naive UTC), as an aware UTC datetime."""
    found: dt.datetime = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return found if found.tzinfo else found.replace(tzinfo=dt.UTC)


def _json(value: Any) -> dict[str, int]:
    return json.loads(value) if isinstance(value, (str, bytes)) else dict(value)


@dataclass(frozen=True)
class _Histograms:
    """What the period's rollups say of its rows: their repositories, the period's counts, each week's."""

    repository_ids: set[int]
    totals: Mapping[str, int]
    weekly: Mapping[dt.date, Mapping[str, int]]


def _duration_figures(
    figures: QuerySet[PullRequestFigures],
    period: tuple[dt.datetime, dt.datetime],
    weeks: Sequence[dt.date],
    limits: tuple[float, int] | None,
    rolled: _Histograms,
) -> tuple[dict[str, Any], dict[dt.date, dict[str, Any]], dict[str, int]]:
    """What does not add up: per duration its measured count, median and 90th percentile (`_distribution_of`), the
    medians of `_WEEKLY_MEDIANS` in each of `weeks` (Mondays, UTC: `week_of`), and the agreement counts of `limits`
    (seconds, size). PostgreSQL: from the rollups' histograms and the few rows of the buckets that hold the ranks
    (`order_statistics`; one query, none for an empty period), or if those rows disagree with the rollups (a writer
    in between), `percentile_cont` over the period's rows (the period's figures, then each week's); SQLite: Python
    over the rows."""
    since, until = period
    if _postgresql():
        try:
            return _histogram_figures(rolled, period, weeks, limits)
        except RowsDisagree:
            pass
    else:
        in_period = figures.filter(merged_at__gte=since, merged_at__lt=until)
        rows = list(in_period.values_list("merged_at", *DURATIONS, "changed_lines"))
        by_week: dict[dt.date, list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            by_week[week_of(row[0])].append(row)
        return (
            _python_durations(rows, DURATIONS),
            {week: _python_durations(listed, _WEEKLY_MEDIANS) for week, listed in by_week.items()},
            _python_agreed(rows, limits),
        )
    inner, params = figures.order_by().values("merged_at", *DURATIONS, "changed_lines").query.sql_with_params()
    columns: list[str] = []
    for name in DURATIONS:
        columns += [f"COUNT(*) FILTER (WHERE f.{name} >= 0)", _PERCENTILES_SQL.format(name=name)]
    agreed = ("in_time", "late", "within", "over")
    limit_params: list[Any] = []
    if limits is not None:
        columns += [f"COUNT(*) FILTER (WHERE f.{condition} %s)" for condition in _AGREED_SQL]
        limit_params = [limits[0], limits[0], limits[1], limits[1]]
    else:
        columns += ["0"] * len(agreed)
    week_columns = [f"0, m.{name}" if name in _WEEKLY_MEDIANS else "0, NULL::float8[]" for name in DURATIONS]
    medians = ", ".join(f"{_PERCENTILES_SQL.format(name=name)} AS {name}" for name in _WEEKLY_MEDIANS)
    # The period's rows (`figures` are the repositories') and each week's from index range scans whose bounds the
    # planner does not see (LATERAL subqueries over `unnest`): with the period's bounds in sight it reads the whole
    # table for a period that holds most of it (115 ms at 100,000, the covering index 67 ms), and a week's medians
    # from their own rows cost less than the period's rows sorted by week. Only the code's own names and fragments
    # and the ORM's SQL are formatted in; values are parameters.
    period_sql = "unnest(%s::timestamptz[], %s::timestamptz[]) p(since, until)"
    sql = (
        f"SELECT NULL::date, t.* FROM {period_sql} CROSS JOIN LATERAL (SELECT {', '.join(columns)} "  # noqa: S608
        f"FROM ({inner}) f WHERE f.merged_at >= p.since AND f.merged_at < p.until) t "
        f"UNION ALL SELECT (w.monday AT TIME ZONE 'UTC')::date, {', '.join(week_columns)}, {', '.join(['0'] * 4)} "
        f"FROM {period_sql}, unnest(%s::timestamptz[]) w(monday) CROSS JOIN LATERAL (SELECT {medians} "
        f"FROM ({inner}) f WHERE f.merged_at >= greatest(w.monday, p.since) "
        "AND f.merged_at < least(w.monday + interval '7 days', p.until)) m"
    )
    mondays = [dt.datetime.combine(week, dt.time.min, tzinfo=dt.UTC) for week in weeks]
    bounds = [[since], [until]]
    totals: dict[str, Any] = {}
    agreement = dict.fromkeys(agreed, 0)
    found_weeks: dict[dt.date, dict[str, Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [*bounds, *limit_params, *params, *bounds, mondays, *params])
        for week, *values in cursor.fetchall():
            found: dict[str, Any] = {}
            for index, name in enumerate(DURATIONS):
                found[f"{name}_count"] = values[2 * index]
                found[f"{name}_p50"], found[f"{name}_p90"] = values[2 * index + 1] or (None, None)
            if week is None:
                totals = found
                if limits is not None:
                    agreement = dict(zip(agreed, values[-len(agreed) :], strict=True))
            else:
                found_weeks[week] = {f"{name}_p50": found[f"{name}_p50"] for name in _WEEKLY_MEDIANS}
    return totals, found_weeks, agreement


def _histogram_figures(
    rolled: _Histograms,
    period: tuple[dt.datetime, dt.datetime],
    weeks: Sequence[dt.date],
    limits: tuple[float, int] | None,
) -> tuple[dict[str, Any], dict[dt.date, dict[str, Any]], dict[str, int]]:
    """`_duration_figures` from the histograms: every rank and limit asked, the buckets read in one query, answered."""
    statistics = OrderStatistics(sorted(rolled.repository_ids))
    whole = histograms_of(rolled.totals)
    of_week = {week: histograms_of(rolled.weekly.get(week, {})) for week in weeks}
    week_period = {week: _week_period(week, period) for week in weeks}
    asked: list[tuple[str, Mapping[str, int], tuple[dt.datetime, dt.datetime], float]] = [
        (name, whole[name], period, q) for name in DURATIONS for q in (50, 90)
    ]
    asked += [(name, of_week[week][name], week_period[week], 50) for week in weeks for name in _WEEKLY_MEDIANS]
    for name, histogram, span, q in asked:
        for rank in ranks_of(histogram, q):
            statistics.ask_rank(name, histogram, span, rank)
    if limits is not None:
        statistics.ask_limit("time_to_first_review", whole["time_to_first_review"], period, limits[0])
        statistics.ask_limit("changed_lines", whole["changed_lines"], period, limits[1])
    statistics.read()
    totals: dict[str, Any] = {}
    for name in DURATIONS:
        totals[f"{name}_count"] = measured_total(whole[name])
        for q, key in ((50, "p50"), (90, "p90")):
            totals[f"{name}_{key}"] = interpolated(statistics, name, whole[name], period, q)
    medians = {
        week: {
            f"{name}_p50": interpolated(statistics, name, of_week[week][name], week_period[week], 50)
            for name in _WEEKLY_MEDIANS
        }
        for week in weeks
    }
    agreed = {"in_time": 0, "late": 0, "within": 0, "over": 0}
    if limits is not None:
        first, sizes = whole["time_to_first_review"], whole["changed_lines"]
        agreed["in_time"] = statistics.count_at_most("time_to_first_review", first, period, limits[0])
        agreed["late"] = sum(first.values()) - agreed["in_time"]
        agreed["within"] = statistics.count_at_most("changed_lines", sizes, period, limits[1])
        agreed["over"] = sum(sizes.values()) - agreed["within"]
    return totals, medians, agreed


def _week_period(week: dt.date, period: tuple[dt.datetime, dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    """The part of the period in the ISO week from Monday `week` (UTC)."""
    monday = dt.datetime.combine(week, dt.time.min, tzinfo=dt.UTC)
    return max(monday, period[0]), min(monday + dt.timedelta(days=7), period[1])


_PERCENTILES_SQL = (
    "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY f.{name} / 3600.0) FILTER (WHERE f.{name} >= 0)"
)
_AGREED_SQL = ("time_to_first_review <=", "time_to_first_review >", "changed_lines <=", "changed_lines >")


def _python_durations(rows: list[tuple[Any, ...]], names: Sequence[str]) -> dict[str, Any]:
    """`_duration_figures`' count, median and 90th percentile of each of `names`, over rows of (merged_at,
    DURATIONS..., changed_lines)."""
    found: dict[str, Any] = {}
    for name in names:
        index = 1 + DURATIONS.index(name)
        hours = sorted(row[index] / 3600 for row in rows if row[index] is not None and row[index] >= 0)
        found[f"{name}_count"] = len(hours)
        found[f"{name}_p50"], found[f"{name}_p90"] = percentile(hours, 50), percentile(hours, 90)
    return found


def _python_agreed(rows: list[tuple[Any, ...]], limits: tuple[float, int] | None) -> dict[str, int]:
    if limits is None:
        return {"in_time": 0, "late": 0, "within": 0, "over": 0}
    first = [row[1] for row in rows if row[1] is not None]
    sizes = [row[-1] for row in rows if row[-1] is not None]
    return {
        "in_time": sum(1 for seconds in first if seconds <= limits[0]),
        "late": sum(1 for seconds in first if seconds > limits[0]),
        "within": sum(1 for n in sizes if n <= limits[1]),
        "over": sum(1 for n in sizes if n > limits[1]),
    }


def _load_counts(
    pull_requests: QuerySet[PullRequest], figures: QuerySet[PullRequestFigures], bots: set[int]
) -> tuple[Counter[int], Counter[int], Counter[int]]:
    """Per person: reviews given on the period's merged pull requests and rubber stamps among them (both from the
    stored rows' per-reviewer lists), and open pull requests waiting on them now (`awaiting_reviewers`): one
    query."""
    waiting = _waiting_counts(pull_requests, bots)
    parts = [
        _listed_counts(figures, "reviews_by", "given", pairs=True),
        _listed_counts(figures.filter(rubber_stamps__gt=0), "rubber_stamped_by", "stamps", pairs=False),
    ]
    waiting_sql, waiting_params = waiting.query.sql_with_params()
    waiting_part = f"SELECT 'waiting', w.* FROM ({waiting_sql}) w"  # noqa: S608 (the ORM's own SQL)
    sql = " UNION ALL ".join([part for part, _ in parts] + [waiting_part])
    params = [param for _, listed in parts for param in listed] + list(waiting_params)
    found: dict[str, Counter[int]] = {"given": Counter(), "stamps": Counter(), "waiting": Counter()}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, person_id, n in cursor.fetchall():
            found[kind][int(person_id)] += int(n)
    return found["given"], found["stamps"], found["waiting"]


def _listed_counts(
    figures: QuerySet[PullRequestFigures], column: str, kind: str, *, pairs: bool
) -> tuple[str, tuple[Any, ...]]:
    """SQL of (kind, person, count) over a JSON list column of the stored rows: `[[person, n], ...]` (pairs) or
    `[person, ...]` (each entry counts once)."""
    inner, params = figures.order_by().values(column).query.sql_with_params()
    vendor = "postgresql" if _postgresql() else "sqlite"
    elements, person, n = _LISTED_SQL[vendor, pairs]
    # Only the code's own names and fragments are formatted in; values are parameters.
    sql = f"SELECT '{kind}', {person}, {n} FROM ({inner}) f CROSS JOIN {elements % column} GROUP BY {person}"  # noqa: S608
    return sql, tuple(params)


# (the list's elements, the person, the count) per database and list shape (pairs: `[[person, n], ...]`).
_LISTED_SQL = {
    ("postgresql", True): ("jsonb_array_elements(f.%s) e", "(e.value->>0)::bigint", "SUM((e.value->>1)::bigint)"),
    ("postgresql", False): ("jsonb_array_elements(f.%s) e", "(e.value #>> '{}')::bigint", "COUNT(*)"),
    ("sqlite", True): ("json_each(f.%s) e", "json_extract(e.value, '$[0]')", "SUM(json_extract(e.value, '$[1]'))"),
    ("sqlite", False): ("json_each(f.%s) e", "e.value", "COUNT(*)"),
}


def current_figures(
    *, merged: QuerySet[PullRequest], bots: set[int], summed: QuerySet[PullRequestFigures] | None = None
) -> QuerySet[PullRequestFigures]:
    """The stored figures of these merged pull requests (no bot's: bots are in no figure), those owed computed and
    stored first. Owed: none computed or a change stamped since (`figures_owed_filter`, the partial index
    `pr_figures_owed_idx`), or a row of another input version (the index `figures_version_idx`): one probe of two
    index scans, not a pass over the period's rows."""
    from reviews.services.figures import figures_input_version, figures_owed_filter, pull_request_figures_store

    version = figures_input_version(bots=bots)
    flagged = merged.filter(figures_owed_filter()).order_by().values_list("pk", flat=True)
    # `summed`: the rows a reader sums (a period's rollups: a bot's pull request's row too, until it is deleted).
    of_period = PullRequestFigures.objects.filter(pull_request__in=merged.values("pk")) if summed is None else summed
    other_version = (
        of_period.filter(Q(input_version__lt=version) | Q(input_version__gt=version))
        .order_by()
        .values_list("pull_request_id", flat=True)
    )
    owed = set(flagged.union(other_version))
    if owed:
        rows = PullRequest.objects.filter(pk__in=owed).select_related("repository__connection").order_by("pk")
        pull_request_figures_store(pull_requests=list(rows), bots=bots, version=version)
    return PullRequestFigures.objects.filter(pull_request__in=merged.values("pk"))


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def _measured(name: str) -> Q:
    return Q(**{f"{name}__gte": 0})  # a negative duration is not measured (`measured_hours`)


def _hours(name: str) -> Any:
    return F(name) / Value(3600.0)


def _figures_aggregates() -> dict[str, Any]:
    depth = Q(approvals__gt=0) | Q(comments__gt=0)  # `counts_for_depth`
    totals: dict[str, Any] = {
        "merged": Count("pk"),
        "all_rework_cycles": Sum("rework_cycles", default=0),
        "all_approvals": Sum("approvals", default=0),
        "all_rubber_stamps": Sum("rubber_stamps", default=0),
        "depth": Count("pk", filter=depth),
        "depth_comments": Sum("comments", filter=depth, default=0),
        **{f"coverage_{kind}": Count("pk", filter=Q(coverage=kind)) for kind in ("reviewed", "paired_only", "neither")},
    }
    above = -1.0
    for name, limit in SIZE_BUCKETS:
        bucket = (
            Q(changed_lines__gt=above) if limit == math.inf else Q(changed_lines__gt=above, changed_lines__lte=limit)
        )
        totals[f"size_{name}"] = Count("pk", filter=bucket)
        above = limit
    for name in DURATIONS:
        totals[f"{name}_count"] = Count(name, filter=_measured(name))
        totals[f"{name}_percentiles"] = Percentiles(_hours(name), filter=_measured(name))
    return totals


def _stored_aggregates(
    figures: QuerySet[PullRequestFigures],
) -> tuple[dict[str, Any], dict[dt.date, dict[str, Any]]]:
    """The period's totals, and per ISO week of merge (Monday start, UTC as stored) the same figures. On PostgreSQL
    one query: the whole period and its weeks, percentiles included (`percentile_cont`); elsewhere (SQLite, the
    embedded default, with no percentile function) in Python over the narrow columns they need, also one query."""
    if _postgresql():
        aggregates = _figures_aggregates()
        whole = figures.annotate(week=Value(None, output_field=DateTimeField())).values("week").annotate(**aggregates)
        # Each week needs only what `_week_figures` reads: the rest is NULL there (the UNION's columns must match).
        weekly = {
            name: aggregate if name in _WEEKLY_FIGURES else _null_like(aggregate)
            for name, aggregate in aggregates.items()
        }
        by_week = figures.annotate(week=TruncWeek("merged_at", tzinfo=dt.UTC)).values("week").annotate(**weekly)
        grouped = [_split_percentiles(dict(row)) for row in whole.order_by().union(by_week.order_by(), all=True)]
        empty = _split_percentiles(_no_figures(aggregates))
        totals = next((row for row in grouped if row["week"] is None), None) or empty
        return totals, {_monday(row["week"]): row for row in grouped if row["week"] is not None}
    rows: list[tuple[Any, ...]] = list(figures.values_list(*_AGGREGATED, *DURATIONS))
    weeks: dict[dt.date, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        weeks[week_of(row[0])].append(row)
    return _python_aggregates(rows), {week: _python_aggregates(listed) for week, listed in weeks.items()}


def _null_like(aggregate: Any) -> Value:
    """A NULL of the aggregate's column type (the UNION's columns must match)."""
    if isinstance(aggregate, Percentiles):
        return Value(None, output_field=aggregate.output_field)
    return Value(None, output_field=FloatField())


def _split_percentiles(row: dict[str, Any]) -> dict[str, Any]:
    for name in DURATIONS:
        found = row.pop(f"{name}_percentiles", None) or (None, None)
        row[f"{name}_p50"], row[f"{name}_p90"] = found
    return row


_AGGREGATED = ("merged_at", "coverage", "changed_lines", "approvals", "comments", "rework_cycles", "rubber_stamps")


def _python_aggregates(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """`_figures_aggregates` over rows of `_AGGREGATED` and `DURATIONS`, in Python (SQLite has no percentile)."""
    found: dict[str, Any] = {"merged": len(rows)}
    depth = [row for row in rows if row[3] or row[4]]
    found |= {"depth": len(depth), "depth_comments": sum(row[4] for row in depth)}
    found |= {"all_approvals": sum(r[3] for r in rows), "all_rework_cycles": sum(r[5] for r in rows)}
    found["all_rubber_stamps"] = sum(row[6] for row in rows)
    for kind in ("reviewed", "paired_only", "neither"):
        found[f"coverage_{kind}"] = sum(1 for row in rows if row[1] == kind)
    sizes = Counter(size_bucket(row[2]) for row in rows)
    found |= {f"size_{name}": sizes[name] for name, _ in SIZE_BUCKETS}
    for index, name in enumerate(DURATIONS, start=len(_AGGREGATED)):
        hours = sorted(row[index] / 3600 for row in rows if row[index] is not None and row[index] >= 0)
        found[f"{name}_count"] = len(hours)
        found[f"{name}_p50"], found[f"{name}_p90"] = percentile(hours, 50), percentile(hours, 90)
    return found


def _no_figures(aggregates: dict[str, Any]) -> dict[str, Any]:
    return {name: 0 if isinstance(aggregate, (Count, Sum)) else None for name, aggregate in aggregates.items()}


def _monday(week: Any) -> dt.date:
    return week.date() if isinstance(week, dt.datetime) else week


def _distribution_of(totals: Mapping[str, Any], name: str) -> Distribution:
    return Distribution(totals[f"{name}_count"], _rounded(totals[f"{name}_p50"]), _rounded(totals[f"{name}_p90"]))


def _week_figures(found: Mapping[str, Any] | None) -> dict[str, object]:
    """A week's entry in `weekly`, as `_weekly` gives it."""
    if found is None:
        return {"merged": 0, **dict.fromkeys(_WEEKLY_MEDIANS), "reviewed": 0}
    return {
        "merged": found["merged"],
        **{name: _rounded(found[f"{name}_p50"]) for name in _WEEKLY_MEDIANS},
        "reviewed": found["coverage_reviewed"],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def agreement_counts(*, health: ReviewHealth, review_within: dt.timedelta, max_size: int) -> dict[str, int]:
    """Merged pull requests whose first review came within `review_within` (or after), and whose size is within
    `max_size` (or over); those not measurable in neither. In SQL over the stored figures when there are some."""
    if isinstance(health.flows, StoredFlows):
        limit = review_within.total_seconds()
        counted = health.flows.agreements.get((limit, max_size))
        if counted is not None:
            return counted
        return health.flows.figures.aggregate(
            in_time=Count("pk", filter=Q(time_to_first_review__lte=limit)),
            late=Count("pk", filter=Q(time_to_first_review__gt=limit)),
            within=Count("pk", filter=Q(changed_lines__lte=max_size)),
            over=Count("pk", filter=Q(changed_lines__gt=max_size)),
        )
    reviews = [f.time_to_first_review for f in health.flows if f.time_to_first_review is not None]
    sizes = [f.changed_lines for f in health.flows if f.changed_lines is not None]
    return {
        "in_time": sum(1 for d in reviews if d <= review_within),
        "late": sum(1 for d in reviews if d > review_within),
        "within": sum(1 for n in sizes if n <= max_size),
        "over": sum(1 for n in sizes if n > max_size),
    }


def merged_flows(
    *,
    pull_requests: QuerySet[PullRequest],
    since: dt.datetime,
    until: dt.datetime,
    include_bots: bool | None = None,
) -> list[PullRequestFlow]:
    """The review flow of each pull request (of `pull_requests`) merged in [since, until), as `review_health`
    computes it, without the period's aggregates: for callers that aggregate otherwise (alerts, per team and day)."""
    bots = _bots(include_bots)
    merged = _merged(pull_requests, since, until, bots)
    ids = [row["pk"] for row in merged]
    reviews = _reviews_by_pull_request(ids, bots)
    facts = pull_request_review_facts(pull_request_ids=ids)
    return [_flow(row, reviews[row["pk"]], facts.get(row["pk"], NO_FACTS)) for row in merged]


def _bots(include_bots: bool | None) -> set[int]:
    if include_bots is None:
        include_bots = settings.METRICS_INCLUDE_BOTS
    return set() if include_bots else set(Person.objects.filter(is_bot=True).values_list("pk", flat=True))


def _merged(pull_requests: QuerySet[PullRequest], since: dt.datetime, until: dt.datetime, bots: set[int]) -> list[Any]:
    return list(_merged_in(pull_requests, since, until, bots).values(*_FLOW_FIELDS))


def _merged_in(
    pull_requests: QuerySet[PullRequest], since: dt.datetime, until: dt.datetime, bots: set[int]
) -> QuerySet[PullRequest]:
    return pull_requests.filter(state=PullRequest.State.MERGED, merged_at__gte=since, merged_at__lt=until).exclude(
        author_id__in=bots
    )


_FLOW_FIELDS = ("pk", "author_id", "created_at", "ready_at", "merged_at", "first_commit_at", "additions", "deletions")


def pull_request_flow(*, pull_request: PullRequest) -> tuple[PullRequestFlow, ReviewFacts] | None:
    """One merged pull request's figures exactly as `review_health` counts them, with its review facts; None when
    it is not merged, or is a bot's (bots are in no figure)."""
    if pull_request.state != PullRequest.State.MERGED or pull_request.merged_at is None:
        return None
    bots = _bots(None)
    if pull_request.author_id in bots:
        return None
    row = PullRequest.objects.filter(pk=pull_request.pk).values(*_FLOW_FIELDS).get()
    facts = pull_request_review_facts(pull_request_ids=[pull_request.pk]).get(pull_request.pk, NO_FACTS)
    return _flow(row, _reviews_by_pull_request([pull_request.pk], bots)[pull_request.pk], facts), facts


@dataclass(frozen=True)
class _Review:
    reviewer_id: int
    state: str
    submitted_at: dt.datetime


def _reviews_by_pull_request(ids: list[int], bots: set[int]) -> dict[int, list[_Review]]:
    """Every review (rework cycles, reviewer load): who reviewed, how, when."""
    found: dict[int, list[_Review]] = defaultdict(list)
    rows = (
        Review.objects.filter(pull_request_id__in=ids, reviewer__isnull=False)
        .exclude(reviewer_id__in=bots)
        .order_by("submitted_at", "pk")
        .values_list("pull_request_id", "reviewer_id", "state", "submitted_at")
    )
    for pull_request_id, reviewer_id, state, submitted_at in rows:
        found[pull_request_id].append(_Review(reviewer_id, state, submitted_at))
    return found


def _flow(row: Any, reviews: list[_Review], facts: ReviewFacts) -> PullRequestFlow:
    ready = row["ready_at"] or row["created_at"]
    merged_at = row["merged_at"]
    first_activity, first_approval, last_approval = facts.first_activity, facts.first_approval, facts.last_approval
    pickup_end = first_activity or first_approval or merged_at
    changed = (
        row["additions"] + row["deletions"] if row["additions"] is not None and row["deletions"] is not None else None
    )
    return PullRequestFlow(
        pull_request_id=row["pk"],
        merged_at=merged_at,
        changed_lines=changed,
        time_to_first_review=first_activity - ready if first_activity else None,
        pickup_time=pickup_end - ready,
        review_time=merged_at - first_activity if first_activity else None,
        time_to_approve=first_approval - ready if first_approval else None,
        merge_time=merged_at - last_approval if last_approval else None,
        cycle_time=merged_at - row["first_commit_at"] if row["first_commit_at"] else None,
        rework_cycles=_rework_cycles([r for r in reviews if r.reviewer_id != row["author_id"]]),
        approvals=len(facts.approvals),
        rubber_stamps=len(facts.rubber_stamps),
        paired=facts.paired,
        comments=facts.comments,
        reviews_by=tuple(sorted(Counter(r.reviewer_id for r in reviews).items())),
        facts=facts,
    )


def _rework_cycles(reviews: list[_Review]) -> int:
    """Changes-requested reviews answered before the first approval after them: each is a round of rework."""
    cycles, waiting = 0, False
    for review in reviews:
        if review.state == Review.State.CHANGES_REQUESTED:
            waiting = True
        elif review.state == Review.State.APPROVED and waiting:
            cycles += 1
            waiting = False
    return cycles


def coverage_of(flows: Sequence[PullRequestFlow]) -> dict[str, int]:
    """Merged pull requests reviewed (an approval that counted), paired only, or neither."""
    found = Counter(f.coverage for f in flows)
    return {kind: found[kind] for kind in ("reviewed", "paired_only", "neither")}


def counts_for_depth(flow: PullRequestFlow) -> bool:
    """Review depth is over the pull requests someone other than the author approved or commented on."""
    return bool(flow.approvals or flow.comments)


def _depth(flows: list[PullRequestFlow]) -> float | None:
    reviewed = [f for f in flows if counts_for_depth(f)]
    return round(sum(f.comments for f in reviewed) / len(reviewed), 2) if reviewed else None


def _size_buckets(flows: list[PullRequestFlow]) -> dict[str, int]:
    buckets = dict.fromkeys((name for name, _ in SIZE_BUCKETS), 0)
    for flow in flows:
        bucket = size_bucket(flow.changed_lines)
        if bucket:
            buckets[bucket] += 1
    return buckets


def _names(counts: Counter[int]) -> dict[str, int]:
    names = dict(Person.objects.filter(pk__in=list(counts)).values_list("pk", "display_name"))
    return {names[pk]: count for pk, count in counts.most_common()}


def _reviewer_load(pull_requests: QuerySet[PullRequest], given: Counter[int], bots: set[int]) -> list[ReviewerLoad]:
    """Reviews given in the period (`given`, per reviewer), and open pull requests waiting on each requested reviewer
    now."""
    waiting = Counter(person_id for _, person_id in awaiting_reviewers(pull_requests, bots))
    people = set(given) | set(waiting)
    names = dict(Person.objects.filter(pk__in=people).values_list("pk", "display_name"))
    load = [ReviewerLoad(pk, names.get(pk, "?"), given[pk], waiting[pk]) for pk in people]
    return sorted(load, key=lambda item: (-item.reviews_given, -item.waiting_on_them, item.name))


def awaiting_reviewers(pull_requests: QuerySet[PullRequest], bots: set[int]) -> list[tuple[int, int]]:
    """(pull request, person): open, ready pull requests waiting on a requested reviewer who has not reviewed yet."""
    return list(_awaiting(pull_requests, bots).values_list("pullrequest_id", "person_id"))


def _waiting_counts(pull_requests: QuerySet[PullRequest], bots: set[int]) -> QuerySet[Any]:
    """(person, open pull requests waiting on them now), for a UNION with the period's counts."""
    counts: QuerySet[Any] = (
        _awaiting(pull_requests, bots)
        .order_by()
        .values("person_id")
        .annotate(n=Count("pk"))
        .values_list("person_id", "n")
    )
    return counts


def _awaiting(pull_requests: QuerySet[PullRequest], bots: set[int]) -> QuerySet[Any]:
    through = PullRequest.requested_reviewers.through
    reviewed_already = Review.objects.filter(
        pull_request_id=OuterRef("pullrequest_id"), reviewer_id=OuterRef("person_id")
    )
    return (
        through.objects.filter(pullrequest__in=pull_requests.filter(state=PullRequest.State.OPEN, draft=False))
        .exclude(person_id__in=bots)
        .exclude(Exists(reviewed_already))
    )


def bot_ids() -> set[int]:
    """The people left out of every figure (unless METRICS_INCLUDE_BOTS)."""
    if settings.METRICS_INCLUDE_BOTS:
        return set()
    return set(Person.objects.filter(is_bot=True).values_list("pk", flat=True))


def _top_share(given: Counter[int]) -> float | None:
    total = sum(given.values())
    return round(given.most_common(1)[0][1] / total, 3) if total else None


def _weekly(flows: list[PullRequestFlow], since: dt.datetime, until: dt.datetime) -> list[dict[str, object]]:
    """Per ISO week (Monday start) of merge: merged and reviewed counts, median time to first review, pickup and
    cycle time. A week the
    period covers only in part (its first and last, mostly) says so: `partial`, with the `days` it covers."""
    weeks: dict[dt.date, list[PullRequestFlow]] = defaultdict(list)
    for flow in flows:
        weeks[week_of(flow.merged_at)].append(flow)
    result = []
    for week in weeks_of(since, until):
        rows = weeks.get(cast(dt.date, week["week"]), [])
        result.append(
            {
                **week,
                "merged": len(rows),
                "time_to_first_review": Distribution.of(f.time_to_first_review for f in rows).median_hours,
                "pickup_time": Distribution.of(f.pickup_time for f in rows).median_hours,
                "cycle_time": Distribution.of(f.cycle_time for f in rows).median_hours,
                "reviewed": coverage_of(rows)["reviewed"],
            }
        )
    return result


def week_of(moment: dt.datetime) -> dt.date:
    """The Monday of the ISO week a moment falls in (its date as stored: weeks of `weeks_of`)."""
    day = moment.date()
    return day - dt.timedelta(days=day.weekday())


def weeks_of(since: dt.datetime, until: dt.datetime) -> list[dict[str, object]]:
    """The ISO weeks (Monday start) a period touches: `week` (its Monday), `partial` when the period covers only
    part of it, and the `days` it covers."""
    start = since.date() - dt.timedelta(days=since.date().weekday())
    weeks: list[dict[str, object]] = []
    while (monday := dt.datetime.combine(start, dt.time.min, tzinfo=since.tzinfo)) < until:
        covered = min(monday + dt.timedelta(days=7), until) - max(monday, since)
        weeks.append(
            {"week": start, "partial": covered < dt.timedelta(days=7), "days": round(covered / dt.timedelta(days=1), 1)}
        )
        start += dt.timedelta(days=7)
    return weeks


def waiting_for_review(
    *, team: Team, now: dt.datetime | None = None, pull_requests: QuerySet[PullRequest] | None = None
) -> list[PullRequest]:
    """Open, ready pull requests (of the team, or of `pull_requests`) with no review activity by anyone but the
    author, older than the agreement."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(hours=team.review_within_hours)
    return list(
        _awaiting_first_review(team_pull_requests(team) if pull_requests is None else pull_requests)
        .filter(ready_at__lte=cutoff)
        .select_related("repository", "author")
        .order_by("ready_at")
    )


def waiting_for_review_counts(*, teams: Sequence[Team], now: dt.datetime | None = None) -> dict[int, int]:
    """`len(waiting_for_review(team=...))` for each of these teams, in one query."""
    now = now or timezone.now()
    if not teams:
        return {}
    agreements = {team.pk: dt.timedelta(hours=team.review_within_hours) for team in teams}
    rows = (
        _awaiting_first_review(PullRequest.objects.filter(repository__team_id__in=list(agreements)))
        .filter(ready_at__lte=now - min(agreements.values()))
        .values_list("repository__team_id", "ready_at")
    )
    counts = dict.fromkeys(agreements, 0)
    for team_id, ready_at in rows:
        if ready_at is not None and ready_at <= now - agreements[team_id]:
            counts[team_id] += 1
    return counts


def _awaiting_first_review(pull_requests: QuerySet[PullRequest]) -> QuerySet[PullRequest]:
    """Open, ready pull requests by people (not bots) with no review activity by anyone but the author."""
    reviewed = Review.objects.filter(pull_request=OuterRef("pk"), reviewer__is_bot=False).exclude(
        reviewer=OuterRef("author")
    )
    commented = Comment.objects.filter(pull_request=OuterRef("pk"), is_system=False, author__is_bot=False).exclude(
        author=OuterRef("author")
    )
    return (
        pull_requests.filter(state=PullRequest.State.OPEN, draft=False, ready_at__isnull=False)
        .exclude(author__is_bot=True)
        .exclude(Exists(reviewed))
        .exclude(Exists(commented))
    )


def stale_pull_requests(
    *, team: Team, now: dt.datetime | None = None, pull_requests: QuerySet[PullRequest] | None = None
) -> list[PullRequest]:
    now = now or timezone.now()
    return list(
        (team_pull_requests(team) if pull_requests is None else pull_requests)
        .filter(state=PullRequest.State.OPEN, updated_at__lt=now - STALE_AFTER)
        .select_related("repository", "author")
        .order_by("updated_at")
    )
