"""Words a person reads: counts with the right plural ("1 file", "2 incidents", "1 of 1 approval"), a verdict's
label once (never "Approved: Approved:"), and times in the viewer's words and time zone."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from reviews.models import ChangedFile, Membership, PullRequest
from reviews.policy import DEFAULT_POLICY, FileChange, PersonRef, ReviewRef, Snapshot, evaluate
from reviews.templatetags.tandem import moment_exact, moment_words, when
from reviews.words import counted, label_and_rest
from tests.factories import (
    CommentFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("count", "noun", "words"),
    [
        (1, "file", "1 file"),
        (2, "file", "2 files"),
        (0, "incident", "0 incidents"),
        (2, "incident", "2 incidents"),
        (1, "approval", "1 approval"),
        (1, "person", "1 person"),
        (3, "person", "3 people"),
        (1, "more rule", "1 more rule"),
    ],
)
def test_a_count_takes_the_plural_that_goes_with_it(count, noun, words):
    assert counted(count, noun) == words


def test_a_verdict_label_is_said_once():
    assert label_and_rest("Approved", "Approved: 1 of 1 approval") == ("Approved", ": 1 of 1 approval")
    assert label_and_rest("Pending", "Needs 1 more approval") == ("Pending", ": Needs 1 more approval")
    assert label_and_rest("Overridden", "Overridden by Lena: hotfix") == ("Overridden", " by Lena: hotfix")


def test_the_engine_counts_in_words():
    author, reviewer = PersonRef("1", frozenset({"ada"})), PersonRef("2", frozenset({"bob"}))
    snapshot = Snapshot(
        head_sha="abc",
        now=NOW,
        author=author,
        files=(FileChange("a.py"),),
        reviews=(ReviewRef("r1", reviewer, "approved", "abc", NOW),),
    )
    assert evaluate(snapshot, DEFAULT_POLICY).summary == "Approved: 1 of 1 approval"


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (NOW - dt.timedelta(seconds=20), "just now"),
        (NOW - dt.timedelta(minutes=1), "1 minute ago"),
        (NOW - dt.timedelta(hours=3, minutes=20), "3 hours ago"),
        (NOW - dt.timedelta(days=2, hours=5), "2 days ago"),
        (NOW + dt.timedelta(days=1, hours=2), "in 1 day"),
        (NOW - dt.timedelta(days=20), "on Tue 18 Feb"),
        (NOW - dt.timedelta(days=400), "on 4 Feb 2024"),
    ],
)
def test_a_moment_is_said_relative_to_now(moment, words):
    assert moment_words(moment, NOW).replace("\xa0", " ") == words  # a number keeps its unit on one line


def test_the_exact_moment_is_in_the_viewers_zone():
    with timezone.override(zoneinfo.ZoneInfo("Europe/Berlin")):
        assert moment_exact(NOW) == "Mon 10 Mar 2025, 13:00 CET"
        assert 'title="Mon 10 Mar 2025, 13:00 CET"' in when(NOW)
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert moment_exact(NOW) == "Mon 10 Mar 2025, 08:00 EDT"
    assert when(None) == "—"


# --- rendered pages ---------------------------------------------------------------------------------------------------


@pytest.fixture
def reader(db):
    team = TeamFactory(slug="shop", name="Shop", review_within_hours=1)
    user = User.objects.create_user("max", password="pw")
    MembershipFactory(team=team, person=PersonFactory(display_name="Max", user=user), role=Membership.Role.MEMBER)
    client = Client()
    client.force_login(user)
    return client, RepositoryFactory(team=team)


def _approved_pull_request(repository) -> PullRequest:
    from reviews.services.policies import pull_request_evaluate

    pull_request = PullRequestFactory(repository=repository, title="Retry payments", additions=1, deletions=0)
    PullRequest.objects.filter(pk=pull_request.pk).update(changed_files=1)
    ChangedFile.objects.create(pull_request=pull_request, path="payments/retry.py", additions=1, deletions=0)
    ReviewFactory(
        pull_request=pull_request,
        reviewer=PersonFactory(display_name="Rita Reviewer"),
        commit_sha=pull_request.head_sha,
        submitted_at=timezone.now() - dt.timedelta(hours=3, minutes=5),
    )
    CommentFactory(pull_request=pull_request)
    pull_request_evaluate(pull_request_id=pull_request.pk)
    return pull_request


def _text(html: str) -> str:
    """What a person reads: the page without its tags, spaces folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_the_pull_request_page_reads_as_words(reader):
    client, repository = reader
    pull_request = _approved_pull_request(repository)
    text = _text(client.get(f"/pulls/{pull_request.pk}/").content.decode())
    assert "1 changed line in 1 file" in text
    assert "Approved: 1 of 1 approval" in text
    assert "Approved: Approved" not in text
    assert "1 comment." in text
    assert "3 hours ago" in text  # Rita's review
    assert not re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b", text)  # no raw timestamps
    assert not re.search(r"pairing session \d+|\(co_author\)|\(api\)", text)  # no internal labels


def test_pages_use_the_viewers_time_zone(reader):
    client, repository = reader
    pull_request = _approved_pull_request(repository)
    client.cookies["tz"] = "Asia/Tokyo"
    html = client.get(f"/pulls/{pull_request.pk}/").content.decode()
    assert re.search(r'<time datetime="[^"]+" title="[^"]+ JST">3\shours ago</time>', html)
    client.cookies["tz"] = "Not/AZone"
    html = client.get(f"/pulls/{pull_request.pk}/").content.decode()
    assert re.search(r'<time datetime="[^"]+" title="[^"]+ UTC">3\shours ago</time>', html)


def test_the_api_keeps_the_servers_zone_whatever_the_cookie(reader, django_user_model):
    client, repository = reader
    pull_request = _approved_pull_request(repository)
    client.cookies["tz"] = "Asia/Tokyo"
    body = client.get(f"/api/v1/pulls/{pull_request.pk}").json()
    assert body["created_at"].endswith("Z")


def test_the_team_page_counts_in_words(reader):
    client, repository = reader
    text = _text(client.get("/teams/shop/").content.decode())
    assert "within 1 hour" in text
    assert "1 hours" not in text
