"""What an upsert writes (`reviews.services.pull_requests`): a pull request's changed fields in one prepared statement
that writes what `save(update_fields=…)` wrote; a review stored as it is already is not written again; changed files
become exactly the listed ones, and a list as stored costs one read."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from reviews.integrations.records import (
    ChangedFileRecord,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    UserRecord,
)
from reviews.models import ChangedFile, PullRequest, Review
from reviews.prepared import PreparedUpdates
from reviews.services import pull_requests
from reviews.services.people import person_from_account
from reviews.services.pull_requests import changed_files_replace, pull_request_upsert, review_upsert
from tests.factories import PullRequestFactory, RepositoryFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _account(login: str) -> UserRecord:
    return UserRecord(provider="github", login=login, external_id=f"id-{login}", name=login)


def _record(repository, **changes) -> PullRequestRecord:  # type: ignore[no-untyped-def]
    record = PullRequestRecord(
        repository=RepositoryRecord(
            provider="github", external_id=repository.external_id, full_path=repository.full_path
        ),
        number=7,
        external_id="pr-7",
        title="first",
        author=_account("ada"),
        state="open",
        created_at=T0,
        updated_at=T0,
        head_sha="a" * 40,
        labels=("b",),
        additions=3,
    )
    return dataclasses.replace(record, **changes)


def _updates(captured: CaptureQueriesContext, table: str) -> list[str]:
    return [sql for query in captured.captured_queries if (sql := query["sql"]).startswith(f'UPDATE "{table}"')]


def test_an_upsert_writes_as_save_does():
    # What lets one statement stand for save(update_fields=…): nothing listens to a pull request's saves, and no
    # field changes its own value on save.
    assert not pre_save.has_listeners(PullRequest) and not post_save.has_listeners(PullRequest)
    for field in PullRequest._meta.concrete_fields:
        assert not getattr(field, "auto_now", False) and not getattr(field, "auto_now_add", False), field.name
    repository = RepositoryFactory()
    pull_request, _ = pull_request_upsert(repository=repository, record=_record(repository))
    later = T0 + dt.timedelta(minutes=5)
    with CaptureQueriesContext(connection) as captured:
        pull_request_upsert(
            repository=repository,
            record=_record(
                repository,
                title="second",
                author=_account("bob"),
                labels=("z", "a"),
                updated_at=later,
                merged_at=later,
                state="merged",
                merged_by=_account("carol"),
            ),
        )
    (update,) = _updates(captured, "reviews_pullrequest")
    assert '"title"' in update and '"body"' not in update  # the changed fields alone
    stored = PullRequest.objects.select_related("author", "merged_by").get(pk=pull_request.pk)
    assert (stored.title, stored.state, stored.labels) == ("second", "merged", ["a", "z"])
    assert (stored.updated_at, stored.merged_at) == (later, later)
    assert (stored.author.display_name, stored.merged_by.display_name) == ("bob", "carol")
    assert (stored.additions, stored.head_sha) == (3, "a" * 40)  # kept


def test_an_upsert_that_changes_nothing_writes_nothing():
    repository = RepositoryFactory()
    pull_request_upsert(repository=repository, record=_record(repository))
    with CaptureQueriesContext(connection) as captured:
        pull_request_upsert(repository=repository, record=_record(repository))
    assert _updates(captured, "reviews_pullrequest") == []


def test_changes_saved_to_a_row_that_is_gone_are_refused_as_save_refuses_them():
    pull_request = PullRequestFactory()
    PullRequest.objects.filter(pk=pull_request.pk).delete()
    pull_request.title = "changed"
    with pytest.raises(DatabaseError, match="did not affect any rows"), transaction.atomic():
        pull_request.save(update_fields=["title"])
    with pytest.raises(DatabaseError, match="did not affect any rows"), transaction.atomic():
        pull_requests._changes_save(pull_request, ["title"])


def test_rare_shapes_past_the_kept_ones_are_updated_by_django(monkeypatch):
    monkeypatch.setattr(pull_requests, "_CHANGES", PreparedUpdates(PullRequest, max_shapes=0))
    pull_request = PullRequestFactory(title="before")
    pull_request.title = "after"
    pull_requests._changes_save(pull_request, ["title"])
    assert PullRequest.objects.get(pk=pull_request.pk).title == "after"
    assert pull_requests._CHANGES._by_shape == {}
    PullRequest.objects.filter(pk=pull_request.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"), transaction.atomic():
        pull_requests._changes_save(pull_request, ["title"])


def _review(**changes) -> ReviewRecord:  # type: ignore[no-untyped-def]
    record = ReviewRecord(external_id="r-1", reviewer=_account("grace"), state="approved", submitted_at=T0, body="ok")
    return dataclasses.replace(record, **changes)


def test_a_review_stored_as_it_is_is_not_written_again():
    pull_request = PullRequestFactory()
    with CaptureQueriesContext(connection) as captured:
        review_upsert(pull_request=pull_request, record=_review())  # inserted from this very record
    assert not _updates(captured, "reviews_review")
    with CaptureQueriesContext(connection) as captured:
        review_upsert(pull_request=pull_request, record=_review())  # the same delivery again
    assert not _updates(captured, "reviews_review")
    review = Review.objects.get()
    assert (review.state, review.body, review.submitted_at, review.reviewer.display_name) == (
        "approved",
        "ok",
        T0,
        "grace",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"state": "changes_requested", "submitted_at": T0 + dt.timedelta(minutes=1)},
        {"body": "edited"},  # the same submission, its text edited
        {"comment_count": 4},
        {"commit_sha": "c" * 40},
        {"reviewer": _account("hedy")},
    ],
)
def test_a_review_that_changed_is_written(change):
    pull_request = PullRequestFactory()
    review_upsert(pull_request=pull_request, record=_review())
    with CaptureQueriesContext(connection) as captured:
        review_upsert(pull_request=pull_request, record=_review(**change))
    assert _updates(captured, "reviews_review")
    review = Review.objects.select_related("reviewer").get()
    for name, value in change.items():
        stored = getattr(review, name)
        assert (stored.display_name if name == "reviewer" else stored) == (value.login if name == "reviewer" else value)


def _files(pull_request: PullRequest) -> dict[str, tuple[str, str, int, int]]:
    return {
        row.path: (row.status, row.previous_path, row.additions, row.deletions)
        for row in ChangedFile.objects.filter(pull_request=pull_request)
    }


def test_changed_files_become_exactly_the_listed_ones():
    pull_request, other = PullRequestFactory(), PullRequestFactory()
    changed_files_replace(pull_request=other, files=[ChangedFileRecord(path="a.py", additions=9)])
    changed_files_replace(
        pull_request=pull_request,
        files=[ChangedFileRecord(path="a.py", additions=1), ChangedFileRecord(path="b.py"), ChangedFileRecord("c.py")],
    )
    changed_files_replace(
        pull_request=pull_request,
        files=[
            ChangedFileRecord(path="a.py", additions=2, deletions=1),  # changed
            ChangedFileRecord(path="c.py"),  # as stored
            ChangedFileRecord(path="d.py", status="renamed", previous_path="b.py"),  # new; b.py gone
        ],
    )
    assert _files(pull_request) == {
        "a.py": ("modified", "", 2, 1),
        "c.py": ("modified", "", 0, 0),
        "d.py": ("renamed", "b.py", 0, 0),
    }
    assert _files(other) == {"a.py": ("modified", "", 9, 0)}  # another pull request's files untouched
    changed_files_replace(pull_request=pull_request, files=[])
    assert _files(pull_request) == {}
    assert _files(other) == {"a.py": ("modified", "", 9, 0)}


def test_files_as_stored_cost_one_read(django_assert_num_queries):
    pull_request = PullRequestFactory()
    files = [ChangedFileRecord(path="a.py", additions=1), ChangedFileRecord(path="b.py")]
    changed_files_replace(pull_request=pull_request, files=files)
    with django_assert_num_queries(1):
        changed_files_replace(pull_request=pull_request, files=files)
    with django_assert_num_queries(1):
        changed_files_replace(pull_request=PullRequestFactory.build(pk=pull_request.pk + 10_000), files=[])


def test_changes_saved_to_a_row_that_is_gone_mark_the_transaction_for_rollback_as_save_does():
    # save() raises inside its mark_for_rollback_on_error: a caller that catches the error inside the block cannot
    # commit what else the block wrote over a pull request that was not written.
    pull_request = PullRequestFactory()
    PullRequest.objects.filter(pk=pull_request.pk).delete()
    pull_request.title = "changed"
    marked = []
    for save in (
        lambda: pull_request.save(update_fields=["title"]),
        lambda: pull_requests._changes_save(pull_request, ["title"]),
    ):
        with transaction.atomic():
            with pytest.raises(DatabaseError, match="did not affect any rows"):
                save()
            marked.append(transaction.get_connection().needs_rollback)
            transaction.set_rollback(False)
    assert marked == [True, True]


def _stored(pull_request: PullRequest) -> dict[str, object]:
    row = PullRequest.objects.get(pk=pull_request.pk)
    return {
        field.attname: getattr(row, field.attname)
        for field in PullRequest._meta.concrete_fields
        if field.attname not in ("id", "repository_id")
    }


_T1 = T0 + dt.timedelta(hours=1)
_WHOLE_RECORDS = {
    "reviewers, pushed, merger": {
        "requested_reviewers": (_account("grace"),),
        "pushed_at": T0,
        "merged_by": _account("bob"),
    },
    "draft, labels, refs, body": {
        "draft": True,
        "labels": ("z", "a"),
        "base_ref": "main",
        "head_ref": "topic",
        "body": "why <b>",
        "web_url": "https://example.test/pr/7",
        "requested_reviewers": (_account("grace"), _account("bob")),
    },
    "merged, figures": {
        "state": "merged",
        "merged_at": _T1,
        "closed_at": _T1,
        "updated_at": _T1,
        "merge_commit_sha": "m" * 40,
        "merged_by": _account("bob"),
        "additions": 10,
        "deletions": 4,
        "changed_files": 2,
        "labels": (),
        "requested_reviewers": (),
    },
    "ready from draft": {"ready_at": _T1, "updated_at": _T1},
    "author known by id alone": {"author": UserRecord(provider="gitlab", login="", external_id="id-ada", name="")},
}


@pytest.mark.parametrize("record_changes", list(_WHOLE_RECORDS.values()), ids=list(_WHOLE_RECORDS))
def test_a_new_pull_request_is_inserted_whole_as_a_stub_updated_from_its_record_was(record_changes):
    repository = RepositoryFactory()
    for login in ("ada", "bob"):  # known: a new person is stored before the pull request's row (see below)
        person_from_account(connection=repository.connection, account=_account(login))
    with CaptureQueriesContext(connection) as captured:
        new, changed = pull_request_upsert(repository=repository, record=_record(repository, **record_changes))
    assert changed
    writes = [query["sql"] for query in captured.captured_queries if '"reviews_pullrequest"' in query["sql"][:40]]
    assert [sql.split(" ", 1)[0] for sql in writes] == ["SELECT", "INSERT"]  # no stub read back, no update
    # The way a row another worker stored meanwhile goes: a stub, locked, updated from the record.
    other = RepositoryFactory()
    PullRequest.objects.bulk_create([pull_requests._stub(other, 7)])
    stubbed, _ = pull_request_upsert(repository=other, record=_record(other, **record_changes))
    assert _stored(new) == _stored(stubbed)
    assert sorted(new.requested_reviewers.values_list("display_name", flat=True)) == sorted(
        stubbed.requested_reviewers.values_list("display_name", flat=True)
    )
    assert new.repository is repository


def test_a_new_pull_request_by_a_new_person_locks_its_row_before_storing_the_person():
    # The order a comment or a review on its stub takes the two locks in (test_concurrent_writes has the deadlock).
    repository = RepositoryFactory()
    with CaptureQueriesContext(connection) as captured:
        pull_request, _ = pull_request_upsert(repository=repository, record=_record(repository))
    inserts = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("INSERT")]
    # The stub's insert (SQLite spells it INSERT OR IGNORE), then the identity and the person.
    assert inserts[0].split(" (", 1)[0].endswith('INTO "reviews_pullrequest"'), inserts[0]
    assert pull_request.author.display_name == "ada"


def test_a_new_pull_request_stored_by_another_worker_meanwhile_is_updated_not_duplicated(monkeypatch):
    repository = RepositoryFactory()
    PullRequest.objects.bulk_create([pull_requests._stub(repository, 7)])  # committed between our read and insert
    first = pull_requests._LOCKED_BY_NUMBER.first
    calls: list[int] = []

    def not_yet_there(**values):  # type: ignore[no-untyped-def]
        calls.append(1)
        return None if len(calls) == 1 else first(**values)

    monkeypatch.setattr(pull_requests._LOCKED_BY_NUMBER, "first", not_yet_there)
    pull_request, _ = pull_request_upsert(repository=repository, record=_record(repository))
    assert PullRequest.objects.filter(repository=repository).count() == 1
    assert (PullRequest.objects.get(pk=pull_request.pk).title, pull_request.additions) == ("first", 3)


def test_a_new_review_stored_by_another_worker_meanwhile_is_read_and_compared(monkeypatch):
    pull_request = PullRequestFactory()
    review_upsert(pull_request=pull_request, record=_review())
    first = pull_requests._REVIEW_LOCKED.first
    calls: list[int] = []

    def not_yet_there(**values):  # type: ignore[no-untyped-def]
        calls.append(1)
        return None if len(calls) == 1 else first(**values)

    monkeypatch.setattr(pull_requests._REVIEW_LOCKED, "first", not_yet_there)
    newer = T0 + dt.timedelta(minutes=1)
    review = review_upsert(pull_request=pull_request, record=_review(state="changes_requested", submitted_at=newer))
    assert len(calls) == 2 and Review.objects.count() == 1
    assert Review.objects.get(pk=review.pk).state == "changes_requested"
