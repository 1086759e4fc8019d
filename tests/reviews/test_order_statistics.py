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

from reviews.models import FiguresRollup, PullRequest, PullRequestFigures, Repository, Review, Team
from reviews.selectors import health as health_module
from reviews.selectors.health import agreement_counts, review_health
from reviews.selectors.order_statistics import DURATION_BOUNDS, LINE_BOUNDS, OrderStatistics, bucket_of
from reviews.services.figures import pull_request_figures_owed_mark, rollup_totals
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


def _figures(team: Team, agreement: tuple[dt.timedelta, int], *, stored: bool) -> dict[str, Any]:
    previous = health_module.STORED_FIGURES
    health_module.STORED_FIGURES = stored
    try:
        health = review_health(
            pull_requests=PullRequest.objects.filter(repository__team=team),
            since=SINCE,
            until=UNTIL,
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
