"""Issue 17's page budgets: every page in `bench/pages.py` (team page, pull request page, drill-down list, /teams/,
/me/) renders in a pinned number of queries, the same for a short and a ten-times-longer history.

The pins are the counts today (a page's budget): a change that adds a query to a page says so here."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.models import Membership, PullRequest
from telemetry.models import DeploymentChange
from tests.factories import (
    CommentFactory,
    DeploymentFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    ServiceFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

# Queries per page, whatever the history (a page's budget): exactly, so that a page that reads less lowers its pin.
BUDGETS = {
    # 58 when first pinned; 61 with knowledge per area (directories, CODEOWNERS entries, services) and the stored
    # compliance and owed probe merged in; 59 since compliance counts the stored figures review health just read;
    # 58 since the working-agreement counts come from the pass that reads the percentiles (per-hour rollups); 49
    # since knowledge per area stops after three queries when no change of the period touched a file (this history
    # has none), 48 with 90 days: an empty previous period reads no percentiles (they come from the histograms); 47
    # and 46 since the previous period reuses the period's bots, names and who waits on whom now (`ReadOnce`).
    "/teams/shop/": 47,
    "/teams/shop/?days=90": 46,
    # 34 while the list computed every flow's review facts; the stored per-pull-request figures since.
    "/teams/shop/pulls/?metric=merged": 16,
    "/teams/shop/pulls/?metric=pickup_time": 16,
    # The one list that still computes the flows' facts (who rubber-stamped, when): the stored rows lack them.
    "/teams/shop/pulls/?metric=rubber_stamps": 28,
    "/teams/": 10,  # 12 before the stored figures were read without their JSON lists and empty reads were skipped
    "/me/": 8,  # the viewer's teams, read once: their list holds only what the pull request page opens
    "pull request": 30,  # 32 before
}
# SQLite (`make test`'s default) reads a period's rows for its percentiles, the previous period's too even when the
# histograms alone answer it on PostgreSQL (no bucket indexes there: `order_statistics`).
SQLITE_MORE = {"/teams/shop/?days=90": 1}


def _budgets() -> dict[str, int]:
    more = SQLITE_MORE if connection.vendor == "sqlite" else {}
    return {name: budget + more.get(name, 0) for name, budget in BUDGETS.items()}


def _world():
    team = TeamFactory(slug="shop", name="Shop")
    user = User.objects.create_user("lead", password="pw")
    lead = PersonFactory(display_name="Lead", user=user)
    MembershipFactory(team=team, person=lead, role=Membership.Role.LEAD)
    reviewer = PersonFactory(display_name="Reviewer")
    MembershipFactory(team=team, person=reviewer, role=Membership.Role.MEMBER)
    repository = RepositoryFactory(team=team)
    service = ServiceFactory(team=team)
    service.repositories.add(repository)
    return {"user": user, "lead": lead, "reviewer": reviewer, "repository": repository, "service": service}


def _history(world, count: int) -> PullRequest:
    """`count` merged pull requests over the last 80 days, reviewed, commented, each shipped by a deployment, and
    one open pull request per ten waiting on the lead."""
    now = timezone.now()
    last = None
    for index in range(count):
        ready = now - dt.timedelta(days=1 + (index * 80) // count, hours=6)
        last = PullRequestFactory(
            repository=world["repository"], author=world["lead"], state="merged", created_at=ready, ready_at=ready,
            merged_at=ready + dt.timedelta(hours=5), additions=30 + index % 200, deletions=3,
        )  # fmt: skip
        ReviewFactory(pull_request=last, reviewer=world["reviewer"], submitted_at=ready + dt.timedelta(hours=2))
        CommentFactory(pull_request=last, author=world["reviewer"], created_at=ready + dt.timedelta(hours=1))
        deployment = DeploymentFactory(service=world["service"], finished_at=ready + dt.timedelta(hours=6))
        DeploymentChange.objects.create(deployment=deployment, pull_request=last)
        if index % 10 == 0:
            waiting = PullRequestFactory(repository=world["repository"], author=world["reviewer"], ready_at=ready)
            waiting.requested_reviewers.add(world["lead"])
    assert last is not None
    return last


def _counts(client, pull_request: PullRequest) -> dict[str, int]:
    counts = {}
    for name in BUDGETS:
        url = f"/pulls/{pull_request.pk}/" if name == "pull request" else name
        client.get(url)  # the first read may compute and store figures: the budget is for every read after it
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200, url
        counts[name] = len(captured.captured_queries)
    return counts


@pytest.mark.slow(30)
def test_every_page_keeps_its_query_budget_at_10_and_100_pull_requests(client):
    world = _world()
    client.force_login(world["user"])
    small = _counts(client, _history(world, 10))
    assert small == _budgets()  # over: a page reads more than it did; under: lower its pin
    large = _counts(client, _history(world, 90))
    assert large == small
