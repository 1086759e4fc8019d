"""Per-hour and per-day rollups of the stored figures (`FiguresRollup`, `FiguresDailyRollup`): the team page and the
health API add them (a period's whole UTC days from the days, its edges from the hours) instead of reading every row,
so they must always sum to what the rows say (written with the rows, late events included) and give the figures
computing every flow gives, in a number of queries that does not grow with the history."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.models import (
    FiguresDailyRollup,
    FiguresRollup,
    Membership,
    Person,
    PullRequest,
    PullRequestFigures,
    Repository,
    Review,
    Team,
)
from reviews.selectors import health as health_module
from reviews.selectors.compliance import compliance_summary
from reviews.selectors.health import StoredFlows, agreement_counts, review_health
from reviews.selectors.scope import parse_scope
from reviews.selectors.teams import team_page
from reviews.services.figures import (
    daily_totals,
    figures_input_version,
    pull_request_figures_owed_mark,
    pull_request_figures_store,
    rollup_totals,
)
from tests.factories import MembershipFactory, PersonFactory, PullRequestFactory, RepositoryFactory, ReviewFactory
from tests.reviews.test_github_webhooks import deliver, fixture, webhook_secret  # noqa: F401 - fixtures
from tests.reviews.test_pull_request_figures import _varied_history

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
SINCE, UNTIL = START + dt.timedelta(days=3, hours=5), START + dt.timedelta(days=38)  # whole hours, weeks in part
AGREEMENT = (dt.timedelta(hours=20), 250)
H = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


def _health(team: Team, *, rolled_up: bool, stored: bool = True) -> dict[str, Any]:
    """Every figure of `review_health` (and the agreement counts): from the rollups, from the stored rows, or
    computed from every flow."""
    previous = health_module.STORED_FIGURES
    health_module.STORED_FIGURES = stored
    try:
        health = review_health(
            pull_requests=PullRequest.objects.filter(repository__team=team),
            since=SINCE,
            until=UNTIL,
            repositories=Repository.objects.filter(team=team) if rolled_up else None,
            agreement=AGREEMENT if rolled_up else None,
        )
    finally:
        health_module.STORED_FIGURES = previous
    assert isinstance(health.flows, StoredFlows) == stored
    if rolled_up:
        assert health.flows.agreements  # type: ignore[attr-defined]
    agreed = agreement_counts(health=health, review_within=AGREEMENT[0], max_size=AGREEMENT[1])
    return {**{key: value for key, value in vars(health).items() if key != "flows"}, "agreements": agreed}


def _stored_rollups() -> dict[tuple[int, dt.datetime], Counter[str]]:
    """The rollups stored (one left with nothing, its rows deleted, holds nothing: as good as none)."""
    return {(row.repository_id, row.hour): +Counter(row.counts) for row in FiguresRollup.objects.all() if row.counts}


def _summed_from_the_rows() -> dict[tuple[int, dt.datetime], Counter[str]]:
    return {key: +counts for key, counts in rollup_totals(PullRequestFigures.objects.all()).items()}


def _stored_days() -> dict[tuple[int, dt.date], Counter[str]]:
    return {
        (row.repository_id, row.day): +Counter(row.counts) for row in FiguresDailyRollup.objects.all() if row.counts
    }


def _rollups_match_the_rows() -> bool:
    """Both levels hold what the rows say: each hour its rows' counts, each UTC day its hours'."""
    hourly = rollup_totals(PullRequestFigures.objects.all())
    days = {key: +counts for key, counts in daily_totals(hourly).items() if +counts}
    return _stored_rollups() == _summed_from_the_rows() and _stored_days() == days


def test_the_rolled_up_figures_equal_the_computed_ones_over_a_varied_history():
    team = _varied_history()
    computed = _health(team, rolled_up=False, stored=False)
    assert computed["merged"] > 30
    assert computed["agreements"]["late"] and computed["agreements"]["over"]  # both sides of each agreement
    assert _health(team, rolled_up=True) == computed  # the rows computed on read, the rollups written with them
    assert FiguresRollup.objects.exists()
    assert _rollups_match_the_rows()
    assert _health(team, rolled_up=True) == computed  # read back
    assert _health(team, rolled_up=False) == computed


def test_the_team_page_reads_the_rollups_and_says_what_the_rows_say():
    """The page's period (whole days) is read from the rollups; its compliance summary too, but the overridden."""
    team = _varied_history()
    scope = parse_scope(QueryDict("since=2026-03-05&until=2026-04-08"), team=team, teams=Team.objects.all())
    page = team_page(scope=scope)
    assert isinstance(page.health.flows, StoredFlows) and page.health.flows.compliance_rows is not None
    rows = review_health(pull_requests=scope.pull_requests(), since=scope.since, until=scope.until)
    assert {k: v for k, v in vars(page.health).items() if k != "flows"} == {
        k: v for k, v in vars(rows).items() if k != "flows"
    }
    assert page.health.merged > 30
    assert page.compliance == compliance_summary(team=team, since=scope.since, until=scope.until)


def test_a_late_review_on_a_merged_pull_request_moves_the_rollups_with_the_rows():
    team = _varied_history()
    _health(team, rolled_up=True)
    merged = PullRequest.objects.filter(repository__team=team, merged_at__gte=SINCE, merged_at__lt=UNTIL)
    late = merged.filter(reviews__isnull=True).order_by("pk").first()
    assert late is not None
    reviewer = Person.objects.exclude(pk=late.author_id).order_by("pk").first()
    # Submitted before the merge, arriving after it (a late sync): the first review, an approval that counts.
    ReviewFactory(
        pull_request=late,
        reviewer=reviewer,
        state=Review.State.APPROVED,
        submitted_at=late.merged_at - dt.timedelta(minutes=5),
    )
    pull_request_figures_owed_mark(pull_requests=[late.pk])
    computed = _health(team, rolled_up=False, stored=False)
    assert _health(team, rolled_up=True) == computed
    assert _rollups_match_the_rows()
    assert computed["reviewer_load"] != []


def test_a_late_review_delivered_by_webhook_moves_the_rollups(deliver):  # noqa: F811 - the fixture
    deliver("pull_request", fixture("pull_request.closed.merged"))
    since, until = dt.datetime(2019, 5, 1, tzinfo=dt.UTC), dt.datetime(2019, 6, 1, tzinfo=dt.UTC)

    def figures(*, rolled_up: bool) -> dict[str, Any]:
        health = review_health(
            pull_requests=PullRequest.objects.all(),
            since=since,
            until=until,
            repositories=Repository.objects.all() if rolled_up else None,
        )
        return {key: value for key, value in vars(health).items() if key != "flows"}

    assert figures(rolled_up=True)["coverage"]["reviewed"] == 0
    deliver("pull_request_review", fixture("pull_request_review.submitted.approved"))  # submitted before the merge
    after = figures(rolled_up=True)
    assert after["time_to_first_review"].count == 1
    assert after["reviewer_load"][0].reviews_given == 1
    assert after == figures(rolled_up=False)
    assert _rollups_match_the_rows()


def test_a_new_bot_takes_its_pull_requests_out_of_the_rollups():
    team = _varied_history()
    _health(team, rolled_up=True)
    bot = Person.objects.filter(authored_pull_requests__repository__team=team).order_by("pk").first()
    bot.is_bot = True
    bot.save()
    computed = _health(team, rolled_up=False, stored=False)
    assert _health(team, rolled_up=True) == computed  # every row of another input version: computed again
    assert _rollups_match_the_rows()
    assert not PullRequestFigures.objects.filter(pull_request__author=bot).exists()


def test_rebuild_figures_rollups_computes_them_again_from_the_rows():
    team = _varied_history()
    expected = _health(team, rolled_up=True)
    before, days_before = _stored_rollups(), _stored_days()
    assert days_before and len(days_before) < len(before)
    FiguresRollup.objects.order_by("pk").first().delete()
    FiguresRollup.objects.update(counts={"merged": 1})
    FiguresDailyRollup.objects.order_by("pk").first().delete()
    FiguresDailyRollup.objects.update(counts={"merged": 2})
    call_command("rebuild_figures_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert _stored_rollups() == before
    assert _stored_days() == days_before
    assert _rollups_match_the_rows()
    assert _health(team, rolled_up=True) == expected


def test_a_period_not_in_whole_hours_reads_the_rows():
    team = _varied_history()
    previous = review_health(
        pull_requests=PullRequest.objects.filter(repository__team=team),
        since=SINCE + dt.timedelta(minutes=30),
        until=UNTIL,
        repositories=Repository.objects.filter(team=team),
    )
    assert previous.flows.compliance_rows is None  # type: ignore[attr-defined]


def _grow(team: Team, count: int) -> None:
    repository = team.repositories.get()
    author, reviewer = Person.objects.order_by("pk")[:2]
    for index in range(count):
        created = START + dt.timedelta(days=4, hours=index)
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=created,
            ready_at=created, merged_at=created + dt.timedelta(hours=3), updated_at=created, additions=index,
            deletions=1,
        )  # fmt: skip
        ReviewFactory(pull_request=pull_request, reviewer=reviewer, submitted_at=created + dt.timedelta(hours=1))


def test_the_rolled_up_reads_cost_the_same_queries_as_the_history_grows():
    team = _varied_history()

    def queries() -> int:
        _health(team, rolled_up=True)  # computes and stores what is owed
        with CaptureQueriesContext(connection) as captured:
            _health(team, rolled_up=True)
        return len(captured.captured_queries)

    small = queries()
    _grow(team, 40)
    assert queries() == small
    _grow(team, 80)
    assert queries() == small
    assert _rollups_match_the_rows()
    assert timezone.now()  # the clock is not frozen: the owed rows settle as in production


def _merged_at(team: Team, moments: list[dt.datetime]) -> None:
    repository = team.repositories.get()
    author, reviewer = Person.objects.order_by("pk")[:2]
    for index, merged in enumerate(moments):
        created = merged - dt.timedelta(hours=7)
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=created,
            ready_at=created, merged_at=merged, updated_at=created, additions=10 + index, deletions=1,
        )  # fmt: skip
        ReviewFactory(pull_request=pull_request, reviewer=reviewer, submitted_at=created + dt.timedelta(minutes=50))


def test_a_period_of_local_midnights_off_utc_reads_whole_days_and_its_edge_hours(settings):
    """A server in New York: the page's period starts and ends at 05:00 UTC (04:00 in summer time), so it is whole
    UTC days but for two partial ones. The figures equal the computed ones; the whole days come from the daily
    rollups (their hours' are not read) and the partial days from their hours (their days' are not read)."""
    settings.TIME_ZONE = "America/New_York"
    team = _varied_history()
    scope = parse_scope(QueryDict("since=2026-03-05&until=2026-04-07"), team=team, teams=Team.objects.all())
    since, until = scope.since.astimezone(dt.UTC), scope.until.astimezone(dt.UTC)
    assert (since.hour, until.hour) == (5, 4)  # standard time, then summer time: two partial UTC days
    edges = [since, since + dt.timedelta(hours=18, minutes=59), until - dt.timedelta(hours=4), until - MINUTE]
    _merged_at(team, edges)
    _merged_at(team, [since - MINUTE, until])  # just outside the period, on its edge days
    page = team_page(scope=scope)
    previous = health_module.STORED_FIGURES
    health_module.STORED_FIGURES = False
    try:
        computed = review_health(pull_requests=scope.pull_requests(), since=scope.since, until=scope.until)
    finally:
        health_module.STORED_FIGURES = previous
    assert isinstance(page.health.flows, StoredFlows) and page.health.flows.compliance_rows is not None
    assert {k: v for k, v in vars(page.health).items() if k != "flows"} == {
        k: v for k, v in vars(computed).items() if k != "flows"
    }
    assert _rollups_match_the_rows()

    def figures() -> dict[str, Any]:
        return {k: v for k, v in vars(team_page(scope=scope).health).items() if k != "flows"}

    expected = figures()
    first_whole, end_whole = since.date() + dt.timedelta(days=1), until.date()
    whole_days = dt.datetime.combine(first_whole, dt.time.min, tzinfo=dt.UTC), until.replace(hour=0)
    FiguresRollup.objects.filter(hour__gte=whole_days[0], hour__lt=whole_days[1]).update(counts={"merged": 1000})
    FiguresDailyRollup.objects.exclude(day__gte=first_whole, day__lt=end_whole).update(counts={"merged": 1000})
    assert figures() == expected  # neither is read
    FiguresDailyRollup.objects.filter(day=first_whole + dt.timedelta(days=3)).update(counts={"merged": 1000})
    assert figures()["merged"] != expected["merged"]  # the whole days are


def test_the_daily_rollups_migration_sums_the_hours():
    """Migration 0032 builds each UTC day's rollup from its hours' (which hold what the rows say)."""
    from importlib import import_module

    from django.apps import apps as django_apps

    migration = import_module("reviews.migrations.0032_figures_daily_rollups")
    team = _varied_history()
    expected = _health(team, rolled_up=True)
    FiguresDailyRollup.objects.all().delete()
    migration.build_daily_rollups(django_apps, connection.schema_editor())
    assert _rollups_match_the_rows()
    assert _health(team, rolled_up=True) == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="SQLite serialises writers; the race needs PostgreSQL",
)
def test_two_writers_of_one_hour_and_one_day_at_once_add_up():
    """Two computations store rows of the same hour (and day) at once: the second waits for the first's rollups and
    adds to what it committed, at both levels (a replace instead of an add would lose the first's rows)."""
    from tests.reviews.test_concurrent_writes import race

    repository = RepositoryFactory()
    author, reviewer = PersonFactory(), PersonFactory()
    merged = dt.datetime(2026, 3, 4, 10, 5, tzinfo=dt.UTC)
    pks = []
    for minutes in (0, 20, 300):  # two in one hour, the third in another hour of the same day
        created = merged - dt.timedelta(hours=6)
        pull_request = PullRequestFactory(
            repository=repository, author=author, state=PullRequest.State.MERGED, created_at=created,
            ready_at=created, merged_at=merged + dt.timedelta(minutes=minutes), updated_at=created, additions=5,
            deletions=1,
        )  # fmt: skip
        ReviewFactory(pull_request=pull_request, reviewer=reviewer, submitted_at=created + H)
        pks.append(pull_request.pk)
    version = figures_input_version(bots=set())

    def store(ids: list[int]) -> int:
        listed = PullRequest.objects.filter(pk__in=ids).select_related("repository__connection").order_by("pk")
        return pull_request_figures_store(pull_requests=list(listed), bots=set(), version=version)

    assert race(lambda: store(pks[:1]), lambda: store(pks[1:])) == (1, 2)
    assert _rollups_match_the_rows()
    assert _stored_days() == {(repository.pk, merged.date()): _stored_days()[repository.pk, merged.date()]}
    assert _stored_days()[repository.pk, merged.date()]["merged"] == 3
    assert sum(counts["merged"] for counts in _stored_rollups().values()) == 3


def test_the_previous_period_reuses_the_bots_names_and_who_waits_and_gives_its_own_figures():
    """The team page's two periods read the bots, who waits on whom now and the people's names once (`ReadOnce`):
    each period's figures are what `review_health` gives it alone, and the previous period's reviewer load counts
    the pull requests waiting now."""
    team = _varied_history()
    people = list(Person.objects.filter(authored_pull_requests__repository__team=team).distinct().order_by("pk"))
    bot = PersonFactory(is_bot=True)
    waiting = PullRequestFactory(
        repository=Repository.objects.get(team=team),
        author=people[0],
        state=PullRequest.State.OPEN,
        draft=False,
        ready_at=dt.datetime(2026, 4, 6, tzinfo=dt.UTC),
    )
    waiting.requested_reviewers.add(people[1], people[2], bot)
    scope = parse_scope(QueryDict("since=2026-03-22&until=2026-04-10"), team=team, teams=Team.objects.all())
    now = scope.until
    with CaptureQueriesContext(connection) as captured:
        page = team_page(scope=scope, now=now)
    bot_reads = [q for q in captured.captured_queries if '"is_bot"' in q["sql"] and "reviews_person" in q["sql"]]
    assert len([q for q in bot_reads if q["sql"].startswith('SELECT "reviews_person"."id" AS "pk" FROM')]) == 1

    def alone(since: dt.datetime, until: dt.datetime, **extra: Any) -> dict[str, Any]:
        found = review_health(
            pull_requests=scope.pull_requests(),
            since=since,
            until=until,
            repositories=Repository.objects.filter(team=team),
            **extra,
        )
        return {k: v for k, v in vars(found).items() if k != "flows"}

    previous = scope.previous()
    assert previous.since < previous.until == scope.since
    assert {k: v for k, v in vars(page.previous).items() if k != "flows"} == alone(previous.since, previous.until)
    agreement = (dt.timedelta(hours=team.review_within_hours), team.max_pr_size)
    assert {k: v for k, v in vars(page.health).items() if k != "flows"} == alone(
        scope.since, scope.until, agreement=agreement
    )
    assert page.previous.merged and page.health.merged  # both periods hold merges
    load = {row.person_id: row.waiting_on_them for row in page.previous.reviewer_load}
    assert load[people[1].pk] == load[people[2].pk] == 1
    assert bot.pk not in load


def test_the_html_page_reads_no_week_of_the_previous_period_and_its_other_figures_are_the_same(monkeypatch):
    """The team page compares the previous period's totals and medians, never its weeks: `previous_weeks=False`
    leaves them out (an empty list, not weeks without figures) and reads no rank of a week of that period; every
    other figure of both periods is the same. The health API still gives the previous period's weeks."""
    from reviews.selectors import order_statistics

    team = _varied_history()
    scope = parse_scope(QueryDict("since=2026-03-22&until=2026-04-10"), team=team, teams=Team.objects.all())
    previous = scope.previous()
    full = team_page(scope=scope, now=scope.until)
    asked: list[tuple[dt.datetime, dt.datetime]] = []
    ask_rank = order_statistics.OrderStatistics.ask_rank

    def recording(self: Any, column: str, histogram: Any, period: Any, rank: int) -> None:
        asked.append(period)
        ask_rank(self, column, histogram, period, rank)

    monkeypatch.setattr(order_statistics.OrderStatistics, "ask_rank", recording)
    light = team_page(scope=scope, now=scope.until, previous_weeks=False)
    assert full.previous.weekly and light.previous.weekly == []
    assert {k: v for k, v in vars(light.previous).items() if k not in {"flows", "weekly"}} == {
        k: v for k, v in vars(full.previous).items() if k not in {"flows", "weekly"}
    }
    assert {k: v for k, v in vars(light.health).items() if k != "flows"} == {
        k: v for k, v in vars(full.health).items() if k != "flows"
    }
    of_previous = [span for span in asked if span[1] <= previous.until]
    if connection.vendor == "postgresql":
        assert of_previous and set(of_previous) == {(previous.since, previous.until)}  # no week of it


@pytest.mark.parametrize(
    "query",
    [
        "since=2026-03-22&until=2026-04-10&repository={other}",
        "since=2026-03-22&until=2026-04-10&repository={repository}&repository={other}",
        "since=2026-03-22&until=2026-04-10&author={author}",
        "since=2026-03-22T05:30:00Z&until=2026-04-10T17:00:00Z",  # edges within hours: no rollups
        "since=2026-03-03&until=2026-03-10",  # the previous period before any merge: empty
    ],
    ids=["another repository", "both repositories", "an author", "edges within hours", "empty previous period"],
)
def test_each_period_of_a_filtered_page_is_review_health_of_its_scope_alone(query, monkeypatch):
    """`ReadOnce` shares the bots, who waits now and the names between the periods whatever the filters: each period's
    figures are `review_health`'s alone for the same scope, with a bot and a second repository's pull requests that
    only the previous period holds."""
    team = _varied_history()
    repository = Repository.objects.get(team=team)
    other = RepositoryFactory(team=team)
    people = list(Person.objects.filter(authored_pull_requests__repository__team=team).distinct().order_by("pk"))
    bot = PersonFactory(is_bot=True, display_name="deps-bot")
    for day, author in ((5, bot), (6, people[0])):  # in the previous period of the first three scopes only
        merged = PullRequestFactory(
            repository=other,
            author=author,
            state=PullRequest.State.MERGED,
            created_at=dt.datetime(2026, 3, day, 9, tzinfo=dt.UTC),
            ready_at=dt.datetime(2026, 3, day, 9, tzinfo=dt.UTC),
            merged_at=dt.datetime(2026, 3, day, 15, tzinfo=dt.UTC),
            updated_at=dt.datetime(2026, 3, day, 15, tzinfo=dt.UTC),
            additions=12,
            deletions=3,
        )
        ReviewFactory(pull_request=merged, reviewer=bot, state="approved", submitted_at=merged.merged_at)
        ReviewFactory(pull_request=merged, reviewer=people[1], state="approved", submitted_at=merged.merged_at)
    waiting = PullRequestFactory(repository=other, author=people[0], state=PullRequest.State.OPEN, draft=False)
    waiting.requested_reviewers.add(people[2], bot)
    params = QueryDict(query.format(repository=repository.pk, other=other.pk, author=people[0].pk))
    scope = parse_scope(params, team=team, teams=Team.objects.all())
    rolled_up: list[object] = []
    roll_up = health_module._rolled_up_health
    monkeypatch.setattr(health_module, "_rolled_up_health", lambda *args: rolled_up.append(args) or roll_up(*args))
    page = team_page(scope=scope, now=scope.until, previous_weeks=True)
    light = team_page(scope=scope, now=scope.until, previous_weeks=False)
    # What `ReadOnce` shares most (who waits now, the names) only the rollups' way reads: taken unless filtered by
    # author or cut within an hour.
    assert len(rolled_up) == (0 if "author" in query or "T05" in query else 4)
    repositories = Repository.objects.filter(team=team)
    if scope.repositories:
        repositories = repositories.filter(pk__in=scope.repositories)
    if scope.authors:
        repositories = None

    def alone(since: dt.datetime, until: dt.datetime, **extra: Any) -> dict[str, Any]:
        found = review_health(
            pull_requests=scope.pull_requests(), since=since, until=until, repositories=repositories, **extra
        )
        return {k: v for k, v in vars(found).items() if k != "flows"}

    previous = scope.previous()
    expected = alone(previous.since, previous.until)
    assert {k: v for k, v in vars(page.previous).items() if k != "flows"} == expected
    assert {k: v for k, v in vars(light.previous).items() if k != "flows"} == {**expected, "weekly": []}
    agreement = (dt.timedelta(hours=team.review_within_hours), team.max_pr_size)
    current = alone(scope.since, scope.until, agreement=agreement)
    assert {k: v for k, v in vars(page.health).items() if k != "flows"} == current
    assert {k: v for k, v in vars(light.health).items() if k != "flows"} == current
    assert bot.pk not in {row.person_id for row in page.previous.reviewer_load}
    assert bool(page.previous.merged) is ("2026-03-03" not in query)  # the filtered previous periods hold merges


def test_the_health_api_still_gives_the_previous_periods_weeks_the_html_page_leaves_out(client):
    team = _varied_history()
    user = User.objects.create_user("lead", password="pw")
    MembershipFactory(team=team, person=PersonFactory(user=user), role=Membership.Role.LEAD)
    client.force_login(user)
    query = "since=2026-03-22&until=2026-04-10"
    previous = client.get(f"/api/v1/teams/{team.slug}/health?{query}").json()["previous"]
    scope = parse_scope(QueryDict(query), team=team, teams=Team.objects.all())
    alone = review_health(
        pull_requests=scope.pull_requests(),
        since=scope.previous().since,
        until=scope.since,
        repositories=Repository.objects.filter(team=team),
    )
    assert len(previous["weekly"]) == len(alone.weekly) >= 3
    assert [week["week"] for week in previous["weekly"]] == [week["week"].isoformat() for week in alone.weekly]
    assert [week["merged"] for week in previous["weekly"]] == [week["merged"] for week in alone.weekly]
    assert any(week["merged"] for week in previous["weekly"])
    assert client.get(f"/teams/{team.slug}/?{query}").status_code == 200
