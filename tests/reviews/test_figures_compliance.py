"""The compliance summary and the reviewer load from the stored figures (issue 15, "pages from aggregates"): the
same counts as the verdicts say, kept correct when a verdict or an override arrives after the row was computed, and
the team page and health API in a number of queries that does not grow with the number of pull requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.models import (
    Membership,
    PolicyEvaluation,
    PolicyViolation,
    PullRequest,
    PullRequestFigures,
    Review,
)
from reviews.selectors.compliance import _summary, compliance_summary, merged_changes
from reviews.services.policies import override_withdraw, pull_request_evaluate, pull_request_override
from tests.factories import (
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

H = dt.timedelta(hours=1)


@pytest.fixture
def world():
    team = TeamFactory(slug="shop", name="Shop")
    user = User.objects.create_user("lead", password="pw")
    lead = PersonFactory(display_name="Lead", user=user)
    MembershipFactory(team=team, person=lead, role=Membership.Role.LEAD)
    return {"team": team, "lead": lead, "user": user, "repositories": [RepositoryFactory(team=team) for _ in range(2)]}


def _merged(repository: Any, index: int, **values: Any) -> PullRequest:
    now = timezone.now()
    return PullRequestFactory(
        repository=repository,
        state=PullRequest.State.MERGED,
        head_sha=f"{index:040x}",
        created_at=now - 40 * H,
        ready_at=now - 40 * H,
        merged_at=now - dt.timedelta(hours=index + 2),
        **values,
    )


def _verdict(pull_request: PullRequest, outcome: str) -> PolicyEvaluation:
    return PolicyEvaluation.objects.create(
        pull_request=pull_request,
        head_sha=pull_request.head_sha,
        outcome=outcome,
        evaluated_at=pull_request.merged_at - H,
    )


def _live(team: Any, since: dt.datetime, until: dt.datetime, now: dt.datetime) -> Any:
    """The summary of every merged change's status as `merged_changes` computes it from the verdicts on each read."""
    rows = (
        merged_changes(team=team, since=since, until=until, now=now)
        .order_by()
        .values_list("repository_id", "repository__full_path", "status", "outcome_at_merge", "followup")
    )
    return _summary([(*row, 1) for row in rows])


def test_the_stored_status_at_merge_counts_what_the_verdicts_say(world):
    first, second = world["repositories"]
    bot = PersonFactory(display_name="renovate[bot]", is_bot=True)
    pulls = [_merged(first if i % 2 else second, i) for i in range(12)]
    bots_pull = _merged(first, 20, author=bot)
    for pr in pulls[:3]:
        _verdict(pr, "approved")
    for pr in pulls[3:5]:
        PolicyViolation.objects.create(pull_request=pr, evaluation=_verdict(pr, "pending"), outcome="blocked")
    _verdict(pulls[5], "pending")  # merged while pending, no violation recorded: a violation all the same
    PolicyViolation.objects.create(pull_request=bots_pull, evaluation=_verdict(bots_pull, "pending"), outcome="pending")
    for pr in pulls[6:9]:
        pull_request_override(pull_request=pr, person=world["lead"], reason="hotfix")
    withdrawn = pull_request_override(pull_request=pulls[9], person=world["lead"], reason="oops")
    override_withdraw(override=withdrawn, person=world["lead"], reason="not needed")
    now = timezone.now()
    since, until = now - 30 * 24 * H, now

    stored = compliance_summary(team=world["team"], since=since, until=until, now=now)

    assert stored == _live(world["team"], since, until, now)
    assert (stored.merged, stored.compliant, stored.violations, stored.overridden) == (13, 3, 4, 3)
    assert stored.not_evaluated == 3  # two never evaluated, one whose override was withdrawn
    assert {row["reason"]: row["count"] for row in stored.by_reason}["merged while blocked"] == 2
    assert stored.followups == {"done": 0, "due": 3, "overdue": 0}
    # Bots' pull requests have no stored figures (they are in no review figure) but are in compliance.
    assert not PullRequestFigures.objects.filter(pull_request=bots_pull).exists()
    assert set(PullRequestFigures.objects.values_list("compliance", flat=True)) == {
        "compliant",
        "violation",
        "overridden",
        "not_evaluated",
    }
    # A follow-up is read when counted: overdue once its deadline passed, with no new verdict.
    later = now + 30 * 24 * H
    assert compliance_summary(team=world["team"], since=since, until=until, now=later).followups == {
        "done": 0,
        "due": 0,
        "overdue": 3,
    }


def test_a_verdict_stored_after_the_row_was_computed_moves_its_status(world):
    pull_request = _merged(world["repositories"][0], 1)
    now = timezone.now()
    since = now - 30 * 24 * H
    assert compliance_summary(team=world["team"], since=since, until=now).not_evaluated == 1
    assert PullRequestFigures.objects.get().compliance == "not_evaluated"

    # The evaluation of the head, as a reconciler catching up would store it: reached before the merge.
    pull_request_evaluate(pull_request_id=pull_request.pk, now=pull_request.merged_at - H)

    summary = compliance_summary(team=world["team"], since=since, until=now)
    assert summary.not_evaluated == 0 and summary.merged == 1
    assert summary == _live(world["team"], since, now, timezone.now())
    assert PullRequestFigures.objects.get().compliance != "not_evaluated"


def test_an_override_given_after_the_row_was_computed_moves_its_status(world):
    pull_request = _merged(world["repositories"][0], 1)
    _verdict(pull_request, "pending")
    now = timezone.now()
    since = now - 30 * 24 * H
    assert compliance_summary(team=world["team"], since=since, until=now).violations == 1
    override = pull_request_override(pull_request=pull_request, person=world["lead"], reason="hotfix")
    assert compliance_summary(team=world["team"], since=since, until=now).overridden == 1
    override_withdraw(override=override, person=world["lead"], reason="not needed")
    assert compliance_summary(team=world["team"], since=since, until=now).violations == 1


def test_reviews_given_come_from_the_stored_rows(world, client):
    reviewers = [PersonFactory(display_name=f"R{i}") for i in range(3)]
    bot = PersonFactory(display_name="ci[bot]", is_bot=True)
    for i in range(6):
        pr = _merged(world["repositories"][0], i)
        for k in range(i % 3 + 1):
            ReviewFactory(
                pull_request=pr, reviewer=reviewers[k], state=Review.State.COMMENTED, submitted_at=pr.ready_at + H
            )
        ReviewFactory(pull_request=pr, reviewer=bot, state=Review.State.APPROVED, submitted_at=pr.ready_at + H)
    client.force_login(world["user"])
    load = client.get("/api/v1/teams/shop/health?days=30").json()["current"]["reviewer_load"]
    given = {row["name"]: row["reviews_given"] for row in load}
    expected = Review.objects.filter(reviewer__in=reviewers).values_list("reviewer__display_name", flat=True)
    assert given == {name: list(expected).count(name) for name in set(expected)}
    assert given == {"R0": 6, "R1": 4, "R2": 2}


def _history(world: Any, count: int, start: int) -> None:
    reviewer, bot = PersonFactory(), PersonFactory(is_bot=True)
    for index in range(start, start + count):
        pr = _merged(world["repositories"][index % 2], index % 400)
        ReviewFactory(pull_request=pr, reviewer=reviewer, state=Review.State.APPROVED, submitted_at=pr.ready_at + H)
        if index % 5 == 0:
            _verdict(pr, "approved")
    _merged(world["repositories"][0], start, author=bot)


def _queries(client: Any, url: str) -> int:
    client.get(url)  # the first read computes the rows of the new pull requests
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.slow(10)
def test_the_team_page_and_health_api_take_the_same_queries_at_10_and_200_merged_pull_requests(world, client):
    client.force_login(world["user"])
    urls = ("/teams/shop/", "/api/v1/teams/shop/health", "/api/v1/teams/shop/health?days=90")
    _history(world, 10, 0)
    small = {url: _queries(client, url) for url in urls}
    _history(world, 190, 10)
    assert {url: _queries(client, url) for url in urls} == small
    assert PullRequestFigures.objects.count() == 200
    # The health API: session and user (2), the team and the bots (2), per period the version and owed probes and
    # the aggregates and load (4 + 4), names (2), agreements (1), compliance (bots, probes, statuses, computed: 4),
    # waiting and stale (2), pairing: pinned so that a query per row cannot creep back.
    assert small["/api/v1/teams/shop/health"] == small["/api/v1/teams/shop/health?days=90"]
    assert small["/api/v1/teams/shop/health"] <= 40
