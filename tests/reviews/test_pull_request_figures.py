"""Stored review figures (`PullRequestFigures`): the team page and the health API aggregate them, so they must say
exactly what computing every flow says, be computed when missing, and follow late events."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from django.utils import timezone

from reviews.models import PullRequest, PullRequestFigures, Review, Team
from reviews.selectors import health as health_module
from reviews.selectors.drilldown import METRICS, drilldown
from reviews.selectors.health import bot_ids, review_health
from reviews.selectors.scope import parse_scope
from reviews.services.figures import (
    SETTLE,
    current_figures_filter,
    figures_input_version,
    pull_request_figures_owed_mark,
)
from reviews.services.pairing import pairing_session_record
from reviews.services.policies import policy_save
from reviews.tasks import refresh_pull_request_figures
from tests.factories import (
    CommentFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)
from tests.reviews.test_github_webhooks import deliver, fixture, webhook_secret  # noqa: F401 - fixtures
from tests.scenarios.test_consistency import CASES, Case

pytestmark = pytest.mark.django_db

H = dt.timedelta(hours=1)


def _figures(pull_requests: Any, since: dt.datetime, until: dt.datetime, *, stored: bool) -> dict[str, Any]:
    """Every figure of `review_health`, from the stored rows or computed from every flow as before them."""
    previous = health_module.STORED_FIGURES
    health_module.STORED_FIGURES = stored
    try:
        health = review_health(pull_requests=pull_requests, since=since, until=until)
    finally:
        health_module.STORED_FIGURES = previous
    return {key: value for key, value in vars(health).items() if key != "flows"}


@pytest.mark.parametrize("build", CASES, ids=[case.__name__ for case in CASES])
def test_the_stored_figures_say_what_the_computed_ones_say_in_every_consistency_scenario(build):
    now = timezone.now()
    case = Case(build.__name__.replace("_", "-")[:50], now, PersonFactory())
    build(case)
    pull_requests = PullRequest.objects.filter(repository__team=case.team)
    since, until = now - dt.timedelta(days=30), now
    computed = _figures(pull_requests, since, until, stored=False)
    assert PullRequestFigures.objects.count() == 0
    assert _figures(pull_requests, since, until, stored=True) == computed  # rows computed on read
    assert PullRequestFigures.objects.filter(pull_request=case.pull_request).exists()
    assert _figures(pull_requests, since, until, stored=True) == computed  # and read back as stored


def _varied_history() -> Team:
    """Durations of every sign and none, sizes across every bucket, reviews of every state, comments (from
    2026-03-02 over 40 days)."""
    rng = random.Random(7)
    team = TeamFactory()
    repository = RepositoryFactory(team=team)
    people = [PersonFactory() for _ in range(5)]
    start = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    for index in range(60):
        created = start + dt.timedelta(hours=rng.randrange(0, 24 * 40))
        pull_request = PullRequestFactory(
            repository=repository,
            author=people[index % 5],
            state=PullRequest.State.MERGED,
            created_at=created,
            ready_at=created + dt.timedelta(minutes=rng.randrange(0, 300)) if index % 4 else None,
            first_commit_at=created - H if index % 3 else None,
            last_pushed_at=created + H,
            merged_at=created + dt.timedelta(minutes=rng.randrange(30, 6000)),
            updated_at=created,
            additions=rng.choice([None, 3, 40, 200, 900, 4000]),
            deletions=rng.randrange(0, 60),
        )
        for _ in range(rng.randrange(0, 4)):
            ReviewFactory(
                pull_request=pull_request,
                reviewer=rng.choice(people),
                state=rng.choice(list(Review.State)),
                body=rng.choice(["", "looks fine"]),
                submitted_at=created + dt.timedelta(minutes=rng.randrange(-30, 3000)),
            )
        if index % 5 == 0:
            CommentFactory(pull_request=pull_request, author=rng.choice(people), created_at=created + 2 * H)
    return team


def test_the_stored_figures_equal_the_computed_ones_over_a_varied_history():
    """The varied history, with weeks of the period covered in part."""
    team = _varied_history()
    start = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    pull_requests = PullRequest.objects.filter(repository__team=team)
    since, until = start + dt.timedelta(days=3, hours=5), start + dt.timedelta(days=38)
    computed = _figures(pull_requests, since, until, stored=False)
    assert computed["merged"] > 30
    assert _figures(pull_requests, since, until, stored=True) == computed
    assert _figures(pull_requests, since, until, stored=True) == computed


def test_the_drill_down_lists_the_same_rows_from_the_stored_figures_as_from_the_computed_flows():
    """The drill-down reads the stored rows (not every flow's facts computed again) wherever the figure did: every
    metric's rows, values and order are those of the computed flows."""
    team = _varied_history()
    scope = parse_scope(QueryDict("since=2026-03-05&until=2026-04-08"), team=team, teams=Team.objects.all())
    now = timezone.now()

    def rows(metric: str, *, stored: bool) -> list[dict[str, Any]]:
        previous = health_module.STORED_FIGURES
        health_module.STORED_FIGURES = stored
        try:
            found = drilldown(scope=scope, params=QueryDict(urlencode({"metric": metric})), now=now)
        finally:
            health_module.STORED_FIGURES = previous
        return [{key: value for key, value in row.items() if key != "pr"} for row in found.rows]

    merged = rows("merged", stored=False)
    assert len(merged) > 30
    assert {row["status"] for row in merged} == {"not_evaluated"}  # no policy: no verdict before any merge
    for metric in METRICS:
        assert rows(metric, stored=True) == rows(metric, stored=False), metric


def test_a_late_review_after_the_merge_updates_the_figures(deliver):  # noqa: F811 - the fixture
    deliver("pull_request", fixture("pull_request.closed.merged"))
    pull_requests = PullRequest.objects.all()
    since, until = dt.datetime(2019, 5, 1, tzinfo=dt.UTC), dt.datetime(2019, 6, 1, tzinfo=dt.UTC)
    before = _figures(pull_requests, since, until, stored=True)
    assert before["time_to_first_review"].count == 0
    row = PullRequestFigures.objects.get()

    deliver("pull_request_review", fixture("pull_request_review.submitted.approved"))  # submitted before the merge
    assert PullRequest.objects.get().figures_inputs_changed_at > row.computed_at  # stamped with the review
    after = _figures(pull_requests, since, until, stored=True)
    assert after["time_to_first_review"].count == 1
    assert after == _figures(pull_requests, since, until, stored=False)
    row.refresh_from_db()
    assert row.time_to_first_review == 7.0  # 15:20:33 ready, 15:20:40 reviewed


def _merged_pull_request(team: Any, **values: Any) -> PullRequest:
    now = timezone.now()
    return PullRequestFactory(
        repository=RepositoryFactory(team=team),
        state=PullRequest.State.MERGED,
        created_at=now - 30 * H,
        ready_at=now - 30 * H,
        last_pushed_at=now - 30 * H,
        first_commit_at=now - 31 * H,
        merged_at=now - 2 * H,
        updated_at=now - 2 * H,
        additions=300,
        deletions=0,
        **values,
    )


def test_a_missing_row_is_computed_on_read_and_a_changed_policy_marks_the_rows_owed():
    team = TeamFactory()
    pull_request = _merged_pull_request(team)
    ReviewFactory(
        pull_request=pull_request, state=Review.State.APPROVED, submitted_at=timezone.now() - 29 * H, body="ok"
    )
    pull_requests = PullRequest.objects.filter(repository__team=team)
    since, until = timezone.now() - 48 * H, timezone.now()
    assert _figures(pull_requests, since, until, stored=True)["approvals"] == 1
    PullRequestFigures.objects.all().delete()
    assert _figures(pull_requests, since, until, stored=True)["approvals"] == 1
    assert PullRequestFigures.objects.filter(pull_request=pull_request).exists()

    policy_save(team=team, document="rules:\n  - name: two\n    require: {approvals: 2}\n")
    assert _owed() == {pull_request.pk}
    assert _figures(pull_requests, since, until, stored=True) == _figures(pull_requests, since, until, stored=False)


def test_a_pairing_session_recorded_after_the_merge_marks_the_authors_figures_owed():
    team = TeamFactory()
    author, partner = PersonFactory(), PersonFactory()
    pull_request = _merged_pull_request(team, author=author)
    pull_requests = PullRequest.objects.filter(repository__team=team)
    since, until = timezone.now() - 48 * H, timezone.now()
    _figures(pull_requests, since, until, stored=True)
    pairing_session_record(
        source="manual",
        external_id="late",
        participants=[(author, "driver"), (partner, "navigator")],
        started_at=timezone.now() - 40 * H,
        ended_at=timezone.now() - 20 * H,
        repository=pull_request.repository,
    )
    assert _owed() == {pull_request.pk}


def _owed() -> set[int]:
    """The pull requests whose stored figures are not read as they are."""
    current = current_figures_filter(version=figures_input_version(bots=bot_ids()))
    return set(PullRequestFigures.objects.exclude(current).values_list("pull_request_id", flat=True))


def test_a_change_stamped_while_a_computation_ran_keeps_the_row_owed_until_it_settles():
    """A change that commits while its figures are being computed: a row computed less than SETTLE after the
    change's stamp is computed again on read."""
    team = TeamFactory()
    pull_request = _merged_pull_request(team)
    pull_requests = PullRequest.objects.filter(repository__team=team)
    since, until = timezone.now() - 48 * H, timezone.now()
    _figures(pull_requests, since, until, stored=True)
    assert _owed() == set()
    pull_request_figures_owed_mark(pull_requests=[pull_request.pk])
    _figures(pull_requests, since, until, stored=True)
    assert _owed() == {pull_request.pk}  # computed, but maybe before the change committed
    stamped = PullRequest.objects.get(pk=pull_request.pk).figures_inputs_changed_at
    PullRequestFigures.objects.update(computed_at=stamped + SETTLE)  # a computation once the change settled
    assert _owed() == set()


def test_the_reconciler_computes_what_is_owed_or_missing_once():
    team = TeamFactory()
    first, second = _merged_pull_request(team), _merged_pull_request(team)
    assert refresh_pull_request_figures() == "computed 2"
    assert refresh_pull_request_figures() == "computed 0"  # idempotent: nothing is owed
    pull_request_figures_owed_mark(pull_requests=[first.pk])
    PullRequestFigures.objects.update(computed_at=timezone.now() - 2 * SETTLE)  # computed before the change...
    PullRequest.objects.filter(pk=first.pk).update(figures_inputs_changed_at=timezone.now() - SETTLE - SETTLE / 2)
    assert refresh_pull_request_figures() == "computed 1"  # ... that has settled since
    version = figures_input_version(bots=bot_ids())
    assert set(PullRequestFigures.objects.values_list("pull_request_id", "input_version")) == {
        (first.pk, version),
        (second.pk, version),
    }


def test_a_new_bot_makes_every_row_of_another_input_version():
    team = TeamFactory()
    _merged_pull_request(team)
    assert refresh_pull_request_figures() == "computed 1"
    PersonFactory(is_bot=True)
    assert refresh_pull_request_figures() == "computed 1"
