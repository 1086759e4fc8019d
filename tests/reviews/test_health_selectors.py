"""Review-health figures against a small history computed by hand (METRICS.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from reviews.models import PullRequest
from reviews.selectors.health import review_health, size_bucket, stale_pull_requests, waiting_for_review
from tests.factories import (
    CommentFactory,
    CommitFactory,
    IdentityFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)  # a Monday
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@pytest.fixture
def history():
    team = TeamFactory(slug="shop")
    repository = RepositoryFactory(team=team)
    a, b, c = PersonFactory(display_name="A"), PersonFactory(display_name="B"), PersonFactory(display_name="C")
    bot = PersonFactory(display_name="bot", is_bot=True)

    def pull(**fields):
        fields.setdefault("updated_at", fields.get("merged_at") or T0)
        return PullRequestFactory(repository=repository, state="merged", **fields)

    pr1 = pull(author=a, created_at=T0, ready_at=T0, first_commit_at=T0 - 10 * H, merged_at=T0 + 5 * H,
               additions=40, deletions=20)  # fmt: skip
    CommentFactory(pull_request=pr1, author=b, created_at=T0 + 2 * H)
    ReviewFactory(pull_request=pr1, reviewer=b, state="approved", submitted_at=T0 + 3 * H, body="")

    pr2 = pull(author=b, created_at=T0, draft=False, ready_at=T0 + 24 * H, first_commit_at=T0 + 20 * H,
               last_pushed_at=T0 + 29 * H + 55 * M, merged_at=T0 + 31 * H, additions=150, deletions=50)  # fmt: skip
    ReviewFactory(pull_request=pr2, reviewer=c, state="changes_requested", submitted_at=T0 + 26 * H, body="Please fix")
    ReviewFactory(pull_request=pr2, reviewer=c, state="approved", submitted_at=T0 + 30 * H, body="")
    ReviewFactory(pull_request=pr2, reviewer=a, state="approved", submitted_at=T0 + 30 * H + M, body="")

    pr3 = pull(author=c, created_at=T0, ready_at=T0, first_commit_at=None, merged_at=T0 + 4 * H,
               additions=3, deletions=2)  # fmt: skip
    # C wrote it with A: a co-author trailer makes it paired (and nothing else reviewed it).
    commit = CommitFactory(repository=repository, author=c, authored_at=T0 + H)
    commit.co_authors.add(IdentityFactory(person=a, kind="email", connection=None, value="a@example.com"))
    pr3.commits.add(commit)
    pull(author=bot, created_at=T0, ready_at=T0, merged_at=T0 + H, additions=1, deletions=1)
    pull(author=a, created_at=T0 - 30 * 24 * H, ready_at=T0 - 30 * 24 * H, merged_at=T0 - 29 * 24 * H,
         additions=1, deletions=0)  # fmt: skip
    return {"team": team, "pr3": pr3}


def _health(history):
    return review_health(
        pull_requests=PullRequest.objects.filter(repository__team=history["team"]),
        since=T0 - 24 * H,
        until=T0 + 7 * 24 * H,
    )


def test_review_flow_medians_and_p90(history):
    health = _health(history)
    assert health.merged == 3  # the bot's and the one merged before the period are left out
    assert (health.time_to_first_review.median_hours, health.time_to_first_review.p90_hours) == (2.0, 2.0)
    assert (health.pickup_time.median_hours, health.pickup_time.p90_hours) == (2.0, 3.6)
    assert (health.review_time.median_hours, health.review_time.p90_hours) == (4.0, 4.8)
    assert (health.time_to_approve.median_hours, health.time_to_approve.p90_hours) == (4.5, 5.7)
    assert (health.merge_time.median_hours, health.merge_time.p90_hours) == (1.49, 1.9)
    assert (health.cycle_time.median_hours, health.cycle_time.p90_hours) == (13.0, 14.6)
    assert health.rework_cycles_mean == 0.33


def test_coverage_quality_and_size(history):
    health = _health(history)
    assert health.coverage == {"reviewed": 2, "paired_only": 1, "neither": 0}
    assert health.approvals == 3
    assert health.rubber_stamps == 2
    assert health.rubber_stamps_by_reviewer == {"A": 1, "C": 1}
    assert health.review_depth == 1.0
    assert health.size_buckets == {"xs": 1, "s": 0, "m": 2, "l": 0, "xl": 0}
    assert health.top_reviewer_share == 0.5
    assert health.bus_factor_warning is False
    assert [(load.name, load.reviews_given) for load in health.reviewer_load] == [("C", 2), ("A", 1), ("B", 1)]


def test_weekly_trend_counts_merges_per_week(history):
    weeks = _health(history).weekly
    assert weeks[0]["week"] == dt.date(2026, 4, 27)
    assert weeks[1]["week"] == dt.date(2026, 5, 4)
    assert weeks[1]["merged"] == 3
    # The period (Sunday 09:00 to the next Monday but one, 09:00) covers its first and last weeks only in part.
    assert [(week["partial"], week["days"]) for week in weeks] == [(True, 0.6), (False, 7.0), (True, 0.4)]


@pytest.mark.parametrize(
    ("lines", "bucket"), [(0, "xs"), (10, "xs"), (11, "s"), (50, "s"), (250, "m"), (1000, "l"), (1001, "xl")]
)
def test_size_buckets_follow_the_definition(lines, bucket):
    assert size_bucket(lines) == bucket


def test_waiting_for_review_ignores_the_authors_own_activity_and_drafts():
    team = TeamFactory(review_within_hours=24)
    repository = RepositoryFactory(team=team)
    now = T0 + 48 * H
    author = PersonFactory()
    waiting = PullRequestFactory(repository=repository, author=author, ready_at=T0, updated_at=T0)
    CommentFactory(pull_request=waiting, author=author, created_at=T0 + H)
    reviewed = PullRequestFactory(repository=repository, ready_at=T0, updated_at=T0)
    ReviewFactory(pull_request=reviewed, state="commented", submitted_at=T0 + H)
    PullRequestFactory(repository=repository, ready_at=T0 + 40 * H, updated_at=T0)  # within the agreement
    PullRequestFactory(repository=repository, draft=True, ready_at=None, updated_at=T0)
    assert waiting_for_review(team=team, now=now) == [waiting]
    assert set(stale_pull_requests(team=team, now=T0 + 8 * 24 * H)) == set(PullRequest.objects.filter(state="open"))


# The figures' rows, then how each pull request was reviewed and paired (reviews.selectors.review_facts), which reads
# what the verdict reads (files, checks, CODEOWNERS, incidents) to count the approvals it counted. A row computed on
# read also stores its status at merge (the verdicts and overrides: 2) and what it covered (1); the owed rows are
# found by an indexed probe, then read (1 more than the anti-join that read them, and no pass over the period). Storing
# them adjusts the hourly rollups and, one upsert more, the daily ones (27).
QUERIES = 27


def test_query_count_does_not_grow_with_history(django_assert_max_num_queries, history):
    team = history["team"]
    with django_assert_max_num_queries(QUERIES):
        _health(history)
    repository = team.repositories.get()
    for index in range(40):
        pr = PullRequestFactory(
            repository=repository, state="merged", created_at=T0, ready_at=T0, merged_at=T0 + (index + 1) * M,
            updated_at=T0 + H, additions=index, deletions=1,
        )  # fmt: skip
        ReviewFactory(pull_request=pr, submitted_at=T0 + M)
        CommentFactory(pull_request=pr, created_at=T0 + M)
    with django_assert_max_num_queries(QUERIES):
        assert _health(history).merged == 43


def test_bots_are_left_out_unless_configured(history, settings):
    assert _health(history).merged == 3
    settings.METRICS_INCLUDE_BOTS = True
    assert _health(history).merged == 4


def test_activity_after_the_merge_picks_nothing_up():
    """A comment and a review given after a change merged are no first review: its pickup ends at the merge and it
    has no time to first review (the approvals' rule: only what came by the merge counted)."""
    team = TeamFactory(slug="late")
    repository = RepositoryFactory(team=team)
    author, reader = PersonFactory(display_name="Author"), PersonFactory(display_name="Reader")
    merged = PullRequestFactory(
        repository=repository, state="merged", author=author, created_at=T0, ready_at=T0, merged_at=T0 + 2 * H,
        updated_at=T0 + 2 * H, additions=5, deletions=1,
    )  # fmt: skip
    CommentFactory(pull_request=merged, author=reader, created_at=T0 + 3 * H)
    ReviewFactory(pull_request=merged, reviewer=reader, state="commented", submitted_at=T0 + 4 * H, body="late")
    health = review_health(
        pull_requests=PullRequest.objects.filter(repository__team=team), since=T0 - H, until=T0 + 24 * H
    )
    assert health.time_to_first_review.count == 0
    assert health.pickup_time.median_hours == 2.0
