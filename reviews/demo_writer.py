"""The demo's pull requests written in bulk: the rows the ingestion services would store, a repository at a time.

The demo is generated, not synced, so its facts need none of the services' care for disorder (older payloads,
stubs, races between workers): each repository's pull requests, files, commits, reviews and comments are written
with a handful of bulk upserts instead of ~20 queries per row, and the people behind the accounts are resolved
once, through the services, and cached. What the services decide from the facts (pairing inferred from co-author
trailers; verdicts, deployment links and suspects, later in the seed) still goes through them.

Upserts keep `make seed` idempotent: a second run on the same day finds every row as it would write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models

from reviews.integrations.records import (
    ChangedFileRecord,
    CommentRecord,
    CommitRecord,
    GitUserRecord,
    PullRequestRecord,
    ReviewRecord,
    UserRecord,
)
from reviews.models import ChangedFile, Comment, Commit, Connection, Identity, Person, PullRequest, Repository, Review
from reviews.services.pairing import pairing_sessions_infer
from reviews.services.people import identity_from_git_user, person_from_account


@dataclass(frozen=True)
class Story:
    """One pull request as a fetch from the VCS would list it."""

    record: PullRequestRecord
    files: list[ChangedFileRecord]
    commits: list[CommitRecord]
    merge: CommitRecord | None
    reviews: list[ReviewRecord]
    comments: list[CommentRecord]


class DemoPeople:
    """Accounts and git e-mail addresses resolved to people by the services, once each."""

    def __init__(self, connections: dict[str, Connection]) -> None:
        self.connections = connections
        self._accounts: dict[tuple[str, str], Person | None] = {}
        self._emails: dict[str, Identity] = {}

    def person(self, provider: str, account: UserRecord | None) -> Person | None:
        if account is None:
            return None
        key = (provider, account.login.lower())
        if key not in self._accounts:
            self._accounts[key] = person_from_account(connection=self.connections[provider], account=account)
        return self._accounts[key]

    def email_identity(self, git_user: GitUserRecord, account_person: Person | None = None) -> Identity:
        key = git_user.email.lower()
        if key not in self._emails:
            self._emails[key] = identity_from_git_user(git_user=git_user, account_person=account_person)
        return self._emails[key]


_PULL_REQUEST_FIELDS = [
    "external_id", "title", "body", "author", "state", "draft", "base_ref", "head_ref", "head_sha",
    "merge_commit_sha", "additions", "deletions", "changed_files", "labels", "web_url", "created_at", "updated_at",
    "ready_at", "last_pushed_at", "first_commit_at", "details_head_sha", "details_synced_at", "merged_at",
    "closed_at", "merged_by",
]  # fmt: skip
_COMMIT_FIELDS = ["message", "author", "author_identity", "authored_at", "committed_at", "parents", "parents_known"]
_REVIEW_FIELDS = ["reviewer", "state", "commit_sha", "body", "comment_count", "submitted_at"]
_COMMENT_FIELDS = ["author", "kind", "body", "path", "is_system", "created_at"]
_BATCH = 500


class DemoWriter:
    """Writes one repository's stories. Call inside a transaction."""

    def __init__(self, repository: Repository, people: DemoPeople) -> None:
        self.repository = repository
        self.provider = repository.connection.provider
        self.people = people

    def write(self, stories: list[Story], initial: CommitRecord, parents: dict[str, list[str]]) -> None:
        pull_requests = self._pull_requests(stories)
        self._requested_reviewers(stories, pull_requests)
        self._files(stories, pull_requests)
        commits = self._commits(stories, initial, parents)
        self._links(stories, pull_requests, commits)
        self._reviews(stories, pull_requests)
        self._comments(stories, pull_requests)
        # After the links: an inferred session is recorded on the branch of the pull request of its commits.
        pairing_sessions_infer(repository=self.repository, commits=list(commits.values()))

    def _pull_requests(self, stories: list[Story]) -> dict[int, int]:
        rows = []
        for story in stories:
            record = story.record
            rows.append(
                PullRequest(
                    repository=self.repository,
                    number=record.number,
                    external_id=record.external_id,
                    title=record.title[:1000],
                    body=record.body,
                    author=self.people.person(self.provider, record.author),
                    state=record.state,
                    draft=record.draft,
                    base_ref=record.base_ref,
                    head_ref=record.head_ref,
                    head_sha=record.head_sha,
                    merge_commit_sha=record.merge_commit_sha,
                    additions=record.additions,
                    deletions=record.deletions,
                    changed_files=record.changed_files,
                    labels=sorted(record.labels or ()),
                    web_url=record.web_url,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                    ready_at=record.ready_at,
                    last_pushed_at=record.pushed_at,
                    first_commit_at=min(commit.authored_at for commit in story.commits),
                    # The demo's lists are whole, as a fetch from the VCS would be: its verdicts rest on known facts.
                    details_head_sha=record.head_sha,
                    details_synced_at=record.updated_at,
                    merged_at=record.merged_at,
                    closed_at=record.closed_at,
                    merged_by=self.people.person(self.provider, record.merged_by),
                )
            )
        _upsert(PullRequest, rows, ["repository", "number"], _PULL_REQUEST_FIELDS)
        return dict(PullRequest.objects.filter(repository=self.repository).values_list("number", "pk"))

    def _requested_reviewers(self, stories: list[Story], pull_requests: dict[int, int]) -> None:
        wanted = {
            (pull_requests[story.record.number], person.pk)
            for story in stories
            for account in story.record.requested_reviewers or ()
            if (person := self.people.person(self.provider, account)) is not None
        }
        through = PullRequest.requested_reviewers.through
        _make_exactly(through, "pullrequest_id", "person_id", set(pull_requests.values()), wanted)

    def _files(self, stories: list[Story], pull_requests: dict[int, int]) -> None:
        wanted = {
            (pull_requests[story.record.number], record.path): record for story in stories for record in story.files
        }
        stored = {
            (row.pull_request_id, row.path): row
            for row in ChangedFile.objects.filter(pull_request__repository=self.repository)
        }
        ChangedFile.objects.filter(pk__in=[row.pk for key, row in stored.items() if key not in wanted]).delete()
        values = ("previous_path", "status", "additions", "deletions")
        changed = []
        for key, row in stored.items():
            record = wanted.get(key)
            if record is not None and any(getattr(row, name) != getattr(record, name) for name in values):
                for name in values:
                    setattr(row, name, getattr(record, name))
                changed.append(row)
        ChangedFile.objects.bulk_update(changed, list(values), batch_size=_BATCH)
        ChangedFile.objects.bulk_create(
            [
                ChangedFile(pull_request_id=pk, path=path, **{name: getattr(record, name) for name in values})
                for (pk, path), record in wanted.items()
                if (pk, path) not in stored
            ],
            batch_size=_BATCH,
        )

    def _commits(self, stories: list[Story], initial: CommitRecord, parents: dict[str, list[str]]) -> dict[str, Commit]:
        records = [initial]
        for story in stories:
            records += story.commits
            if story.merge is not None:
                records.append(story.merge)
        rows = []
        co_authors: dict[str, list[Identity]] = {}
        for record in records:
            account_person = self.people.person(self.provider, record.author_account)
            identity = self.people.email_identity(record.author, account_person)
            rows.append(
                Commit(
                    repository=self.repository,
                    sha=record.sha,
                    message=record.message,
                    author=identity.person,
                    author_identity=identity,
                    authored_at=record.authored_at,
                    committed_at=record.committed_at,
                    parents=parents.get(record.sha, list(record.parents or ())),
                    parents_known=True,
                )
            )
            co_authors[record.sha] = [self.people.email_identity(co_author) for co_author in record.co_authors]
        _upsert(Commit, rows, ["repository", "sha"], _COMMIT_FIELDS)
        stored = {commit.sha: commit for commit in Commit.objects.filter(repository=self.repository)}
        wanted = {(stored[sha].pk, identity.pk) for sha, identities in co_authors.items() for identity in identities}
        commit_pks = {stored[sha].pk for sha in co_authors}
        _make_exactly(Commit.co_authors.through, "commit_id", "identity_id", commit_pks, wanted)
        return {sha: stored[sha] for sha in co_authors}

    def _links(self, stories: list[Story], pull_requests: dict[int, int], commits: dict[str, Commit]) -> None:
        through = PullRequest.commits.through
        through.objects.bulk_create(
            [
                through(pullrequest_id=pull_requests[story.record.number], commit_id=commits[commit.sha].pk)
                for story in stories
                for commit in story.commits
            ],
            ignore_conflicts=True,
            batch_size=_BATCH,
        )

    def _reviews(self, stories: list[Story], pull_requests: dict[int, int]) -> None:
        rows = [
            Review(
                pull_request_id=pull_requests[story.record.number],
                external_id=record.external_id,
                reviewer=self.people.person(self.provider, record.reviewer),
                state=record.state,
                commit_sha=record.commit_sha,
                body=record.body,
                comment_count=record.comment_count,
                submitted_at=record.submitted_at,
            )
            for story in stories
            for record in story.reviews
        ]
        _upsert(Review, rows, ["pull_request", "external_id"], _REVIEW_FIELDS)

    def _comments(self, stories: list[Story], pull_requests: dict[int, int]) -> None:
        rows = [
            Comment(
                pull_request_id=pull_requests[story.record.number],
                external_id=record.external_id,
                author=self.people.person(self.provider, record.author),
                kind=record.kind,
                body=record.body,
                path=record.path,
                is_system=record.is_system,
                created_at=record.created_at,
            )
            for story in stories
            for record in story.comments
        ]
        _upsert(Comment, rows, ["pull_request", "external_id"], _COMMENT_FIELDS)


def _upsert(model: type[models.Model], rows: list[Any], unique: list[str], fields: list[str]) -> None:
    """Insert or update the rows. Of rows with the same key the last wins, as one upsert after another would
    leave it (a GitLab reviewer's approval replaces their earlier review: both are "approval:<user>")."""
    attnames = [f"{name}_id" if model._meta.get_field(name).is_relation else name for name in unique]
    last = {tuple(getattr(row, name) for name in attnames): row for row in rows}
    model._default_manager.bulk_create(
        list(last.values()), update_conflicts=True, unique_fields=unique, update_fields=fields, batch_size=_BATCH
    )


def _make_exactly(
    through: type[models.Model], owner: str, target: str, owners: set[int], wanted: set[tuple[int, int]]
) -> None:
    """A many-to-many relation of these owners becomes exactly `wanted` (what `.set()` does, for many at once)."""
    manager = through._default_manager
    stored = {
        (row[0], row[1]): row[2] for row in manager.filter(**{f"{owner}__in": owners}).values_list(owner, target, "pk")
    }
    manager.filter(pk__in=[pk for pair, pk in stored.items() if pair not in wanted]).delete()
    manager.bulk_create(
        [through(**{owner: a, target: b}) for a, b in wanted if (a, b) not in stored], batch_size=_BATCH
    )
