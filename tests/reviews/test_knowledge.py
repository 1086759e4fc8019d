"""Knowledge per area (the bus factor): directory prefixes, CODEOWNERS entries and services; who counts (authored,
reviewed, paired with the author; once per area; never a bot), whom to pair with next, and who may read it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import ChangedFile, Identity, PullRequest
from reviews.selectors.knowledge import team_knowledge
from reviews.selectors.scope import Period, Scope
from reviews.services.tokens import api_token_create
from telemetry.models import ServiceRepository
from tests.factories import (
    CommitFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    ServiceFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _change(repository, author, *paths, reviewer=None, days_ago=3, co_author=None):
    pull = PullRequestFactory(
        repository=repository,
        author=author,
        state="merged",
        created_at=NOW - dt.timedelta(days=days_ago),
        merged_at=NOW - dt.timedelta(days=days_ago - 1),
    )
    for path in paths:
        ChangedFile.objects.create(pull_request=pull, path=path)
    if reviewer is not None:
        ReviewFactory(pull_request=pull, reviewer=reviewer, submitted_at=NOW - dt.timedelta(days=days_ago - 1))
    if co_author is not None:
        email = Identity.objects.get_or_create(
            person=co_author, kind=Identity.Kind.EMAIL, value=f"{co_author.pk}@example.com"
        )[0]
        commit = CommitFactory(repository=repository, author=author, authored_at=NOW - dt.timedelta(days=days_ago))
        commit.co_authors.add(email)
        pull.commits.add(commit)
    return pull


@pytest.fixture
def world():
    """Team pay: Ada, Bob, Carol, Dave (away), a bot; repository acme/pay. Team other: Olga."""
    pay, other = TeamFactory(slug="pay", name="Pay"), TeamFactory(slug="other", name="Other")
    repository = RepositoryFactory(team=pay, full_path="acme/pay")
    people = {name: PersonFactory(display_name=name) for name in ("Ada", "Bob", "Carol", "Dave")}
    people["bot"] = PersonFactory(display_name="renovate[bot]", is_bot=True)
    for person in people.values():
        MembershipFactory(team=pay, person=person)
    people["Dave"].away_until = NOW.date() + dt.timedelta(days=3)
    people["Dave"].save()
    olga = PersonFactory(display_name="Olga")
    MembershipFactory(team=other, person=olga)
    return {"pay": pay, "other": other, "repository": repository, "Olga": olga, **people}


def _scope(team, days=30):
    return Scope(team, Period(NOW - dt.timedelta(days=days), NOW + dt.timedelta(seconds=1)))


def _areas(team, **kwargs):
    return {(area.area.kind, area.area.name): area for area in team_knowledge(scope=_scope(team), **kwargs).areas}


def _token(team):
    _, secret = api_token_create(name="t", teams=[team])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_an_area_known_by_one_is_flagged_with_the_least_loaded_newcomer_beside_its_only_knower(world):
    repository = world["repository"]
    _change(repository, world["Ada"], "payments/ledger/a.py", "payments/ledger/b.py", reviewer=world["Ada"])
    _change(repository, world["Ada"], "payments/ledger/c.py", reviewer=world["bot"])
    # Bob is busy: two open review requests. Carol is free. Dave is away.
    for _ in range(2):
        PullRequestFactory(repository=repository, state="open").requested_reviewers.add(world["Bob"])
    area = _areas(world["pay"])[("directory", "payments/ledger/")]
    assert area.known_by_one  # Ada counts once, though she authored and reviewed; the bot never counts
    assert [(k.name, k.authored, k.reviewed, k.changes) for k in area.people] == [("Ada", 2, 1, 2)]
    assert area.changes == 2
    assert area.next_pair is not None and area.next_pair[1] == "Carol"
    assert area.suggestion == (
        "only Ada knows payments/ledger: Carol (new to it, the least loaded) should pair or review with Ada next"
    )


def test_reviewing_or_pairing_with_the_author_shares_the_area_and_suggestions_are_spread(world):
    repository = world["repository"]
    _change(repository, world["Ada"], "api/views/x.py", reviewer=world["Bob"])
    _change(repository, world["Ada"], "billing/pdf/x.py", co_author=world["Carol"])
    _change(repository, world["Ada"], "search/index/x.py")
    _change(repository, world["Ada"], "search/query/x.py")
    areas = _areas(world["pay"])
    assert not areas[("directory", "api/views/")].known_by_one
    paired = areas[("directory", "billing/pdf/")]
    assert not paired.known_by_one  # "paired with a non-author": Carol co-authored Ada's commit
    assert [(k.name, k.paired) for k in paired.people if k.name == "Carol"] == [("Carol", 1)]
    lonely = [areas[("directory", "search/index/")], areas[("directory", "search/query/")]]
    assert all(area.known_by_one for area in lonely)
    # Not every lonely area is handed to the same newcomer: each suggestion adds to that person's load.
    assert {area.next_pair[1] for area in lonely if area.next_pair} == {"Bob", "Carol"}


def test_services_from_their_path_filters_and_codeowners_entries_are_areas_too(world):
    repository = world["repository"]
    repository.codeowners = "* @acme/pay\n/payments/ @ada\n"
    repository.save()
    service = ServiceFactory(slug="ledger", name="Ledger", team=world["pay"])
    ServiceRepository.objects.create(service=service, repository=repository, path_filters=["payments/**"])
    whole = ServiceFactory(slug="site", name="Site", team=world["pay"])
    ServiceRepository.objects.create(service=whole, repository=repository, path_filters=[])
    _change(repository, world["Ada"], "payments/ledger/a.py", "payments/fx/b.py")
    _change(repository, world["Bob"], "docs/readme.md")
    areas = _areas(world["pay"])
    ledger = areas[("service", "ledger")]
    assert ledger.known_by_one and ledger.changes == 1 and ledger.area.label == "service Ledger"
    assert {k.name for k in areas[("service", "site")].people} == {"Ada", "Bob"}
    owned = areas[("codeowners", "/payments/")]
    assert [k.name for k in owned.people] == ["Ada"] and owned.changes == 1  # two files, one change
    assert [k.name for k in areas[("codeowners", "*")].people] == ["Bob"]  # the last matching entry decides
    only_directories = _areas(world["pay"], kinds=["directory"])
    assert {kind for kind, _ in only_directories} == {"directory"}


def test_work_outside_the_period_or_by_bots_does_not_count(world):
    repository = world["repository"]
    _change(repository, world["Ada"], "old/area/x.py", days_ago=60)
    _change(repository, world["bot"], "deps/lock/x.txt", reviewer=world["Bob"])
    areas = _areas(world["pay"])
    assert ("directory", "old/area/") not in areas
    assert [k.name for k in areas[("directory", "deps/lock/")].people] == ["Bob"]


def test_query_count_does_not_grow_with_history(world):
    repository = world["repository"]
    repository.codeowners = "/payments/ @ada\n"
    repository.save()
    service = ServiceFactory(slug="ledger", team=world["pay"])
    ServiceRepository.objects.create(service=service, repository=repository, path_filters=["payments/**"])
    _change(repository, world["Ada"], "payments/ledger/a.py", reviewer=world["Bob"], co_author=world["Carol"])

    def count():
        with CaptureQueriesContext(connection) as captured:
            knowledge = team_knowledge(scope=_scope(world["pay"]))
        return len(captured), len(knowledge.areas)

    before, areas_before = count()
    for index in range(15):
        _change(
            repository,
            [world["Ada"], world["Bob"]][index % 2],
            f"area{index}/sub/x.py",
            f"payments/p{index}/y.py",
            reviewer=world["Carol"],
            co_author=world["Bob"] if index % 3 == 0 else None,
        )
    after, areas_after = count()
    assert areas_after > areas_before
    assert after == before


def test_a_period_whose_changes_touched_no_file_reads_three_queries_and_has_no_area(world):
    """A change without files is in no area: the files, maps, partners, names and members are not read."""
    repository = world["repository"]
    for index in range(5):
        _change(repository, world["Ada"], reviewer=world["Bob"], co_author=world["Carol"] if index % 2 else None)
    with CaptureQueriesContext(connection) as captured:
        knowledge = team_knowledge(scope=_scope(world["pay"]))
    assert knowledge.areas == []
    assert len(captured) == 3  # the repositories, the changes opened with files, the reviews of changes with files


def test_a_change_reviewed_in_the_period_but_opened_before_still_places_its_reviewer(world):
    repository = world["repository"]
    pull = _change(repository, world["Ada"], "ledger/core/a.py", days_ago=45)
    ReviewFactory(pull_request=pull, reviewer=world["Bob"], submitted_at=NOW - dt.timedelta(days=2))
    areas = _areas(world["pay"])
    assert [(k.name, k.reviewed, k.authored) for k in areas[("directory", "ledger/core/")].people] == [("Bob", 1, 0)]


def test_api_is_paginated_filtered_and_scoped_to_the_period(world):
    repository = world["repository"]
    _change(repository, world["Ada"], "a/x/1.py", reviewer=world["Bob"])
    for name in ("b", "c", "d"):
        _change(repository, world["Ada"], f"{name}/x/1.py")
    _change(repository, world["Bob"], "e/x/1.py", days_ago=20)
    client = _token(world["pay"])
    body = client.get("/api/v1/teams/pay/knowledge?days=30&page_size=2").json()
    assert body["count"] == 5 and body["areas"] == 5 and body["known_by_one"] == 4
    assert len(body["results"]) == 2 and body["next"]
    assert all(area["known_by_one"] for area in body["results"])  # flagged areas first
    assert body["results"][0]["next"]["name"] in {"Bob", "Carol"}
    assert body["results"][0]["suggestion"].startswith("only ")
    assert "definition" in body
    lonely = client.get("/api/v1/teams/pay/knowledge?days=30&known_by_one=true&page_size=50").json()
    assert {area["area"] for area in lonely["results"]} == {"b/x/", "c/x/", "d/x/", "e/x/"}
    recent = client.get("/api/v1/teams/pay/knowledge?days=10").json()
    assert "e/x/" not in {area["area"] for area in recent["results"]}
    since = (NOW - dt.timedelta(days=25)).date().isoformat()
    until = (NOW - dt.timedelta(days=15)).date().isoformat()
    window = client.get(f"/api/v1/teams/pay/knowledge?since={since}&until={until}").json()
    assert [area["area"] for area in window["results"]] == ["e/x/"]
    deeper = client.get("/api/v1/teams/pay/knowledge?days=30&depth=1&kind=directory").json()
    assert {area["area"] for area in deeper["results"]} == {"a/", "b/", "c/", "d/", "e/"}


@pytest.mark.parametrize(
    ("query", "field"),
    [("depth=0", "depth"), ("depth=x", "depth"), ("kind=team", "kind"), ("days=0", "days"), ("page=9", "page")],
)
def test_api_refuses_bad_input_naming_the_field(world, query, field):
    response = _token(world["pay"]).get(f"/api/v1/teams/pay/knowledge?{query}")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_only_the_teams_own_token_or_members_read_it(world):
    _change(world["repository"], world["Ada"], "a/x/1.py")
    assert _token(world["other"]).get("/api/v1/teams/pay/knowledge").status_code == 404
    assert _token(world["pay"]).get("/api/v1/teams/pay/knowledge").status_code == 200
    user = User.objects.create_user("ada", password="pw")
    world["Ada"].user = user
    world["Ada"].save()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/v1/teams/pay/knowledge").status_code == 200
    assert client.get("/api/v1/teams/other/knowledge").status_code == 404


def test_team_page_lists_the_top_lonely_areas_with_a_link_to_all(world, client):
    repository = world["repository"]
    for index in range(12):
        _change(repository, world["Ada"], f"area{index:02d}/x/1.py")
    user = User.objects.create_user("bob", password="pw")
    world["Bob"].user = user
    world["Bob"].save()
    client.force_login(user)
    page = client.get("/teams/pay/").content.decode()
    assert "Knowledge per area" in page
    assert page.count('data-area="directory:acme/pay:') == 10
    assert "Show all 12" in page
    link = page.split('href="/api/v1/teams/pay/knowledge?', 1)[1].split('"', 1)[0]
    assert "known_by_one=true" in link
    assert "authored, reviewed or paired on" in page
    assert PullRequest.objects.count() == 12
