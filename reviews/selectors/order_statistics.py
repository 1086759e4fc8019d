"""Exact order statistics of a period's stored figures without sorting them: the median and 90th percentile of each
duration, each week's medians, and the counts at or under a working agreement's limit.

Each stored row adds its durations and size to per-bucket counts in its hour's and day's rollups (`histogram_counts`,
keys `h:<column>:<bucket>`, summed as every other rollup count). Summed over a period they say exactly how many of
the period's rows each bucket holds, so which bucket holds a given rank, and at which offset; only that bucket's rows
of the period are then read. Its least and greatest come from an index on the column in value order
(`figures_<short>_order_idx`: repository, value, merged_at): two probes per repository under the bucket's upper
bound and one for a row on it; when they are equal (durations tie: whole days, bots' merges) that is every rank of
the bucket. Otherwise its rows of the period
that are not on its upper bound are read by one range scan of an index on the column's bucket
(`figures_<short>_bucket_idx`: repository, bucket, merged_at; the value included; migration 0033), whatever the rest
of the history holds in the bucket's value range, and sorted in SQL; the ties on the bound (whole hours, the half
hour) are not read but counted, the rollups' count less the rest. Every rank and limit asked of the bucket is
answered in SQL: one value or count per request comes back, with the rows under the bound, which must be as many
as the rollups count (less the ties on the bound) or they disagree.
PostgreSQL only (SQLite reads the rows, as before). The numbers are
`health.percentile`'s over the sorted hours, the definition the computed flows use; `health` falls back to
`percentile_cont` over the rows if the rows and the rollups ever disagree (which may differ from it in the last
place, and so in a rounding: its position 0.9 * 67 is not 67 * 90 / 100 in floating point).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from django.db import connection

from reviews.models import FIGURES_HISTOGRAMS, PullRequestFigures

# Bucket upper bounds (inclusive; each bucket's lower bound is the previous one, exclusive; bucket 0 is exactly 0,
# the last open above). Durations in seconds: every whole hour to two days (a working agreement's "first review
# within N hours" is then a bound, counted from the histogram alone), every three hours to a week, every day to five
# weeks (durations of days tie at whole days often: a bucket of one value is read from its two ends); sizes in
# lines, the size buckets' limits and the usual agreements among them. A limit between bounds costs one bucket's rows.
_MINUTE, _HOUR, _DAY = 60, 3600, 86400
DURATION_BOUNDS: tuple[float, ...] = tuple(
    sorted(
        {0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0}
        | {float(m * _MINUTE) for m in (1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 45, 50)}
        | {float(h * _HOUR) for h in (*range(1, 48), *range(48, 168, 3), 1.5, 2.5)}
        | {float(d * _DAY) for d in (*range(7, 36), 42, 49, 56, 63, 70, 80, 90, 105, 120, 150, 180, 240, 300, 365)}
        | {float(d * _DAY) for d in (500, 730, 1095)}
    )
)
LINE_BOUNDS: tuple[int, ...] = (
    *(0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500),
    *(600, 700, 800, 900, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 4000, 5000, 7500, 10000, 20000, 50000, 100000),
)
NEGATIVE = "neg"  # a negative duration: not measured, but under any limit (the agreement's "in time")
_BIG = 2**62  # above any size: the last bucket's upper bound for the integer column


def bounds_of(column: str) -> Sequence[float]:
    return LINE_BOUNDS if column == "changed_lines" else DURATION_BOUNDS


def bucket_of(column: str, value: float | None) -> str | None:
    """The histogram bucket of a stored value (None: not stored, in no bucket)."""
    if value is None:
        return None
    if value < 0:
        return NEGATIVE
    return str(bisect_left(bounds_of(column), value))


def histogram_counts(row: Any) -> Counter[str]:
    """What one stored row adds to its hour's histograms (`rollup_counts` adds them to the rest)."""
    counts: Counter[str] = Counter()
    for column in FIGURES_HISTOGRAMS:
        bucket = bucket_of(column, getattr(row, column))
        if bucket is not None:
            counts[f"h:{column}:{bucket}"] += 1
    return counts


def histograms_of(counts: Mapping[str, int]) -> dict[str, Histogram]:
    """column → bucket → rows, from summed rollup counts."""
    found: dict[str, Histogram] = {column: Histogram() for column in FIGURES_HISTOGRAMS}
    for name, n in counts.items():
        if name.startswith("h:") and n:
            column, bucket = name[2:].rsplit(":", 1)
            found[column][bucket] = n
    return found


class RowsDisagree(Exception):
    """The rows of a bucket are not what the rollups count (a writer in between): read the rows instead."""


@dataclass(frozen=True)
class _Bucket:
    column: str
    bucket: int
    since: dt.datetime
    until: dt.datetime


@dataclass
class _Read:
    """What the bucket's rows of the period hold: their least and greatest; unless those are equal, how many are not
    on its upper bound (`_bucket_sql`: the rest, the rollups' count less these, tie at the bound), their least and
    greatest, the value at each interior offset asked among them, and how many are at most each limit asked (a limit
    inside the bucket is under the bound)."""

    least: float | None = None
    greatest: float | None = None
    rows: int = 0
    least_under: float | None = None
    greatest_under: float | None = None
    at: dict[int, float | None] = field(default_factory=dict)
    at_most: dict[float, int] = field(default_factory=dict)

    def ends(self, column: str, bucket: int, count: int) -> tuple[float, float]:
        """The least and greatest of the bucket's `count` rows (the rollups'); `RowsDisagree` if the rows cannot be
        that many (none, more under the bound than counted, fewer where the greatest is not on the bound) or the two
        reads do not meet (another writer between them)."""
        if self.least is None or self.greatest is None or count <= 0:
            raise RowsDisagree(column)
        least, greatest = float(self.least), float(self.greatest)
        if least == greatest:
            return least, greatest
        bounds = bounds_of(column)
        on_bound = bucket < len(bounds) and greatest == bounds[bucket]
        under_least = self.rows > 0 and self.least_under == least  # the least is under the greatest, so the bound
        under_greatest = on_bound or self.greatest_under == greatest
        if self.rows > count or (self.rows < count) != on_bound or not (under_least and under_greatest):
            raise RowsDisagree(column)
        return least, greatest


class OrderStatistics:
    """Collects the ranks and limits asked over periods' histograms, reads every bucket they need in one statement
    (`read`), then answers them (`value_at`, `count_at_most`)."""

    def __init__(self, repository_ids: Sequence[int]) -> None:
        self.repository_ids = sorted(repository_ids)
        # bucket → what is asked of it besides its ends: interior offsets, limits
        self._asked: dict[_Bucket, tuple[set[int], set[float]]] = {}
        self._reads: dict[_Bucket, _Read] = {}

    # Asking.
    def ask_rank(
        self, column: str, histogram: Mapping[str, int], period: tuple[dt.datetime, dt.datetime], rank: int
    ) -> None:
        bucket, offset, count = _locate(column, histogram, rank)
        offsets, _ = self._asked.setdefault(_Bucket(column, bucket, *period), (set(), set()))
        if 0 < offset < count - 1:
            offsets.add(offset)

    def ask_limit(
        self, column: str, histogram: Mapping[str, int], period: tuple[dt.datetime, dt.datetime], limit: float
    ) -> None:
        bucket = bisect_left(bounds_of(column), limit)
        bounds = bounds_of(column)
        if (bucket < len(bounds) and bounds[bucket] == limit) or not histogram.get(str(bucket)):
            return  # the limit is the bucket's upper bound, or the bucket holds nothing: the histogram says it
        _, limits = self._asked.setdefault(_Bucket(column, bucket, *period), (set(), set()))
        limits.add(limit)

    # Reading.
    def read(self) -> None:
        """Every bucket asked for, in one statement (none when nothing was asked: an empty period)."""
        if not self._asked:
            return
        requests = [
            (key, offset, limit)
            for key, (offsets, limits) in self._asked.items()
            for offset, limit in [*((k, None) for k in sorted(offsets)), *((None, v) for v in sorted(limits))]
            or [(None, None)]
        ]
        parts: list[str] = []
        params: list[Any] = []
        for column in FIGURES_HISTOGRAMS:
            asked = [(index, request) for index, request in enumerate(requests) if request[0].column == column]
            if asked:
                part, part_params = _bucket_sql(column, asked, self.repository_ids)
                parts.append(part)
                params += part_params
        reads = {key: _Read() for key in self._asked}
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(f"({part})" for part in parts), params)
            for index, least, greatest, rows, least_under, greatest_under, value, at_most in cursor.fetchall():
                key, offset, limit = requests[index]
                found = reads[key]
                found.least, found.greatest, found.rows = least, greatest, rows
                found.least_under, found.greatest_under = least_under, greatest_under
                if offset is not None:
                    found.at[offset] = value
                if limit is not None:
                    found.at_most[limit] = int(at_most)
        self._reads = reads

    # Answering.
    def value_at(
        self, column: str, histogram: Mapping[str, int], period: tuple[dt.datetime, dt.datetime], rank: int
    ) -> float:
        """The value at `rank` (0: the least) of the period's measured values (not negative)."""
        bucket, offset, count = _locate(column, histogram, rank)
        found = self._reads.get(_Bucket(column, bucket, *period))
        if found is None:
            raise RowsDisagree(column)
        least, greatest = found.ends(column, bucket, count)
        if offset == 0 or least == greatest:
            return least
        if offset == count - 1 or offset >= found.rows:  # past the rows under the bound: on it
            return greatest
        value = found.at.get(offset)
        if value is None:
            raise RowsDisagree(column)
        return float(value)

    def count_at_most(
        self, column: str, histogram: Mapping[str, int], period: tuple[dt.datetime, dt.datetime], limit: float
    ) -> int:
        """How many of the period's values (negative ones included) are at most `limit` (≥ 0)."""
        bounds = bounds_of(column)
        limit_bucket = bisect_left(bounds, limit)
        below = histogram.get(NEGATIVE, 0) + sum(
            n for bucket, n in histogram.items() if bucket != NEGATIVE and int(bucket) < limit_bucket
        )
        in_bucket = histogram.get(str(limit_bucket), 0)
        if not in_bucket or (limit_bucket < len(bounds) and bounds[limit_bucket] == limit):
            return below + in_bucket
        found = self._reads.get(_Bucket(column, limit_bucket, *period))
        if found is None:
            raise RowsDisagree(column)
        least, greatest = found.ends(column, limit_bucket, in_bucket)  # as many rows as counted, or they disagree
        if least == greatest:
            return below + (in_bucket if least <= limit else 0)
        if limit not in found.at_most:
            raise RowsDisagree(column)
        return below + found.at_most[limit]  # those on the bound are over the limit


def measured_total(histogram: Mapping[str, int]) -> int:
    return sum(n for bucket, n in histogram.items() if bucket != NEGATIVE)


def interpolated(
    statistics: OrderStatistics, column: str, histogram: Mapping[str, int], period: Any, q: float
) -> float | None:
    """The `q`th percentile (0-100) of the period's measured values in hours, exactly as `health.percentile`
    interpolates over the sorted hours (unrounded)."""
    count = measured_total(histogram)
    if not count:
        return None
    position = (count - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    first = statistics.value_at(column, histogram, period, low) / 3600
    second = statistics.value_at(column, histogram, period, high) / 3600 if high != low else first
    return first + (second - first) * (position - low)


def ranks_of(histogram: Mapping[str, int], q: float) -> Iterable[int]:
    """The ranks `interpolated` reads for the `q`th percentile."""
    count = measured_total(histogram)
    if not count:
        return ()
    position = (count - 1) * q / 100
    return sorted({math.floor(position), math.ceil(position)})


def _locate(column: str, histogram: Mapping[str, int], rank: int) -> tuple[int, int, int]:
    """The bucket holding the measured value at `rank`, the rank's offset in it and the bucket's count."""
    buckets, ends = _cumulative(histogram)
    position = bisect_right(ends, rank)  # the first bucket whose rows end after the rank
    if position == len(buckets):
        raise RowsDisagree(column)
    bucket, count = buckets[position]
    return bucket, rank - (ends[position] - count), count


class Histogram(dict[str, int]):
    """bucket → rows of one column (`histograms_of`), with its measured buckets in order and where each one's rows
    end, worked out once (each rank asked of it locates its bucket)."""

    _cumulative: tuple[list[tuple[int, int]], list[int]] | None = None


def _cumulative(histogram: Mapping[str, int]) -> tuple[list[tuple[int, int]], list[int]]:
    found = histogram._cumulative if isinstance(histogram, Histogram) else None
    if found is None:
        buckets = sorted((int(name), n) for name, n in histogram.items() if name != NEGATIVE)
        found = (buckets, list(accumulate(n for _, n in buckets)))
        if isinstance(histogram, Histogram):
            histogram._cumulative = found
    return found


def bucket_sql(column: str, reference: str | None = None) -> str:
    """`bucket_of` in SQL, for a measured (not negative) value of `column` (`f.<column>`): how many bounds are below
    the value (`bisect_left`), as the bounds less those at or above it (`width_bucket` counts the thresholds at or
    below its operand: over the negated bounds, ascending, those at or above the value). The expression of the
    per-column indexes `figures_<short>_bucket_idx` (migration 0033, written out there): the planner uses an index
    only for the same expression, so a change of the bounds needs a new migration (a test compares the two)."""
    negated, kind = _bounds_sql(column, negate=True)
    return f"({len(bounds_of(column))} - width_bucket(- {reference or 'f.' + column}, {negated}))"


def off_bounds_sql(column: str, reference: str | None = None) -> str:
    """The condition of the bucket indexes besides a measured value: not on a bound (those tie at their bucket's
    greatest, whole hours and the like, and are counted, not read: the rollups' count less the rest)."""
    return f"{reference or 'f.' + column} <> ALL ({_bounds_sql(column, negate=False)[0]})"


def _bounds_sql(column: str, *, negate: bool) -> tuple[str, str]:
    return _bounds_literal(tuple(bounds_of(column)), integer=column == "changed_lines", negate=negate)


@functools.cache
def _bounds_literal(bounds: tuple[float, ...], *, integer: bool, negate: bool) -> tuple[str, str]:
    """The bounds as an SQL array literal, written once per set of bounds (a page's statements carry them some
    sixteen times: two hundred numbers each)."""
    ordered = list(reversed(bounds)) if negate else list(bounds)
    sign = -1 if negate else 1
    if integer:
        return "'{" + ", ".join(str(sign * int(bound)) for bound in ordered) + "}'::integer[]", "integer"
    return "'{" + ", ".join(repr(sign * float(bound)) for bound in ordered) + "}'::double precision[]", "float8"


def _bucket_sql(
    column: str, asked: list[tuple[int, tuple[_Bucket, int | None, float | None]]], repository_ids: list[int]
) -> tuple[str, list[Any]]:
    """(request, least, greatest, rows under the bound, the least and greatest of those, value at its offset among
    those, those at most its limit) of each request of `column`'s buckets. Each bucket once: its least and greatest
    of the period from the value-ordered index (`figures_<short>_order_idx`: two probes per repository, an explicit
    LIMIT 1, as min() and max() the planner scanned the bucket), then, unless those are equal (a bucket of ties,
    whole days, a bot's delay), its rows of the period not on its upper bound, sorted, from one range scan of the
    index on (repository, bucket, merged_at) (`bucket_sql`, `off_bounds_sql`): the period's rows and no other
    period's, however long the history, and not the ties on the bound (the rollups' count less the rest; `_Read`).
    The value range is checked as well: a row is in the bucket by the bounds themselves, the indexes only find it.
    Only the code's own names and fragments are formatted in; values are parameters."""
    bounds = bounds_of(column)
    integer = column == "changed_lines"
    kind = "bigint" if integer else "float8"
    number = int if integer else float  # one type per array (psycopg refuses a list of ints and floats)
    keys = list(dict.fromkeys(key for _, (key, _o, _l) in asked))
    position = {key: index for index, key in enumerate(keys)}
    lows = [number(-1 if key.bucket == 0 else bounds[key.bucket - 1]) for key in keys]
    top = _BIG if integer else math.inf
    highs = [number(top if key.bucket >= len(bounds) else bounds[key.bucket]) for key in keys]
    table = PullRequestFigures._meta.db_table
    in_bucket = (
        f"f.{column} >= 0 AND f.{column} > b.low AND f.{column} <= b.high "
        "AND f.merged_at >= b.since AND f.merged_at < b.until"
    )
    # The least and greatest under the bound, and whether a row is on it: probes of (repository, value, merged_at).
    under = f"{in_bucket} AND f.{column} < b.high"
    ends = [
        f"(SELECT f.{column}::float8 FROM {table} f WHERE f.repository_id = p.id AND {under} "  # noqa: S608
        f"ORDER BY f.{column} {direction} LIMIT 1)"
        for direction in ("ASC", "DESC")
    ]
    on_bound = (
        f"EXISTS (SELECT FROM {table} f WHERE f.repository_id = p.id AND f.{column} >= 0 AND f.{column} = b.high "  # noqa: S608
        "AND f.merged_at >= b.since AND f.merged_at < b.until)"
    )
    sorted_values = (
        f"SELECT array_agg(f.{column}::float8 ORDER BY f.{column}) a FROM {table} f "  # noqa: S608
        "WHERE (x.lo < x.hi OR (x.lo = x.hi AND x.on_bound)) AND f.repository_id = ANY(%s::bigint[]) "
        f"AND {off_bounds_sql(column)} AND {bucket_sql(column)} = b.bucket AND {in_bucket}"
    )
    sql = (
        "WITH e AS MATERIALIZED (SELECT b.j, COALESCE(x.lo, CASE WHEN x.on_bound THEN b.high END) least, "  # noqa: S608
        "CASE WHEN x.on_bound THEN b.high ELSE x.hi END greatest, s.a FROM unnest(%s::int[], %s::int[], "
        f"%s::{kind}[], %s::{kind}[], %s::timestamptz[], %s::timestamptz[]) b(j, bucket, low, high, since, until) "
        "CROSS JOIN LATERAL (SELECT min(m.lo) lo, max(m.hi) hi, bool_or(m.on_bound) on_bound "
        "FROM unnest(%s::bigint[]) p(id) "
        f"CROSS JOIN LATERAL (SELECT {ends[0]} lo, {ends[1]} hi, {on_bound} on_bound) m) x "
        f"CROSS JOIN LATERAL ({sorted_values}) s) "
        "SELECT r.i, e.least, e.greatest, COALESCE(cardinality(e.a), 0), e.a[1], e.a[cardinality(e.a)], "
        "e.a[r.k + 1], CASE WHEN r.lim IS NOT NULL THEN (SELECT count(*) FROM unnest(e.a) v WHERE v <= r.lim) END "
        f"FROM unnest(%s::int[], %s::int[], %s::int[], %s::{kind}[]) r(i, j, k, lim) JOIN e ON e.j = r.j"
    )
    params = [
        list(range(len(keys))),
        [key.bucket for key in keys],
        lows,
        highs,
        [key.since for key in keys],
        [key.until for key in keys],
        repository_ids,
        repository_ids,
        [index for index, _ in asked],
        [position[key] for _, (key, _o, _l) in asked],
        [offset for _, (_k, offset, _l) in asked],
        [limit for _, (_k, _o, limit) in asked],
    ]
    return sql, params
