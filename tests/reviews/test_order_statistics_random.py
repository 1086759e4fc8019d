"""Red team (issue 15): `order_statistics` against `health.percentile` over the raw rows, on randomised rows whose
values sit on, around and far past the bucket bounds (0, negative, None, huge) and whose merges sit on the period's
edges, in two repositories."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
from django.db import connection

from reviews.models import FIGURES_HISTOGRAMS, PullRequest, PullRequestFigures
from reviews.selectors import health as health_module
from reviews.selectors.health import percentile
from reviews.selectors.order_statistics import (
    DURATION_BOUNDS,
    LINE_BOUNDS,
    OrderStatistics,
    histogram_counts,
    histograms_of,
    interpolated,
    ranks_of,
)
from tests.factories import PullRequestFactory, RepositoryFactory, TeamFactory
from tests.reviews.test_order_statistics import H, _figures, _with_ties
from tests.reviews.test_pull_request_figures import _varied_history

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the histograms are read on PostgreSQL only"),
]

SINCE = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # a DST change in Europe inside the period
UNTIL = SINCE + dt.timedelta(days=10)
MICRO = dt.timedelta(microseconds=1)


def _duration(rng: random.Random) -> float | None:
    bound = rng.choice(DURATION_BOUNDS)
    return rng.choice(
        [None, 0.0, -1.0, -0.001, bound, bound + 0.001, bound - 0.001, bound + 0.5, 10.0**12, 4.0e9, bound * 1.0001]
        + [rng.uniform(0, 7 * 86400) for _ in range(4)]
    )


def _lines(rng: random.Random) -> int | None:
    bound = rng.choice(LINE_BOUNDS)
    return rng.choice([None, 0, bound, bound + 1, max(bound - 1, 0), 2**31 - 1, 10**6, rng.randint(0, 3000)])


def _merged_at(rng: random.Random) -> dt.datetime:
    return rng.choice(
        [
            SINCE,
            SINCE - MICRO,
            SINCE + MICRO,
            UNTIL,
            UNTIL - MICRO,
            SINCE + dt.timedelta(seconds=rng.randint(0, 864000)),
        ]
    )


@pytest.mark.parametrize("seed", range(40))
def test_every_rank_and_limit_is_health_percentiles_over_the_raw_rows(seed):
    rng = random.Random(seed)
    team = TeamFactory()
    repositories = [RepositoryFactory(team=team), RepositoryFactory(team=team)]
    rows = []
    for _ in range(rng.randint(1, 70)):
        repository = rng.choice(repositories)
        pull_request = PullRequestFactory(repository=repository)
        values = {column: _duration(rng) for column in FIGURES_HISTOGRAMS if column != "changed_lines"}
        values["changed_lines"] = _lines(rng)
        rows.append(
            PullRequestFigures(
                pull_request=pull_request,
                repository=repository,
                merged_at=_merged_at(rng),
                rework_cycles=0,
                approvals=0,
                rubber_stamps=0,
                paired=False,
                coverage="neither",
                comments=0,
                input_version="rt",
                computed_at=UNTIL,
                **values,
            )  # fmt: skip
        )
    PullRequestFigures.objects.bulk_create(rows)
    in_period = [row for row in rows if SINCE <= row.merged_at < UNTIL]
    counts: Counter[str] = Counter()
    for row in in_period:
        counts += histogram_counts(row)
    histograms = histograms_of(counts)
    period = (SINCE, UNTIL)
    statistics = OrderStatistics([repository.pk for repository in repositories])
    limits = {column: [rng.choice(bounds) + delta for delta in (0, 0.5, -0.5)] for column, bounds in (
        ("time_to_first_review", DURATION_BOUNDS), ("changed_lines", LINE_BOUNDS))}  # fmt: skip
    limits["changed_lines"] = [int(limit) for limit in limits["changed_lines"] if limit >= 0] + [10**7]
    limits["time_to_first_review"] = [limit for limit in limits["time_to_first_review"] if limit >= 0] + [1e11, 0.0]
    for column in FIGURES_HISTOGRAMS:
        for q in (50, 90):
            for rank in ranks_of(histograms[column], q):
                statistics.ask_rank(column, histograms[column], period, rank)
    for column, asked in limits.items():
        for limit in asked:
            statistics.ask_limit(column, histograms[column], period, limit)
    statistics.read()
    for column in FIGURES_HISTOGRAMS:
        values = [getattr(row, column) for row in in_period if getattr(row, column) is not None]
        hours = sorted(value / 3600 for value in values if value >= 0)
        for q in (50, 90):
            found = interpolated(statistics, column, histograms[column], period, q)
            expected = percentile(hours, q)
            assert (None if found is None else round(found, 2)) == expected, (column, q, sorted(values))
    for column, asked in limits.items():
        values = [getattr(row, column) for row in in_period if getattr(row, column) is not None]
        for limit in asked:
            expected = sum(1 for value in values if value <= limit)
            assert statistics.count_at_most(column, histograms[column], period, limit) == expected, (column, limit)


class _Never(Exception):
    pass


@pytest.fixture
def no_fallback(monkeypatch):
    """The figures come from the histograms: a disagreement with the rows fails the test instead of falling back."""
    monkeypatch.setattr(health_module, "RowsDisagree", _Never)


def _edges(merges: list[dt.datetime], rng: random.Random) -> tuple[dt.datetime, dt.datetime]:
    """A period of whole hours (the rollups answer those) whose ends are merges themselves, or an hour either side."""
    on_hours = sorted({merged for merged in merges if merged == merged.replace(minute=0, second=0, microsecond=0)})
    first, last = sorted(rng.sample(on_hours, 2))
    return first + H * rng.choice([-1, 0, 1]), last + H * rng.choice([-1, 0, 1])


@pytest.mark.parametrize("seed", range(8))
def test_periods_ending_on_a_merge_give_the_computed_figures(seed, no_fallback):
    team = _varied_history()
    _with_ties(team)
    rng = random.Random(seed)
    merges = list(
        PullRequest.objects.filter(repository__team=team, merged_at__isnull=False).values_list("merged_at", flat=True)
    )
    period = _edges(merges, rng)
    agreement = (dt.timedelta(minutes=rng.choice([60, 95, 30])), rng.choice([250, 333, 400]))
    computed = _figures(team, agreement, stored=False, period=period)
    assert _figures(team, agreement, stored=True, period=period) == computed  # the rows computed on read
    assert _figures(team, agreement, stored=True, period=period) == computed  # read back
