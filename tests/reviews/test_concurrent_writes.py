"""Two writers of the same row at once, on PostgreSQL, with real connections: the same webhook delivery received
twice at once is stored once and processed once, and the same review upserted twice at once is one row holding the
newest state, whatever order the two commit in; so is the same new pull request, with its newest requested reviewers.

Each race is made to happen, not hoped for: the first writer's transaction stays open until PostgreSQL shows the
second one waiting for its lock, and only then commits. (SQLite serialises writers; these run on PostgreSQL only.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.test import Client

from reviews.integrations.records import (
    CommentRecord,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    UserRecord,
)
from reviews.models import Identity, Person, PullRequest, Repository, Review, WebhookDelivery
from reviews.services.people import person_from_account
from reviews.services.pull_requests import comment_upsert, pull_request_stub, pull_request_upsert, review_upsert
from reviews.services.webhooks import webhook_delivery_claim
from tests.factories import ConnectionFactory, PullRequestFactory, RepositoryFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
SECRET = "concurrency-secret"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="SQLite serialises writers; the races these tests force need PostgreSQL",
    ),
]


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


def _until(done: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


def race(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run `first` in a transaction on a connection of its own and hold it open; run `second` on another; commit
    `first` once `second` waits for a lock it holds. Returns both results; raises what either raised."""
    written, commit = threading.Event(), threading.Event()

    def hold() -> Any:
        try:
            with transaction.atomic():
                result = first()
                written.set()
                if not commit.wait(timeout=60):
                    raise AssertionError("the test never let the first writer commit")
            return result
        finally:
            connections.close_all()

    def then() -> Any:
        try:
            return second()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        held: Future = pool.submit(hold)
        _until(lambda: written.is_set() or held.done(), "the first writer's write")
        if held.done():
            held.result()  # it raised
        other: Future = pool.submit(then)
        _until(lambda: _someone_waits_for_a_lock() or other.done(), "the second writer to wait or finish")
        waited = not other.done()
        commit.set()
        results = held.result(), other.result()
    assert waited, "the second writer never waited for the first: no race happened"
    return results


# --- the same delivery received twice at once ------------------------------------------------------------------------


@pytest.fixture
def post_delivery(settings) -> Callable[[str], Any]:
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }
    # Configured beforehand, as in production: the race is for the delivery's row.
    ConnectionFactory(provider="github", base_url=settings.GITHUB_API_URL.rstrip("/"))
    body = (FIXTURES / "pull_request.opened.json").read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()

    def post(delivery_id: str) -> Any:
        return Client().post(
            "/webhooks/github/",
            data=body,
            content_type="application/json",
            HTTP_X_GITHUB_EVENT="pull_request",
            HTTP_X_GITHUB_DELIVERY=delivery_id,
            HTTP_X_HUB_SIGNATURE_256=signature,
        )

    return post


def test_the_same_delivery_received_twice_at_once_is_stored_once_and_processed_once(post_delivery):
    first, second = race(lambda: post_delivery("guid-at-once"), lambda: post_delivery("guid-at-once"))
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert (second.status_code, second.json()["status"]) == (200, "duplicate")
    delivery = WebhookDelivery.objects.get()
    assert second.json()["delivery"] == delivery.pk
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PROCESSED, 1)
    assert PullRequest.objects.count() == 1


def test_two_workers_claiming_the_same_delivery_at_once_process_it_once():
    delivery = WebhookDelivery.objects.create(
        provider="github", delivery_id="d-1", event="ping", body="{}", connection=ConnectionFactory()
    )
    first, second = race(
        lambda: webhook_delivery_claim(delivery_id=delivery.pk, token="message-a"),
        lambda: webhook_delivery_claim(delivery_id=delivery.pk, token="message-b"),
    )
    assert first is not None
    assert second is None  # it waited for the first claim, then found the delivery taken
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claim_token) == ("processing", 1, "message-a")


# --- the same review upserted twice at once ---------------------------------------------------------------------------

T0 = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


def _review(state: str, submitted_at: dt.datetime) -> ReviewRecord:
    reviewer = UserRecord(provider="github", login="Grace", external_id="4242", name="Grace Hopper")
    return ReviewRecord(external_id="r-1", reviewer=reviewer, state=state, submitted_at=submitted_at)


COMMENTED, APPROVED = _review("commented", T0), _review("approved", T0 + dt.timedelta(minutes=5))


@pytest.mark.parametrize("known", ["nothing", "the reviewer", "an earlier version of the review"])
@pytest.mark.parametrize(
    ("first", "second"), [(COMMENTED, APPROVED), (APPROVED, COMMENTED)], ids=["older first", "newer first"]
)
def test_the_same_review_upserted_twice_at_once_is_one_row_with_the_newest_state(known, first, second):
    # What the two writers race for: the reviewer's identity (nothing known), the review's row (the reviewer known,
    # from another pull request), or the lock on the stored review (an earlier version of it stored).
    pull_request = PullRequestFactory(repository=RepositoryFactory())
    if known != "nothing":
        person_from_account(connection=pull_request.repository.connection, account=first.reviewer)
    if known == "an earlier version of the review":
        review_upsert(pull_request=pull_request, record=_review("commented", T0 - dt.timedelta(hours=1)))

    race(
        lambda: review_upsert(pull_request=pull_request, record=first),
        lambda: review_upsert(pull_request=pull_request, record=second),
    )

    review = Review.objects.get()
    assert (review.state, review.submitted_at) == ("approved", APPROVED.submitted_at)
    assert Identity.objects.filter(kind="github", value="grace").count() == 1
    assert Person.objects.filter(identities__value="grace").count() == 1
    assert review.reviewer.display_name == "Grace Hopper"


# --- the same new pull request upserted twice at once -----------------------------------------------------------------


def _account(login: str) -> UserRecord:
    return UserRecord(provider="github", login=login, external_id=f"id-{login}", name=login)


def _pull_request(
    repository: Repository, title: str, updated_at: dt.datetime, reviewers: tuple[str, ...]
) -> PullRequestRecord:
    return PullRequestRecord(
        repository=RepositoryRecord(
            provider="github", external_id=repository.external_id, full_path=repository.full_path
        ),
        number=77,
        external_id="pr-77",
        title=title,
        author=_account("ada"),
        state="open",
        created_at=T0,
        updated_at=updated_at,
        head_sha="a" * 40,
        requested_reviewers=tuple(_account(login) for login in reviewers),
    )


@pytest.mark.parametrize("known", ["nobody", "everyone"])  # new people: a stub first; known: the row inserted whole
@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_the_same_new_pull_request_upserted_twice_at_once_is_one_row_with_the_newest_state(order, known):
    # The second writer's INSERT … ON CONFLICT DO NOTHING waits on the first's uncommitted row, then locks it;
    # the requested reviewers are diffed under that lock.
    repository = RepositoryFactory()
    if known == "everyone":
        for login in ("ada", "bob", "carol", "dan"):
            person_from_account(connection=repository.connection, account=_account(login))
    older = _pull_request(repository, "older", T0, ("bob", "carol"))
    newer = _pull_request(repository, "newer", T0 + dt.timedelta(minutes=1), ("carol", "dan"))
    first, second = (older, newer) if order == "older first" else (newer, older)
    race(
        lambda: pull_request_upsert(repository=repository, record=first),
        lambda: pull_request_upsert(repository=repository, record=second),
    )
    pull_request = PullRequest.objects.get()
    assert pull_request.title == "newer"
    assert sorted(p.display_name for p in pull_request.requested_reviewers.all()) == ["carol", "dan"]
    assert (pull_request.author.display_name, pull_request.head_sha, pull_request.created_at) == ("ada", "a" * 40, T0)


# --- a new pull request's first event beside a comment on it (its stub) -----------------------------------------------


def test_a_new_pull_request_beside_a_comment_on_its_stub_by_a_new_person_does_not_deadlock():
    # A comment on a pull request not seen yet (GitHub issue_comment: its number alone) stores the stub, then its
    # author; the pull request's first event, by the same new person, must not lock that person before the pull
    # request's row (the order the comment takes the two locks in): else each waits for the other, PostgreSQL
    # aborts one, and its delivery waits for a retry.
    repository = RepositoryFactory()
    stored, go = threading.Event(), threading.Event()

    def comment() -> None:
        try:
            with transaction.atomic():
                pull_request = pull_request_stub(repository=repository, number=77)
                stored.set()
                if not go.wait(timeout=60):
                    raise AssertionError("the test never let the comment go on")
                record = CommentRecord(external_id="c-1", author=_account("ada"), body="first!", created_at=T0)
                comment_upsert(pull_request=pull_request, record=record)
        finally:
            connections.close_all()

    def opened() -> tuple[PullRequest, bool]:
        try:
            return pull_request_upsert(repository=repository, record=_pull_request(repository, "opened", T0, ()))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        commented: Future = pool.submit(comment)
        _until(lambda: stored.is_set() or commented.done(), "the comment's stub")
        upserted: Future = pool.submit(opened)
        _until(lambda: _someone_waits_for_a_lock() or upserted.done(), "the pull request's event to wait or finish")
        go.set()
        commented.result()
        upserted.result()

    pull_request = PullRequest.objects.get()
    assert (pull_request.title, pull_request.author.display_name) == ("opened", "ada")
    assert pull_request.comments.get().author == pull_request.author
    assert Identity.objects.filter(kind="github", value="ada").count() == 1


def test_a_new_pull_request_beside_its_stub_being_stored_is_the_stub_filled_in():
    # A comment's stub not committed yet: the pull request's whole-row insert waits for it, finds it stored, and
    # fills it in (the stub's way), its people known or not.
    repository = RepositoryFactory()
    person_from_account(connection=repository.connection, account=_account("ada"))
    record = _pull_request(repository, "opened", T0, ("bob",))
    _, (pull_request, changed) = race(
        lambda: pull_request_stub(repository=repository, number=77),
        lambda: pull_request_upsert(repository=repository, record=record),
    )
    assert changed
    stored = PullRequest.objects.get()
    assert stored.pk == pull_request.pk
    assert (stored.title, stored.author.display_name, stored.head_sha, stored.created_at) == (
        "opened",
        "ada",
        "a" * 40,
        T0,
    )
    assert [p.display_name for p in stored.requested_reviewers.all()] == ["bob"]
