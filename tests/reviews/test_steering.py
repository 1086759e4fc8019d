"""Steering a team page: any period, filters, the pull requests behind each figure, trends (issue 17)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import Membership, PullRequestFigures, Team
from reviews.selectors.scope import MAX_PERIOD_DAYS, ScopeInvalid, parse_scope
from reviews.selectors.trends import trend
from reviews.services.tokens import api_token_create
from tests.factories import (
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(client):
    team, other = TeamFactory(slug="shop", name="Shop"), TeamFactory(slug="search", name="Search")
    users = {}
    for name, which in (("lead", team), ("other_lead", other)):
        user = User.objects.create_user(name, password="pw")
        MembershipFactory(team=which, person=PersonFactory(display_name=name, user=user), role=Membership.Role.LEAD)
        users[name] = user
    return {
        "team": team,
        "other": other,
        "repository": RepositoryFactory(team=team, full_path="acme/shop"),
        "second": RepositoryFactory(team=team, full_path="acme/cart"),
        "foreign": RepositoryFactory(team=other, full_path="acme/search"),
        **users,
    }


def merged(repository, *, ready, pickup_hours, merged_after_hours=10, lines=40, author=None, reviewer=None, labels=()):
    """A merged pull request first reviewed (approved) `pickup_hours` after ready."""
    pull_request = PullRequestFactory(
        repository=repository, author=author or PersonFactory(), state="merged", created_at=ready, ready_at=ready,
        merged_at=ready + dt.timedelta(hours=merged_after_hours), additions=lines, deletions=0, labels=list(labels),
    )  # fmt: skip
    ReviewFactory(
        pull_request=pull_request,
        reviewer=reviewer or PersonFactory(display_name="Rita"),
        submitted_at=ready + dt.timedelta(hours=pickup_hours),
    )
    return pull_request


def params(**values) -> QueryDict:
    query = QueryDict(mutable=True)
    for key, value in values.items():
        query.setlist(key, value if isinstance(value, list) else [value])
    return query


def scope_of(world, **values):
    return parse_scope(params(**values), team=world["team"], teams=Team.objects.filter(slug="shop"))


# --- the one parser ------------------------------------------------------------------------------------------------


def test_a_period_of_one_day_and_of_two_years_is_accepted(world):
    today = timezone.localdate()
    one_day = scope_of(world, since=str(today), until=str(today))
    assert one_day.until - one_day.since == dt.timedelta(days=1)
    longest = scope_of(world, since=str(today - dt.timedelta(days=MAX_PERIOD_DAYS - 1)), until=str(today))
    assert longest.until - longest.since == dt.timedelta(days=MAX_PERIOD_DAYS)
    assert scope_of(world, days="730").period.days == 730
    assert scope_of(world).until - scope_of(world).since == dt.timedelta(days=30)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"days": "731"}, "days"),
        ({"days": "365x"}, "days"),
        ({"days": "0"}, "days"),
        ({"since": "2025-02-30"}, "since"),
        ({"until": "soon"}, "until"),
        ({"since": "2025-03-10", "until": "2025-03-09"}, "since"),  # until before since
        ({"since": "2023-03-09", "until": "2025-03-09"}, "since"),  # 731 days, both included
        ({"until": str(timezone.localdate() + dt.timedelta(days=1))}, "until"),  # the future
        ({"since": str(timezone.localdate() + dt.timedelta(days=1))}, "since"),
        ({"days": "7", "since": "2025-03-01"}, "days"),
        ({"size": "huge"}, "size"),
        ({"author_team": "search"}, "author_team"),  # a team the caller cannot see
        ({"author": "999999"}, "author"),
        ({"author": "x"}, "author"),
    ],
)
def test_one_past_every_limit_is_refused_naming_the_field(world, values, field):
    with pytest.raises(ScopeInvalid) as refused:
        scope_of(world, **values)
    assert refused.value.field == field


def test_a_repository_of_another_team_is_refused_not_ignored(world):
    with pytest.raises(ScopeInvalid) as refused:
        scope_of(world, repository=[str(world["repository"].pk), str(world["foreign"].pk)])
    assert refused.value.field == "repository"
    assert scope_of(world, repository=str(world["second"].pk)).repositories == (world["second"].pk,)


def test_filters_combine(world):
    ready = timezone.now() - dt.timedelta(days=3)
    ann = PersonFactory(display_name="Ann")
    wanted = merged(world["repository"], ready=ready, pickup_hours=1, author=ann, labels=["bug"], lines=30)
    merged(world["repository"], ready=ready, pickup_hours=1, author=ann, labels=["chore"], lines=30)
    merged(world["second"], ready=ready, pickup_hours=1, author=ann, labels=["bug"], lines=30)
    merged(world["repository"], ready=ready, pickup_hours=1, labels=["bug"], lines=30)
    merged(world["repository"], ready=ready, pickup_hours=1, author=ann, labels=["bug"], lines=300)
    scope = scope_of(world, repository=str(world["repository"].pk), author=str(ann.pk), label="bug", size="s")
    assert list(scope.pull_requests()) == [wanted]


def test_trend_direction_and_threshold():
    assert str(trend("pickup_time", 13.8, 10)) == "▲ worse 38%"
    assert str(trend("coverage", 0.9, 0.6)) == "▲ better 50%"
    assert trend("pickup_time", 10.5, 10) is None  # under the threshold
    assert trend("merged", 3, 0) is None


# --- pages ---------------------------------------------------------------------------------------------------------


def _login(client, world, who="lead"):
    client.force_login(world[who])
    return client


def test_an_out_of_range_period_is_a_visible_message_not_thirty_days(client, world):
    page = _login(client, world).get("/teams/shop/?days=365")
    assert page.status_code == 200  # 365 days is within two years
    refused = client.get("/teams/shop/?days=800")
    assert refused.status_code == 400
    assert 'role="alert"' in refused.content.decode() and "days must be between 1 and 730" in refused.content.decode()
    later = client.get("/teams/shop/?since=2025-03-10&until=2025-03-01")
    assert later.status_code == 400 and "until is before since" in later.content.decode()
    assert client.get(f"/teams/shop/?repository={world['foreign'].pk}").status_code == 400
    assert client.get("/teams/shop/pulls/?metric=nonsense").status_code == 400


def test_a_date_range_and_a_filter_narrow_the_figures_and_their_links(client, world):
    ready = timezone.now() - dt.timedelta(days=40)
    merged(world["repository"], ready=ready, pickup_hours=1)
    merged(world["repository"], ready=timezone.now() - dt.timedelta(days=3), pickup_hours=1)
    merged(world["second"], ready=timezone.now() - dt.timedelta(days=3), pickup_hours=1)
    since = (timezone.localdate() - dt.timedelta(days=60)).isoformat()
    page = _login(client, world).get(f"/teams/shop/?since={since}&repository={world['repository'].pk}")
    body = page.content.decode()
    assert '<div class="value">2</div><div class="label">merged</div>' in body
    assert f"/teams/shop/pulls/?since={since}" in body and f"repository={world['repository'].pk}" in body
    assert "metric=pickup_time" in body


def test_the_drill_down_rows_add_up_to_the_figure(client, world):
    ready = timezone.now() - dt.timedelta(days=5)
    for hours in (1, 2, 5, 9):
        merged(world["repository"], ready=ready, pickup_hours=hours)
    PullRequestFactory(  # unreviewed: pickup is its merge, 6 h
        repository=world["repository"], state="merged", created_at=ready, ready_at=ready,
        merged_at=ready + dt.timedelta(hours=6), additions=5, deletions=0,
    )  # fmt: skip
    _login(client, world)
    api = client.get("/api/v1/teams/shop/health?days=30").json()["current"]
    rows = _csv(client.get("/teams/shop/pulls.csv?days=30&metric=pickup_time"))
    assert len(rows) == api["pickup_time"]["count"] == 5
    assert statistics.median(float(row["Pickup time (h)"]) for row in rows) == api["pickup_time"]["median_hours"] == 5
    assert len(_csv(client.get("/teams/shop/pulls/?days=30&metric=merged&format=csv"))) == api["merged"]
    assert len(_csv(client.get("/teams/shop/pulls.csv?days=30&metric=neither"))) == api["coverage"]["neither"] == 1
    page = client.get("/teams/shop/pulls/?days=30&metric=pickup_time&sort=-pickup_time").content.decode()
    cells = [c.split("<")[0] for c in page.split('data-column="pickup_time">')[1:]]
    assert cells == ["9.0", "6.0", "5.0", "2.0", "1.0"]
    assert client.get("/teams/shop/pulls/?metric=pickup_time&sort=nothing").status_code == 400


def test_rubber_stamps_list_which_pull_request_which_reviewer_how_fast(client, world):
    ready = timezone.now() - dt.timedelta(days=2)
    stamped = merged(
        world["repository"], ready=ready, pickup_hours=2 / 60, lines=200, reviewer=PersonFactory(display_name="Quick")
    )
    merged(world["repository"], ready=ready, pickup_hours=3, lines=200)
    _login(client, world)
    figure = client.get("/api/v1/teams/shop/health").json()["current"]["rubber_stamps"]
    [row] = _csv(client.get("/teams/shop/pulls.csv?metric=rubber_stamps"))
    assert figure == 1
    assert (row["Pull request"], row["Reviewer"], row["Changed lines"]) == (str(stamped), "Quick", "200")
    assert float(row["Minutes after the last push"]) == 2.0


def test_the_csv_is_streamed_whole_with_a_header(client, world):
    ready = timezone.now() - dt.timedelta(days=4)
    for _ in range(55):
        merged(world["repository"], ready=ready, pickup_hours=1)
    _login(client, world)
    response = client.get("/teams/shop/pulls.csv?metric=merged")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert len(rows) == 55 and "Policy status at merge" in rows[0]
    page = client.get("/teams/shop/pulls/?metric=merged").content.decode()
    assert page.count('data-column="pull_request"') == 50 and "page 1 of 2" in page


def test_regressions_are_marked_with_a_word_and_an_arrow(client, world):
    now = timezone.now()
    for hours in (1, 1, 1, 1, 1):
        merged(world["repository"], ready=now - dt.timedelta(days=40), pickup_hours=hours)
    for hours in (3, 3, 3, 3, 3):
        merged(world["repository"], ready=now - dt.timedelta(days=5), pickup_hours=hours)
    body = _login(client, world).get("/teams/shop/?days=30").content.decode()
    assert '<span class="trend trend-worse">▲ worse 200%</span>' in body


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


# --- access --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/teams/shop/pulls/?metric=merged", "/teams/shop/pulls.csv", "/teams/shop/?days=7"])
def test_new_pages_are_the_teams_only(client, world, url):
    assert client.get(url).status_code == 302 and "/login/" in client.get(url)["Location"]
    assert _login(client, world, "other_lead").get(url).status_code == 404
    assert _login(client, world, "lead").get(url).status_code == 200


def test_the_api_takes_the_same_period_and_filters_everywhere(world):
    _, secret = api_token_create(name="t", teams=[world["team"]])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    for url in ("/api/v1/teams/shop/health", "/api/v1/teams/shop/pairing", "/api/v1/teams/shop/compliance"):
        assert api.get(url, {"since": "2025-03-01", "until": "2025-03-14"}).status_code == 200, url
        bad = api.get(url, {"days": "800"})
        assert bad.status_code == 400 and "days" in bad.json()["fields"], url
        backwards = api.get(url, {"since": "2025-03-14", "until": "2025-03-01"})
        assert backwards.status_code == 400 and "since" in backwards.json()["fields"], url
    body = api.get("/api/v1/teams/shop/health", {"since": "2025-03-01", "until": "2025-03-14"}).json()
    assert (body["since"], body["until"]) == ("2025-03-01T00:00:00Z", "2025-03-15T00:00:00Z")
    foreign = api.get("/api/v1/teams/shop/health", {"repository": world["foreign"].pk})
    assert foreign.status_code == 400 and "repository" in foreign.json()["fields"]
    assert api.get("/api/v1/teams/shop/health", {"repository": world["second"].pk}).status_code == 200
    assert api.get("/api/v1/teams/shop/dora", {"days": 14}).status_code == 200
    assert api.get("/api/v1/teams/shop/dora", {"label": "bug"}).status_code == 400
    _, other_secret = api_token_create(name="o", teams=[world["other"]])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_secret}")
    assert other.get("/api/v1/teams/shop/health", {"days": 7}).status_code == 404


# --- query budgets -------------------------------------------------------------------------------------------------


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        assert response.status_code == 200
    return len(captured.captured_queries)


URLS = [
    "/teams/shop/?days=30",
    f"/teams/shop/?since={timezone.localdate() - dt.timedelta(days=20)}&label=bug&size=s",
    "/teams/shop/pulls/?metric=merged",
    "/teams/shop/pulls/?metric=rubber_stamps",
    "/teams/shop/pulls/?metric=violation",
    "/teams/shop/pulls/?metric=waiting",
    "/teams/shop/pulls.csv?metric=pickup_time",
]


def _batches(rows: int) -> int:
    fields = PullRequestFigures._meta.concrete_fields
    return -(-rows // connection.ops.bulk_batch_size(fields, [None] * rows))


def test_pages_take_the_same_queries_for_5_and_50_pull_requests(client, world, django_assert_max_num_queries):
    _login(client, world)
    reviewer = PersonFactory()
    ready = timezone.now() - dt.timedelta(days=4)
    for _ in range(5):
        merged(world["repository"], ready=ready, pickup_hours=1, reviewer=reviewer, labels=["bug"])
    small = {url: _count(client, url) for url in URLS}
    for _ in range(45):
        merged(world["second"], ready=ready, pickup_hours=1, reviewer=reviewer, labels=["bug"])
    # The first page stores the 45 new rows' figures: one INSERT on PostgreSQL, one per batch of 999 parameters on
    # SQLite (`bulk_batch_size`; 43 rows a batch since the rows carry their repository), as test_team_pages says.
    small[URLS[0]] += _batches(45) - _batches(5)
    for url, queries in small.items():
        with django_assert_max_num_queries(queries):
            response = client.get(url)
            if getattr(response, "streaming", False):
                b"".join(response.streaming_content)
