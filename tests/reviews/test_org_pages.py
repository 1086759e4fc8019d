"""The organisation overview (/teams/), the team switcher and each repository's last sync."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reviews.models import Membership, SyncRun
from tests.factories import (
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


def _merged(repository, *, days_ago: float, pickup_hours: float | None = None):
    now = timezone.now()
    ready = now - dt.timedelta(days=days_ago, hours=10)
    pull_request = PullRequestFactory(
        repository=repository, state="merged", created_at=ready, ready_at=ready,
        merged_at=ready + dt.timedelta(hours=10), additions=20, deletions=2,
    )  # fmt: skip
    if pickup_hours is not None:
        ReviewFactory(pull_request=pull_request, submitted_at=ready + dt.timedelta(hours=pickup_hours))
    return pull_request


def _member_of(*teams):
    user = User.objects.create_user(f"user{User.objects.count()}", password="pw")
    person = PersonFactory(user=user)
    for team in teams:
        MembershipFactory(team=team, person=person, role=Membership.Role.MEMBER)
    return user


def _teams_with_history(count: int, start: int = 0):
    teams = []
    for index in range(start, start + count):
        team = TeamFactory(slug=f"team-{index}", name=f"Team {index:02}")
        repository = RepositoryFactory(team=team)
        _merged(repository, days_ago=3, pickup_hours=2)
        _merged(repository, days_ago=40, pickup_hours=5)
        PullRequestFactory(repository=repository, ready_at=timezone.now() - dt.timedelta(days=3))  # waiting
        teams.append(team)
    return teams


def test_overview_costs_the_same_queries_for_2_and_10_teams(client, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    superuser = User.objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    _teams_with_history(2)
    with CaptureQueriesContext(connection) as two:
        assert client.get("/teams/").status_code == 200
    _teams_with_history(8, start=2)
    with django_assert_num_queries(len(two.captured_queries)):
        page = client.get("/teams/").content.decode()
    assert page.count("data-team=") == 10


def test_overview_shows_each_teams_figures_with_the_trend_against_the_previous_period(client):
    team, hidden = _teams_with_history(2)
    repository = team.repositories.get()
    _merged(repository, days_ago=5)  # unreviewed this period: 2 merged, 1 reviewed
    client.force_login(_member_of(team))
    page = client.get("/teams/?days=30").content.decode()
    row = page[page.index(f'data-team="{team.slug}"') :].split("</tr>")[0]
    assert hidden.name not in page
    assert "<td>2<br>" in row and "▲ up from 1, better" in row  # merged 2, before 1
    assert "50%" in row and "▼ down from 100%, worse" in row  # reviewed
    # pickup: 2 h and 10 h (merge, unreviewed): median 6 h, against 5 h before: worse
    assert "6.0 h" in row and "▲ up from 5 h, worse" in row
    assert '<td class="bad">1</td>' in row  # one waiting beyond the 24 h agreement
    assert 'aria-current="page"' in page  # the selected period


def test_team_pages_offer_a_switcher_to_the_viewers_other_teams(client):
    first, second = _teams_with_history(2)
    TeamFactory(slug="other", name="Not Mine")
    client.force_login(_member_of(first, second))
    page = client.get(f"/teams/{first.slug}/").content.decode()
    switcher = page[page.index('<nav class="switcher"') :].split("</nav>")[0]
    assert f'href="/teams/{second.slug}/"' in switcher
    assert f'href="/teams/{first.slug}/" aria-current="page"' in switcher
    assert "Not Mine" not in switcher


def test_team_page_says_when_each_repository_was_last_synced(client):
    team = TeamFactory(slug="shop", name="Shop")
    synced, never = (
        RepositoryFactory(team=team, full_path="acme/synced"),
        RepositoryFactory(team=team, full_path="acme/new"),
    )
    finished = timezone.now() - dt.timedelta(hours=3)
    SyncRun.objects.create(repository=synced, status=SyncRun.Status.COMPLETED, finished_at=finished)
    SyncRun.objects.create(repository=synced, status=SyncRun.Status.FAILED, finished_at=timezone.now())
    client.force_login(_member_of(team))
    page = client.get("/teams/shop/").content.decode()
    section = page[page.index('<section id="repositories">') :].split("</section>")[0]
    synced_row = section[section.index('data-repository="acme/synced"') :].split("</tr>")[0]
    assert "3\xa0hours ago" in synced_row
    assert "never" in section[section.index('data-repository="acme/new"') :].split("</tr>")[0]
    assert never.full_path in section


def test_team_page_draws_the_trends_with_the_agreements_as_lines(client):
    team = TeamFactory(slug="shop", name="Shop", review_within_hours=8, max_pr_size=300)
    repository = RepositoryFactory(team=team)
    _merged(repository, days_ago=3, pickup_hours=2)
    client.force_login(_member_of(team))
    page = client.get("/teams/shop/").content.decode()
    assert page.count('<line class="target"') == 2
    assert "agreement: first review within 8 h" in page
    assert "agreement: at most 300 changed lines" in page
    for title in ("Median cycle time per week", "Review coverage per week", "Merged pull requests per week"):
        assert f"<caption>{title}</caption>" in page
    assert page.count("<summary>Show as table</summary>") == page.count('<svg class="chart"')


def test_overview_takes_any_period_and_refuses_a_bad_one_visibly(client):
    """The team page's own period parser: a from–to range shows those days; one past a limit is a 400 that says
    which field is wrong, never a silent fall back to 30 days."""
    (team,) = _teams_with_history(1)
    client.force_login(_member_of(team))
    since = (timezone.localdate() - dt.timedelta(days=45)).isoformat()
    until = (timezone.localdate() - dt.timedelta(days=35)).isoformat()
    ranged = client.get("/teams/", {"since": since, "until": until})
    assert ranged.status_code == 200
    assert f"{since} → {until}" in ranged.content.decode()
    # Only the pull request merged 40 days ago is in that range.
    assert ranged.context["summaries"][0].now.merged == 1
    for bad in ({"days": "731"}, {"since": until, "until": since}, {"since": "2026-02-30"}, {"days": "x"}):
        refused = client.get("/teams/", bad)
        assert refused.status_code == 400, bad
        assert 'role="alert"' in refused.content.decode()
        assert refused.context["summaries"] == []
