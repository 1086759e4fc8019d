"""Upserts for repositories, pull requests and what happens on them.

Every function is idempotent (unique constraints plus update-or-create) and tolerates disorder: a pull request
never goes back to an older state (compare the provider's `updated_at`), and a review or comment may arrive
before its pull request (a stub is created that the real pull request then fills).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Min

from reviews.integrations.records import (
    ChangedFileRecord,
    CommentRecord,
    CommitRecord,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    StatusRecord,
    UserRecord,
)
from reviews.models import (
    ChangedFile,
    Comment,
    Commit,
    CommitStatus,
    Connection,
    Person,
    PullRequest,
    Repository,
    Review,
)
from reviews.prepared import PreparedInsert, PreparedRead, PreparedUpdates
from reviews.services.people import identity_from_git_user, person_from_account, person_known

# A stub's updated_at: older than anything a provider can send, so the real pull request always wins.
#
# The upserts' own transactions take no savepoint inside a caller's (`savepoint=False`): an error inside one rolls
# back the caller's transaction, or its savepoint, whole; only the inserts whose IntegrityError is caught need one.
_STUB_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def repository_upsert(*, connection: Connection, record: RepositoryRecord) -> Repository:
    """The repository a payload or API object names, created under its connection (with no team) if new."""
    repository = _REPOSITORY.first(connection=connection.pk, external_id=record.external_id)
    if repository is not None:
        repository.connection = connection  # known already: no query when an upsert below reads it
    else:
        try:
            with transaction.atomic():
                return Repository.objects.create(
                    connection=connection,
                    external_id=record.external_id,
                    full_path=record.full_path,
                    default_branch=record.default_branch or "main",
                    web_url=record.web_url,
                )
        except IntegrityError:
            repository = Repository.objects.get(connection=connection, external_id=record.external_id)
    changed = {
        "full_path": record.full_path,
        "default_branch": record.default_branch or repository.default_branch,
        "web_url": record.web_url or repository.web_url,
    }
    if any(getattr(repository, field) != value for field, value in changed.items()):
        for field, value in changed.items():
            setattr(repository, field, value)
        repository.save(update_fields=list(changed))
    return repository


def pull_request_stub(*, repository: Repository, number: int) -> PullRequest:
    """A placeholder for a pull request known only by number (a review that arrived first)."""
    pull_request, _ = PullRequest.objects.get_or_create(
        repository=repository,
        number=number,
        defaults={"title": "", "created_at": _STUB_TIME, "updated_at": _STUB_TIME},
    )
    return pull_request


def pull_request_upsert(*, repository: Repository, record: PullRequestRecord) -> tuple[PullRequest, bool]:
    """Create or update a pull request from a record. Returns the row and whether it changed.

    A record older than what is stored (by the provider's `updated_at`) changes nothing.
    """
    connection = repository.connection
    with transaction.atomic(savepoint=False):
        pull_request = _LOCKED_BY_NUMBER.first(repository=repository.pk, number=record.number)
        if pull_request is None:
            # New: the whole row in one INSERT … ON CONFLICT DO NOTHING, as a stub updated from the record would be
            # (was a stub inserted, read back and updated: three statements). Another worker's row meanwhile: as below.
            # Only when its author and merger are known as they are: a person created (or changed) first would be
            # locked before the pull request's row, the reverse of a comment's or review's order (its stub, then
            # its author), and the two writers would wait for each other (deadlock).
            people = _people_known(connection, record)
            if people is not None:
                new = _stub(repository, record.number)
                _record_applied(new, record, connection, people)
                if _NEW_PULL_REQUEST.save_new_unless_conflict(new):
                    if record.requested_reviewers is not None:
                        _requested_reviewers_set(new, _people(connection, record.requested_reviewers))
                    return new, True
            pull_request = _pull_request_locked(repository, record.number)
        pull_request.repository = repository  # known already: no query when a later upsert reads its connection
        if record.updated_at < pull_request.updated_at:
            # Older than what we hold: only fill in figures the newer payloads did not carry.
            return pull_request, _fill_unknown_figures(pull_request, record)
        before = _field_values(pull_request)
        _record_applied(pull_request, record, connection)
        after = _field_values(pull_request)
        changed = [name for name, value in before.items() if after[name] != value]
        if changed:  # a review's or a comment's event repeats the pull request as stored: nothing to write
            _changes_save(pull_request, changed)
        if record.requested_reviewers is not None:
            _requested_reviewers_set(pull_request, _people(connection, record.requested_reviewers))
    return pull_request, True


def _people_known(connection: Connection, record: PullRequestRecord) -> tuple[Person | None, Person | None] | None:
    """The record's author and merger (`person_from_account`'s), or None when either would be written first."""
    author_known, author = person_known(connection=connection, account=record.author)
    if not author_known:
        return None
    merger_known, merged_by = person_known(connection=connection, account=record.merged_by)
    return (author, merged_by) if merger_known else None


def _record_applied(
    pull_request: PullRequest,
    record: PullRequestRecord,
    connection: Connection,
    people: tuple[Person | None, Person | None] | None = None,
) -> None:
    """The record's values on the row (in memory), as an upsert stores them. `people`: its author and merger, when
    the caller resolved them (`_people_known`)."""
    was_stub = pull_request.updated_at == _STUB_TIME
    was_draft = pull_request.draft
    _apply_record(pull_request, record)
    if people is None:
        people = (
            person_from_account(connection=connection, account=record.author),
            person_from_account(connection=connection, account=record.merged_by),
        )
    author, merged_by = people
    # A payload that cannot name the author (GitLab hooks by someone else) keeps the stored one.
    pull_request.author = author or (pull_request.author if record.author is None or not record.author.login else None)
    pull_request.merged_by = merged_by
    pull_request.ready_at = _ready_at(pull_request, record, was_stub=was_stub, was_draft=was_draft)
    if record.pushed_at and (pull_request.last_pushed_at is None or record.pushed_at > pull_request.last_pushed_at):
        pull_request.last_pushed_at = record.pushed_at


def _stub(repository: Repository, number: int) -> PullRequest:
    """A pull request known by its number alone (unsaved): what an upsert's record is applied to when it is new."""
    return PullRequest(repository=repository, number=number, title="", created_at=_STUB_TIME, updated_at=_STUB_TIME)


_NEW_PULL_REQUEST = PreparedInsert(PullRequest)
_NEW_REVIEW = PreparedInsert(Review)

_REQUESTED = PreparedRead(
    lambda pull_request: (
        PullRequest.requested_reviewers.through.objects.filter(pullrequest_id=pull_request)
        .order_by()
        .values_list("person_id", flat=True)
    ),
    pull_request=int,
)


def _requested_reviewers_set(pull_request: PullRequest, people: list[Person]) -> None:
    """`requested_reviewers.set(people)`, reading the current ones with a prepared read: every pull request event
    repeats them, and they rarely change."""
    wanted = {person.pk for person in people}
    current = set(_REQUESTED.all(pull_request=pull_request.pk))
    through = PullRequest.requested_reviewers.through
    if current - wanted:
        through.objects.filter(pullrequest_id=pull_request.pk, person_id__in=current - wanted).delete()
    if wanted - current:
        through.objects.bulk_create(
            [through(pullrequest_id=pull_request.pk, person_id=pk) for pk in sorted(wanted - current)],
            ignore_conflicts=True,
        )


_LOCKED_BY_NUMBER = PreparedRead(
    lambda repository, number: PullRequest.objects.select_for_update().filter(repository_id=repository, number=number),
    repository=int,
    number=int,
)
_REPOSITORY = PreparedRead(
    lambda connection, external_id: Repository.objects.filter(connection_id=connection, external_id=external_id),
    connection=int,
    external_id=str,
)


def _pull_request_locked(repository: Repository, number: int) -> PullRequest:
    """The pull request's row, locked for this transaction; a stub first when it is new."""
    pull_request = _LOCKED_BY_NUMBER.first(repository=repository.pk, number=number)
    if pull_request is None:
        # One statement whether or not another worker stored it meanwhile (INSERT … ON CONFLICT DO NOTHING).
        PullRequest.objects.bulk_create([_stub(repository, number)], ignore_conflicts=True)
        pull_request = _LOCKED_BY_NUMBER.first(repository=repository.pk, number=number)
        if pull_request is None:
            raise PullRequest.DoesNotExist(f"{repository} #{number} could not be stored")
    pull_request.repository = repository  # known already: no query when a later upsert reads its connection
    return pull_request


_CHANGES = PreparedUpdates(PullRequest)  # a statement for each set of fields an upsert changed
_ATTNAMES = {field.name: field.attname for field in PullRequest._meta.concrete_fields}


def _changes_save(pull_request: PullRequest, changed: list[str]) -> None:
    """`pull_request.save(update_fields=changed)` in one prepared statement per set of fields: every event's upsert
    writes what its payload changed, and Django's save built and compiled an update each time (~0.5 ms of CPU).
    The same row, values and refusal when the row is gone; a pull request has no save signals or fields that
    change themselves on save (auto_now), which `test_an_upsert_writes_as_save_does` pins."""
    values = {name: getattr(pull_request, _ATTNAMES[name]) for name in changed}
    if _CHANGES.run(pull_request.pk, **values) != 1:
        with transaction.mark_for_rollback_on_error():  # as save() raises it: the block cannot commit past it
            raise DatabaseError("Save with update_fields did not affect any rows.")  # Django's words for it


def _field_values(pull_request: PullRequest) -> dict[str, object]:
    """The row's stored values by field name (foreign keys by their id), to tell what an upsert changed."""
    return {field.name: getattr(pull_request, field.attname) for field in PullRequest._meta.concrete_fields}


_FIGURES = ("additions", "deletions", "changed_files")


def _fill_unknown_figures(pull_request: PullRequest, record: PullRequestRecord) -> bool:
    unknown = [f for f in _FIGURES if getattr(pull_request, f) is None and getattr(record, f) is not None]
    for field in unknown:
        setattr(pull_request, field, getattr(record, field))
    if unknown:
        pull_request.save(update_fields=unknown)
    return bool(unknown)


def _apply_record(pull_request: PullRequest, record: PullRequestRecord) -> None:
    pull_request.external_id = record.external_id
    pull_request.title = record.title[:1000]
    pull_request.body = record.body
    pull_request.state = record.state
    pull_request.draft = record.draft
    pull_request.base_ref = record.base_ref
    pull_request.head_ref = record.head_ref
    pull_request.head_sha = record.head_sha or pull_request.head_sha
    pull_request.merge_commit_sha = record.merge_commit_sha or pull_request.merge_commit_sha
    pull_request.web_url = record.web_url or pull_request.web_url
    pull_request.created_at = record.created_at
    pull_request.updated_at = record.updated_at
    pull_request.merged_at = record.merged_at
    pull_request.closed_at = record.closed_at
    # Figures a payload does not carry are None: keep what an earlier payload or the API said.
    for field in _FIGURES:
        value = getattr(record, field)
        if value is not None:
            setattr(pull_request, field, value)
    if record.labels is not None:
        pull_request.labels = sorted(record.labels)


def _ready_at(
    pull_request: PullRequest, record: PullRequestRecord, *, was_stub: bool, was_draft: bool
) -> dt.datetime | None:
    """When the review clock started: opened as ready, or when it left draft (METRICS.md)."""
    if pull_request.ready_at is not None and not was_stub:
        return pull_request.ready_at
    if record.draft:
        return None
    if record.ready_at is not None:
        return record.ready_at
    if was_stub or not was_draft:
        # First sight of a ready pull request: it was opened ready, as far as we can tell.
        return record.created_at
    return record.updated_at


def _people(connection: Connection, accounts: Iterable[UserRecord]) -> list[Person]:
    people = (person_from_account(connection=connection, account=account) for account in accounts)
    return [person for person in people if person is not None]


_REVIEW_LOCKED = PreparedRead(
    lambda pull_request, external_id: Review.objects.select_for_update().filter(
        pull_request_id=pull_request, external_id=external_id
    ),
    pull_request=int,
    external_id=str,
)


def review_upsert(*, pull_request: PullRequest, record: ReviewRecord) -> Review:
    """Create or update a review; an older version of a review never overwrites a newer one."""
    reviewer = person_from_account(connection=pull_request.repository.connection, account=record.reviewer)
    values = {
        "reviewer": reviewer,
        "state": record.state,
        "commit_sha": record.commit_sha,
        "body": record.body,
        "comment_count": record.comment_count,
        "submitted_at": record.submitted_at,
    }
    with transaction.atomic(savepoint=False):
        review = _REVIEW_LOCKED.first(pull_request=pull_request.pk, external_id=record.external_id)
        if review is None:
            # One statement whether or not another worker stored it meanwhile: stored from this record, it is as the
            # record says (nothing to compare or write); another worker's is read as any other.
            new = Review(pull_request=pull_request, external_id=record.external_id, **values)
            if _NEW_REVIEW.save_new_unless_conflict(new):
                return new
            review = _REVIEW_LOCKED.first(pull_request=pull_request.pk, external_id=record.external_id)
            if review is None:
                raise Review.DoesNotExist(f"review {record.external_id} of {pull_request} could not be stored")
        review.pull_request = pull_request
        if not _review_record_is_newer(review, record):
            return review
        if record.state == Review.State.DISMISSED.value:
            values["submitted_at"] = max(record.submitted_at, review.submitted_at)
        # Webhooks do not carry a review's line-comment count; sync does. Never lose the known count.
        values["comment_count"] = max(record.comment_count, review.comment_count)
        if _as_stored(review, values):
            # As stored: the row just inserted from this record, or a redelivery. Writing it again changes nothing.
            return review
        for field, value in values.items():
            setattr(review, field, value)
        review.save()
    return review


def _as_stored(row: Any, values: dict[str, Any]) -> bool:
    """Whether the row holds these values already (a related row compared by its key: no query)."""
    for name, value in values.items():
        field = row._meta.get_field(name)
        wanted = value.pk if field.is_relation and value is not None else value
        if getattr(row, field.attname) != wanted:
            return False
    return True


def _review_record_is_newer(review: Review, record: ReviewRecord) -> bool:
    """Dismissal always lands (GitHub keeps the original submitted time on it); a dismissed review only comes
    back with a strictly newer submission (a GitLab re-approval); otherwise the newer submission wins."""
    if record.state == Review.State.DISMISSED.value:
        return True
    if review.state == Review.State.DISMISSED:
        return record.submitted_at > review.submitted_at
    return record.submitted_at >= review.submitted_at


def approval_withdraw(*, pull_request: PullRequest, account: UserRecord, at: dt.datetime) -> int:
    """A reviewer took their approval back (GitLab unapproved): their standing approvals become dismissed.

    Returns how many reviews changed. Approvals given after `at` (seen out of order) stand.
    """
    reviewer = person_from_account(connection=pull_request.repository.connection, account=account)
    # The withdrawal time becomes the review's time, so only a later re-approval brings it back.
    return Review.objects.filter(
        pull_request=pull_request, reviewer=reviewer, state=Review.State.APPROVED, submitted_at__lte=at
    ).update(state=Review.State.DISMISSED, submitted_at=at)


def comment_upsert(*, pull_request: PullRequest, record: CommentRecord) -> Comment:
    author = person_from_account(connection=pull_request.repository.connection, account=record.author)
    comment, _ = Comment.objects.update_or_create(
        pull_request=pull_request,
        external_id=record.external_id,
        defaults={
            "author": author,
            "kind": record.kind,
            "body": record.body,
            "path": record.path,
            "is_system": record.is_system,
            "created_at": record.created_at,
        },
    )
    return comment


def comment_delete(*, pull_request: PullRequest, external_id: str) -> int:
    deleted, _ = Comment.objects.filter(pull_request=pull_request, external_id=external_id).delete()
    return deleted


def commit_upsert(*, repository: Repository, record: CommitRecord) -> Commit:
    """Create or update a commit, resolving its author and its Co-authored-by trailers to identities."""
    connection = repository.connection
    account_person = person_from_account(connection=connection, account=record.author_account)
    author_identity = identity_from_git_user(git_user=record.author, account_person=account_person)
    committer_person = person_from_account(connection=connection, account=record.committer_account)
    committer_identity = (
        identity_from_git_user(git_user=record.committer, account_person=committer_person)
        if record.committer and record.committer.email
        else None
    )
    defaults: dict[str, object] = {
        "message": record.message,
        "author": author_identity.person,
        "author_identity": author_identity,
        "authored_at": record.authored_at,
    }
    # A push payload lists no parents and a sync names no pusher: what one source lacks never erases what
    # the other said (a web-flow merge is recognised by its parents).
    if committer_identity is not None:
        defaults["committer_identity"] = committer_identity
    if record.committed_at is not None:
        defaults["committed_at"] = record.committed_at
    if record.parents is not None:
        defaults["parents"] = list(record.parents)
        defaults["parents_known"] = True
    pusher = person_from_account(connection=connection, account=record.pusher)
    if pusher is not None:
        defaults["pushed_by"] = pusher
    commit, _ = Commit.objects.update_or_create(repository=repository, sha=record.sha, defaults=defaults)
    if record.paths:
        from reviews.services.codeowners import codeowners_touched

        codeowners_touched(repository=repository, paths=record.paths)
    co_author_identities = [identity_from_git_user(git_user=co_author) for co_author in record.co_authors]
    commit.co_authors.set(co_author_identities)
    return commit


def pull_request_commits_add(*, pull_request: PullRequest, commits: Sequence[Commit]) -> None:
    """Link commits to a pull request and keep its first-commit time (cycle time's start) current."""
    if not commits:
        return
    pull_request.commits.add(*commits)
    first = pull_request.commits.aggregate(first=Min("authored_at"))["first"]
    if first != pull_request.first_commit_at:
        PullRequest.objects.filter(pk=pull_request.pk).update(first_commit_at=first)
        pull_request.first_commit_at = first


_CHANGED_FILES = PreparedRead(
    lambda pull_request: ChangedFile.objects.filter(pull_request_id=pull_request), pull_request=int
)


def changed_files_replace(*, pull_request: PullRequest, files: Sequence[ChangedFileRecord]) -> None:
    """Make the pull request's changed files exactly these (the API's list is the whole truth).

    Called under the pull request's lock (`pull_request_sync_apply`: no other writer of its files in between), so the
    stored files are read first and only those no longer listed are deleted: a fetch that removes none (most of
    them) costs one read, not a delete and a read."""
    with transaction.atomic(savepoint=False):
        by_path = {record.path: record for record in files}
        existing = {row.path: row for row in _CHANGED_FILES.all(pull_request=pull_request.pk)}
        gone = [row.pk for path, row in existing.items() if path not in by_path]
        if gone:
            ChangedFile.objects.filter(pk__in=gone).delete()
        to_create = []
        for path, record in by_path.items():
            row = existing.get(path)
            values = {
                "previous_path": record.previous_path,
                "status": record.status,
                "additions": record.additions,
                "deletions": record.deletions,
            }
            if row is None:
                to_create.append(ChangedFile(pull_request=pull_request, path=path, **values))
            elif any(getattr(row, key) != value for key, value in values.items()):
                ChangedFile.objects.filter(pk=row.pk).update(**values)
        ChangedFile.objects.bulk_create(to_create)


def commit_status_upsert(*, repository: Repository, record: StatusRecord) -> CommitStatus:
    """The latest state of one check context on one commit; an older report never overwrites a newer one."""
    values = {
        "state": record.state,
        "description": record.description[:1000],
        "target_url": record.target_url,
        "source": record.source,
        "external_id": record.external_id,
        "updated_at": record.updated_at,
    }
    with transaction.atomic(savepoint=False):
        status = (
            CommitStatus.objects.select_for_update()
            .filter(repository=repository, sha=record.sha, context=record.context)
            .first()
        )
        if status is None:
            try:
                with transaction.atomic():
                    return CommitStatus.objects.create(
                        repository=repository, sha=record.sha, context=record.context, **values
                    )
            except IntegrityError:
                status = CommitStatus.objects.select_for_update().get(
                    repository=repository, sha=record.sha, context=record.context
                )
        if record.updated_at < status.updated_at:
            return status
        for field, value in values.items():
            setattr(status, field, value)
        status.save()
    return status
