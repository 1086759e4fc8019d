"""Medians, 90th percentiles and agreement counts from the rollups' histograms (`order_statistics`): the numbers
computing every flow gives, ties and late events included, read without the percentiles' pass over the rows."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from importlib import import_module
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews.models import FiguresDailyRollup, FiguresRollup, PullRequest, PullRequestFigures, Repository, Review, Team
from reviews.selectors import health as health_module
from reviews.selectors.health import agreement_counts, review_health
from reviews.selectors.order_statistics import (
    DURATION_BOUNDS,
    LINE_BOUNDS,
    OrderStatistics,
    RowsDisagree,
    bucket_of,
    bucket_sql,
    off_bounds_sql,
)
from reviews.services.figures import pull_request_figures_owed_mark, rollup_day, rollup_hour, rollup_totals
from tests.factories import PersonFactory, PullRequestFactory, RepositoryFactory, ReviewFactory, TeamFactory
from tests.reviews.test_pull_request_figures import _varied_history

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
SINCE, UNTIL = START + dt.timedelta(days=3, hours=5), START + dt.timedelta(days=38)
H = dt.timedelta(hours=1)


class _Never(Exception):
    pass


@pytest.fixture
def no_fallback(monkeypatch):
    """The figures come from the histograms: a disagreement with the rows fails the test instead of falling back."""
    monkeypatch.setattr(health_module, "RowsDisagree", _Never)


def _with_ties(team: Team) -> Repository:
    """A second repository whose durations tie (whole hours, whole days) and whose sizes sit on and off the bounds."""
    repository = RepositoryFactory(team=team)
    author, reviewer = PersonFactory(), PersonFactory()
    for index in range(45):
        ready = START + dt.timedelta(days=4 + index % 30, hours=index % 5)
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=ready, ready_at=ready,
            first_commit_at=ready - dt.timedelta(days=index % 3), last_pushed_at=ready,
            merged_at=ready + dt.timedelta(days=1 + index % 2), updated_at=ready, additions=[333, 400, 7][index % 3],
            deletions=0,
        )  # fmt: skip
        ReviewFactory(
            pull_request=pull_request,
            reviewer=reviewer,
            state=Review.State.APPROVED,
            submitted_at=ready + H * [1, 1, 2, 1.5][index % 4],
        )
    return repository


def _figures(
    team: Team,
    agreement: tuple[dt.timedelta, int],
    *,
    stored: bool,
    period: tuple[dt.datetime, dt.datetime] = (SINCE, UNTIL),
) -> dict[str, Any]:
    previous = health_module.STORED_FIGURES
    health_module.STORED_FIGURES = stored
    try:
        health = review_health(
            pull_requests=PullRequest.objects.filter(repository__team=team),
            since=period[0],
            until=period[1],
            repositories=Repository.objects.filter(team=team) if stored else None,
            agreement=agreement if stored else None,
        )
    finally:
        health_module.STORED_FIGURES = previous
    agreed = agreement_counts(health=health, review_within=agreement[0], max_size=agreement[1])
    return {**{key: value for key, value in vars(health).items() if key != "flows"}, "agreements": agreed}


def test_a_bucket_holds_the_values_above_its_lower_bound_up_to_its_upper_bound():
    assert bucket_of("pickup_time", None) is None
    assert bucket_of("pickup_time", -0.5) == "neg"
    assert bucket_of("pickup_time", 0.0) == "0"
    assert bucket_of("pickup_time", 0.5) == bucket_of("pickup_time", 1.0) == "1"
    assert bucket_of("pickup_time", 3600.0) == str(DURATION_BOUNDS.index(3600.0))
    assert bucket_of("pickup_time", 3600.5) == str(DURATION_BOUNDS.index(3600.0) + 1)
    assert bucket_of("cycle_time", 10.0**9) == str(len(DURATION_BOUNDS))
    assert bucket_of("changed_lines", 400) == str(LINE_BOUNDS.index(400))
    assert bucket_of("changed_lines", 401) == str(LINE_BOUNDS.index(400) + 1)


@pytest.mark.parametrize(
    "agreement",
    [(dt.timedelta(hours=20), 250), (dt.timedelta(hours=1), 400), (dt.timedelta(minutes=95), 333)],
    ids=["on-bounds", "on-the-ties", "between-bounds"],
)
def test_the_histograms_give_the_computed_figures_with_ties_and_several_repositories(agreement, no_fallback):
    """Also where `percentile_cont` rounds the other way (a p90 of 15.575 hours in the last place): the numbers are
    `health.percentile`'s."""
    team = _varied_history()
    _with_ties(team)
    computed = _figures(team, agreement, stored=False)
    assert computed["merged"] > 70
    assert computed["agreements"]["in_time"] and computed["agreements"]["late"]
    assert _figures(team, agreement, stored=True) == computed  # the rows computed on read
    assert _figures(team, agreement, stored=True) == computed  # read back


def test_a_late_review_moves_a_duration_to_another_bucket_and_the_medians_follow(no_fallback):
    team = _varied_history()
    repository = _with_ties(team)
    agreement = (dt.timedelta(minutes=95), 333)
    before = _figures(team, agreement, stored=True)
    # Late syncs: an earlier first review of several tied pull requests, so the median itself moves.
    late = list(PullRequest.objects.filter(repository=repository).order_by("pk")[:30])
    for pull_request in late:
        ReviewFactory(
            pull_request=pull_request,
            reviewer=PersonFactory(),
            state=Review.State.COMMENTED,
            submitted_at=pull_request.ready_at + dt.timedelta(minutes=7),
        )
    pull_request_figures_owed_mark(pull_requests=[pr.pk for pr in late])
    computed = _figures(team, agreement, stored=False)
    assert computed["time_to_first_review"] != before["time_to_first_review"]
    assert _figures(team, agreement, stored=True) == computed


def test_rows_that_disagree_with_the_rollups_fall_back_to_the_rows(monkeypatch):
    team = _varied_history()
    agreement = (dt.timedelta(minutes=95), 333)
    computed = _figures(team, agreement, stored=False)
    monkeypatch.setattr(OrderStatistics, "read", lambda self: None)  # as if every bucket's rows were gone
    assert _figures(team, agreement, stored=True) == computed


def test_an_empty_period_reads_no_rows_for_its_percentiles(no_fallback):
    team = _varied_history()
    _figures(team, (dt.timedelta(hours=20), 250), stored=True)  # computes and stores what is owed
    with CaptureQueriesContext(connection) as captured:
        health = review_health(
            pull_requests=PullRequest.objects.filter(repository__team=team),
            since=SINCE - dt.timedelta(days=400),
            until=SINCE - dt.timedelta(days=300),
            repositories=Repository.objects.filter(team=team),
        )
    assert health.merged == 0 and health.cycle_time.median_hours is None
    reads = [query["sql"] for query in captured.captured_queries]
    assert not any("percentile_cont" in sql or "e.least" in sql for sql in reads)


@pytest.mark.parametrize(
    "minutes",
    [[121] * 3 + [150] * 5 + [180] * 4, [121] * 6 + [130, 150] + [180] * 2, [121, 140] + [180] * 9],
    ids=["ties-at-both-ends", "tie-at-the-least", "tie-at-the-greatest"],
)
def test_ranks_inside_one_bucket_with_ties_at_its_ends(minutes, no_fallback):
    """Every first review in (2 h, 3 h], one bucket: the ranks are read from its least, its middle values counted,
    and its greatest (the rest of the bucket's count)."""
    team = TeamFactory()
    repository = RepositoryFactory(team=team)
    author, reviewer = PersonFactory(), PersonFactory()
    for index, wait in enumerate(minutes):
        ready = START + dt.timedelta(days=5 + index)
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=ready, ready_at=ready,
            merged_at=ready + dt.timedelta(hours=5), updated_at=ready, additions=100 + index, deletions=0,
        )  # fmt: skip
        ReviewFactory(
            pull_request=pull_request,
            reviewer=reviewer,
            state=Review.State.APPROVED,
            submitted_at=ready + dt.timedelta(minutes=wait),
        )
    agreement = (dt.timedelta(hours=2, minutes=20), 105)  # both between bounds
    computed = _figures(team, agreement, stored=False)
    assert computed["time_to_first_review"].count == len(minutes)
    assert _figures(team, agreement, stored=True) == computed


def test_the_migration_builds_the_histograms_from_the_stored_rows(no_fallback):
    """Migration 0031 rebuilds rollups written without histograms (as 0030 left them) from the stored rows."""
    migration = import_module("reviews.migrations.0031_figures_histograms")
    team = _varied_history()
    agreement = (dt.timedelta(minutes=95), 333)
    expected = _figures(team, agreement, stored=True)  # computes and stores the rows
    for rollup in FiguresRollup.objects.all():
        rollup.counts = {name: n for name, n in rollup.counts.items() if not name.startswith("h:")}
        rollup.save()
    migration.rebuild_rollups(django_apps, None)
    summed = rollup_totals(PullRequestFigures.objects.all())
    assert {(r.repository_id, r.hour): Counter(r.counts) for r in FiguresRollup.objects.all()} == summed
    assert any(name.startswith("h:") for counts in summed.values() for name in counts)
    assert _figures(team, agreement, stored=True) == expected


def test_a_median_in_the_bucket_of_zero_beside_a_p90_in_another(no_fallback):
    """Bucket 0 (exactly 0 s: merged the moment it was approved) is read in the same statement as another bucket of
    the column: its bounds are sent as floats like the others' (psycopg refuses a list of ints and floats)."""
    team = TeamFactory()
    repository = RepositoryFactory(team=team)
    author, reviewer = PersonFactory(), PersonFactory()
    for index in range(10):
        ready = START + dt.timedelta(days=5 + index, hours=2)
        approved = ready + H
        merged = approved if index < 6 else approved + 2 * H
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=ready, ready_at=ready,
            first_commit_at=ready, last_pushed_at=ready, merged_at=merged, updated_at=merged, additions=10, deletions=0,
        )  # fmt: skip
        ReviewFactory(pull_request=pull_request, reviewer=reviewer, state=Review.State.APPROVED, submitted_at=approved)
    agreement = (dt.timedelta(hours=20), 250)
    computed = _figures(team, agreement, stored=False)
    assert computed["merge_time"].median_hours == 0 and computed["merge_time"].p90_hours == 2
    assert _figures(team, agreement, stored=True) == computed


def _first_reviews(repository: Repository, waits: list[float], first_ready: dt.datetime) -> None:
    """A merged pull request a day from `first_ready` on for each wait (minutes to its first review, an approval)."""
    author, reviewer = PersonFactory(), PersonFactory()
    for index, wait in enumerate(waits):
        ready = first_ready + dt.timedelta(days=index, hours=index % 3)
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=ready, ready_at=ready,
            merged_at=ready + dt.timedelta(hours=5), updated_at=ready, additions=100 + index, deletions=0,
        )  # fmt: skip
        ReviewFactory(
            pull_request=pull_request,
            reviewer=reviewer,
            state=Review.State.APPROVED,
            submitted_at=ready + dt.timedelta(minutes=wait),
        )


def test_a_bucket_with_rows_in_two_periods_gives_each_period_its_own_values(no_fallback):
    """Every first review in (2 h, 3 h], one bucket, in the previous period and in this one, their values
    interleaved: each period's median, 90th percentile, weekly medians and agreement counts are its own rows'."""
    team = TeamFactory()
    repository = RepositoryFactory(team=team)
    _first_reviews(repository, [125, 131, 137, 143, 149, 155, 161, 167, 173, 179], SINCE - dt.timedelta(days=20))
    _first_reviews(repository, [128, 134, 140, 146, 152, 158, 176, 177, 178], SINCE + dt.timedelta(days=2))
    agreement = (dt.timedelta(hours=2, minutes=30), 105)
    computed = _figures(team, agreement, stored=False)
    assert computed["time_to_first_review"].count == 9
    assert _figures(team, agreement, stored=True) == computed
    before = (SINCE - dt.timedelta(days=35), SINCE)
    previous = _figures(team, agreement, stored=False, period=before)
    assert previous["time_to_first_review"].count == 10
    assert previous["time_to_first_review"] != computed["time_to_first_review"]
    assert _figures(team, agreement, stored=True, period=before) == previous


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the histograms are read on PostgreSQL only")
def test_a_bucket_with_more_rows_than_the_rollups_count_falls_back_to_the_rows():
    """A row counted in the wrong bucket (rollups behind the rows: a writer in between): the median's bucket holds
    more rows under its bound than the histogram says, so the figures come from the rows (`percentile_cont`), never
    from a shifted rank. (Rows under the count are taken as ties on the bucket's bound, which are not read: the
    rollups are trusted for those, as they are for every rank's bucket.)"""
    team = TeamFactory()
    repository = RepositoryFactory(team=team)
    _first_reviews(repository, [125, 131, 137, 143, 149, 155, 161], SINCE + dt.timedelta(days=2))
    agreement = (dt.timedelta(hours=2, minutes=20), 105)
    expected = _figures(team, agreement, stored=True)  # stores the rows and their rollups
    assert expected == _figures(team, agreement, stored=False)
    moved = PullRequestFigures.objects.filter(repository=repository).order_by("time_to_first_review").first()
    assert moved is not None and moved.time_to_first_review is not None
    wrong = f"h:time_to_first_review:{int(bucket_of('time_to_first_review', moved.time_to_first_review) or 0) + 1}"
    right = f"h:time_to_first_review:{bucket_of('time_to_first_review', moved.time_to_first_review)}"
    for model, key in (
        (FiguresRollup, {"hour": rollup_hour(moved.merged_at)}),
        (FiguresDailyRollup, {"day": rollup_day(moved.merged_at)}),
    ):
        rollup = model.objects.get(repository=repository, **key)
        rollup.counts = {**rollup.counts, right: rollup.counts[right] - 1, wrong: rollup.counts.get(wrong, 0) + 1}
        rollup.save()
    histogram_figures = health_module._histogram_figures
    disagreed: list[str] = []

    def spy(*args: Any) -> Any:
        try:
            return histogram_figures(*args)
        except RowsDisagree as error:
            disagreed.append(str(error))
            raise

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(health_module, "_histogram_figures", spy)
        found = _figures(team, agreement, stored=True)
    assert disagreed == ["time_to_first_review"]  # the histograms were read, and disagreed
    assert found["time_to_first_review"] == expected["time_to_first_review"]


def test_the_migration_indexes_the_bucket_expression_the_reads_use():
    """The planner uses an expression index only for the same expression: migration 0033's frozen bounds write what
    `bucket_sql` writes today (other bounds: a new migration for the indexes, then this test with its name)."""
    migration = import_module("reviews.migrations.0033_figures_bucket_indexes")
    for column in migration.COLUMNS:
        assert migration.bucket_expression(column, f"f.{column}") == bucket_sql(column)
        assert migration.off_bounds(column, f"f.{column}") == off_bounds_sql(column)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bucket indexes and width_bucket: PostgreSQL")
def test_the_bucket_in_sql_is_the_histograms_bucket_on_and_around_every_bound():
    for column, bounds in (("pickup_time", DURATION_BOUNDS), ("changed_lines", LINE_BOUNDS)):
        step, number = (1, int) if column == "changed_lines" else (0.25, float)
        around = {number(max(bound + delta, 0)) for bound in bounds for delta in (-step, 0, step)}
        values = sorted(around | {number(10**9)})
        kind = "bigint" if column == "changed_lines" else "float8"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT f.{column}, {bucket_sql(column)} FROM unnest(%s::{kind}[]) f({column})",  # noqa: S608
                [values],
            )
            found = dict(cursor.fetchall())
        assert {value: str(found[value]) for value in values} == {value: bucket_of(column, value) for value in values}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bucket indexes: PostgreSQL")
def test_a_buckets_rows_of_a_period_are_read_by_its_bucket_index(no_fallback):
    team = TeamFactory()
    _first_reviews(RepositoryFactory(team=team), [125, 131, 137, 143, 149], SINCE + dt.timedelta(days=2))
    _figures(team, (dt.timedelta(hours=2, minutes=20), 105), stored=True)
    statements: list[str] = []

    def explain(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "width_bucket" in sql:
            execute("SET LOCAL enable_seqscan = off", None, False, context)  # a few rows: the planner would scan
            execute(f"EXPLAIN {sql}", params, many, context)
            statements.append("\n".join(row[0] for row in context["cursor"].fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        _figures(team, (dt.timedelta(hours=2, minutes=20), 105), stored=True)
    assert statements and "figures_ttfr_bucket_idx" in statements[0]
