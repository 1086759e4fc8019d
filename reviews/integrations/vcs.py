"""One interface over the GitHub and GitLab clients, for sync, the status reporter and deployment linking.

Provider errors are translated into three kinds the callers act on: rate limited (retry after N seconds),
unavailable (retry later), and everything else (record and stop).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from reviews.integrations import github_api, gitlab_api
from reviews.integrations.records import (
    ChangedFileRecord,
    CommentRecord,
    CommitRecord,
    CompareRead,
    FileRead,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    StatusState,
)

STATUS_CONTEXT = "tandem/review-policy"


class VcsError(Exception):
    """The VCS refused or failed a call in a way retrying will not fix."""


class VcsUnavailable(VcsError):
    """A 5xx, a timeout or a refused connection: retry later."""


class VcsRateLimited(VcsError):
    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"rate limited; retry after {retry_after:.0f}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Details:
    pull_request: PullRequestRecord
    reviews: list[ReviewRecord]
    comments: list[CommentRecord]
    commits: list[CommitRecord]
    files: list[ChangedFileRecord]
    files_not_ready: str = ""  # why the VCS cannot list the files for this head yet: fetch again later
    files_incomplete: str = ""  # why `files` is not the whole change: the verdict stays pending
    commits_incomplete: str = ""  # why `commits` are not all of them: the verdict stays pending
    # The files came without their patches (GitHub's GraphQL): the head's fingerprint is owed, fetched against
    # `base_sha` (the base branch's head GitHub showed) only when a verdict needs it (`sync.fingerprints_fetch`).
    patches_deferred: bool = False
    base_sha: str = ""


class VcsClient(Protocol):
    etags: dict[str, str]

    @property
    def api_calls(self) -> int: ...

    def rate_limit(self) -> tuple[int | None, dt.datetime | None]:
        """What the VCS said last: calls remaining and when the budget resets (None until it said)."""
        ...

    def repository(self, full_path: str) -> RepositoryRecord: ...

    def pull_requests_since(self, full_path: str, since: dt.datetime | None) -> Iterator[PullRequestRecord]: ...

    def details(self, full_path: str, number: int, listed: PullRequestRecord | None = None) -> Details: ...

    # --- GraphQL: many pull requests' details to a call ---

    @property
    def graphql_calls(self) -> int: ...

    @property
    def graphql_points(self) -> int:
        """GitHub's GraphQL points spent; 0 where GraphQL calls are throttled like REST ones (GitLab)."""
        ...

    def graphql_rate_limit(self) -> tuple[int | None, dt.datetime | None]:
        """GraphQL's own budget where it has one (GitHub: points left, reset); (None, None) elsewhere."""
        ...

    def know_repository(self, record: RepositoryRecord) -> None:
        """The repository as Tandem stored it, so that no call asks for it again."""
        ...

    def details_many(
        self, full_path: str, listed: Sequence[PullRequestRecord], repository: RepositoryRecord
    ) -> Iterator[Details]:
        """The details of pull requests a listing gave, in its order, through GraphQL (REST for what it lacks)."""
        ...

    def pull_requests_with_details(
        self, full_path: str, repository: RepositoryRecord, wanted: Callable[[PullRequestRecord], bool]
    ) -> Iterator[Details]:
        """Every pull request, most recently updated first, with its details: a backfill. `wanted` passes over one
        before anything is spent on its details."""
        ...

    def compare(self, full_path: str, base_sha: str, head_sha: str, etag: str = "") -> CompareRead: ...

    def compare_files(self, full_path: str, base: str, head: str) -> list[ChangedFileRecord]:
        """The files of `base...head` (from their merge base) with their patches, for a fingerprint: one call."""
        ...

    def first_file(
        self, full_path: str, paths: tuple[str, ...], ref: str, known: FileRead | None = None
    ) -> FileRead: ...

    def post_status(
        self, full_path: str, sha: str, *, state: StatusState, description: str, target_url: str, ref: str = ""
    ) -> None: ...

    def post_check_run(
        self,
        full_path: str,
        sha: str,
        *,
        state: StatusState,
        title: str,
        summary: str,
        target_url: str,
        external_id: str = "",
        check_run_id: int | None = None,
    ) -> int:
        """The verdict as the check run `tandem/review-policy` (GitHub Apps only); returns its id."""
        ...

    def request_reviewers(self, full_path: str, number: int, accounts: Sequence[str]) -> None:
        """Ask these accounts to review: GitHub logins, GitLab user ids (as text). Those already asked stay."""
        ...

    def close(self) -> None: ...


Token = str | Callable[[], str]


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except github_api.RateLimited as error:
        raise VcsRateLimited(error.retry_after_seconds, str(error)) from error
    except gitlab_api.RateLimited as error:
        raise VcsRateLimited(error.retry_after, str(error)) from error
    except (github_api.GitHubUnavailable, gitlab_api.GitLabUnavailable) as error:
        raise VcsUnavailable(str(error)) from error
    except (github_api.GitHubError, gitlab_api.GitLabError) as error:
        raise VcsError(str(error)) from error


class _Counted:
    """What both clients share: their counters, and the compare call."""

    _client: github_api.GitHubClient | gitlab_api.GitLabClient

    @property
    def api_calls(self) -> int:
        return self._client.api_calls

    def rate_limit(self) -> tuple[int | None, dt.datetime | None]:
        return self._client.rate_limit_remaining, self._client.rate_limit_reset

    def compare(self, full_path: str, base_sha: str, head_sha: str, etag: str = "") -> CompareRead:
        with _translated():
            return self._client.compare(full_path, base_sha, head_sha, etag)

    def compare_files(self, full_path: str, base: str, head: str) -> list[ChangedFileRecord]:
        with _translated():
            return self._client.compare_files(full_path, base, head)

    def first_file(self, full_path: str, paths: tuple[str, ...], ref: str, known: FileRead | None = None) -> FileRead:
        with _translated():
            return self._client.first_file(full_path, paths, ref, known)


class GitHubVcs(_Counted):
    _client: github_api.GitHubClient

    def __init__(self, base_url: str, token: Token, *, etags: dict[str, str] | None = None) -> None:
        self._client = github_api.GitHubClient(base_url, token, etags=etags)
        self.etags = self._client.etags

    @property
    def graphql_calls(self) -> int:
        return self._client.graphql_calls

    @property
    def graphql_points(self) -> int:
        return self._client.graphql_points

    def graphql_rate_limit(self) -> tuple[int | None, dt.datetime | None]:
        return self._client.graphql_remaining, self._client.graphql_reset

    def know_repository(self, record: RepositoryRecord) -> None:
        pass  # GitHub's calls name the repository by its path: nothing to look up

    def details_many(
        self, full_path: str, listed: Sequence[PullRequestRecord], repository: RepositoryRecord
    ) -> Iterator[Details]:
        numbers = [pull.number for pull in listed]
        with _translated():
            for found in self._client.pull_requests_details(full_path, numbers, repository):
                yield _github_details(found)

    def pull_requests_with_details(
        self, full_path: str, repository: RepositoryRecord, wanted: Callable[[PullRequestRecord], bool]
    ) -> Iterator[Details]:
        with _translated():
            for found in self._client.pull_requests_with_details(full_path, repository, wanted=wanted):
                yield _github_details(found)

    def repository(self, full_path: str) -> RepositoryRecord:
        with _translated():
            return self._client.repository(full_path)

    def pull_requests_since(self, full_path: str, since: dt.datetime | None) -> Iterator[PullRequestRecord]:
        with _translated():
            yield from self._client.pull_requests_since(full_path, since)

    def details(self, full_path: str, number: int, listed: PullRequestRecord | None = None) -> Details:
        with _translated():
            found = self._client.pull_request_details(full_path, number)
        return _github_details(found)

    def post_status(
        self, full_path: str, sha: str, *, state: StatusState, description: str, target_url: str, ref: str = ""
    ) -> None:
        with _translated():
            self._client.post_status(
                full_path, sha, state=state, description=description, target_url=target_url, context=STATUS_CONTEXT
            )

    def request_reviewers(self, full_path: str, number: int, accounts: Sequence[str]) -> None:
        with _translated():
            self._client.reviewers_request(full_path, number, accounts)

    def review_deployment_protection_rule(
        self, full_path: str, run_id: int, *, environment: str, approved: bool, comment: str
    ) -> None:
        """Answer a custom deployment protection rule (GitHub only: GitLab has no such rules)."""
        with _translated():
            self._client.deployment_protection_rule_review(
                full_path, run_id, environment=environment, approved=approved, comment=comment
            )

    def post_check_run(
        self,
        full_path: str,
        sha: str,
        *,
        state: StatusState,
        title: str,
        summary: str,
        target_url: str,
        external_id: str = "",
        check_run_id: int | None = None,
    ) -> int:
        with _translated():
            return self._client.check_run_post(
                full_path,
                sha,
                name=STATUS_CONTEXT,
                state=state,
                title=title,
                summary=summary,
                details_url=target_url,
                external_id=external_id,
                check_run_id=check_run_id,
            )

    def close(self) -> None:
        self._client.close()


class GitLabVcs(_Counted):
    _client: gitlab_api.GitLabClient
    graphql_batch = 50  # merge requests to a GraphQL call

    def __init__(self, base_url: str, token: str, *, etags: dict[str, str] | None = None) -> None:
        self._client = gitlab_api.GitLabClient(base_url, token)
        self.etags = dict(etags or {})  # GitLab has no conditional requests; the watermark does the work

    @property
    def graphql_calls(self) -> int:
        return self._client.graphql_calls

    @property
    def graphql_points(self) -> int:
        return 0

    def graphql_rate_limit(self) -> tuple[int | None, dt.datetime | None]:
        return None, None  # GitLab throttles GraphQL calls with REST's: rate_limit() says it

    def know_repository(self, record: RepositoryRecord) -> None:
        self._client.know_project(record)

    def details_many(
        self, full_path: str, listed: Sequence[PullRequestRecord], repository: RepositoryRecord
    ) -> Iterator[Details]:
        self._client.know_project(repository)
        with _translated():
            for found in self._client.merge_requests_details(full_path, listed, batch=self.graphql_batch):
                yield _gitlab_details(found)

    def pull_requests_with_details(
        self, full_path: str, repository: RepositoryRecord, wanted: Callable[[PullRequestRecord], bool]
    ) -> Iterator[Details]:
        """GitLab's REST listing carries whole merge requests (100 to a page): it is the listing here too, and
        GraphQL gives the rest of each page's merge requests."""
        self._client.know_project(repository)
        pending: list[PullRequestRecord] = []
        with _translated():
            for listed in self._client.merge_requests_since(full_path, None):
                if wanted(listed):
                    pending.append(listed)
                if len(pending) >= self.graphql_batch:
                    yield from map(_gitlab_details, self._client.merge_requests_details(full_path, pending))
                    pending = []
            if pending:
                yield from map(_gitlab_details, self._client.merge_requests_details(full_path, pending))

    def repository(self, full_path: str) -> RepositoryRecord:
        with _translated():
            return self._client.project(full_path)

    def pull_requests_since(self, full_path: str, since: dt.datetime | None) -> Iterator[PullRequestRecord]:
        with _translated():
            yield from self._client.merge_requests_since(full_path, since)

    def details(self, full_path: str, number: int, listed: PullRequestRecord | None = None) -> Details:
        with _translated():
            found = self._client.merge_request_details(full_path, number, pull_request=listed)
        return _gitlab_details(found)

    def post_status(
        self, full_path: str, sha: str, *, state: StatusState, description: str, target_url: str, ref: str = ""
    ) -> None:
        with _translated():
            self._client.post_status(
                full_path,
                sha,
                state=state,
                description=description,
                target_url=target_url,
                name=STATUS_CONTEXT,
                ref=ref,
            )

    def post_check_run(
        self,
        full_path: str,
        sha: str,
        *,
        state: StatusState,
        title: str,
        summary: str,
        target_url: str,
        external_id: str = "",
        check_run_id: int | None = None,
    ) -> int:
        raise VcsError("GitLab has no check runs: Tandem reports to GitLab as a commit status")

    def request_reviewers(self, full_path: str, number: int, accounts: Sequence[str]) -> None:
        with _translated():
            self._client.reviewers_add(full_path, number, [int(account) for account in accounts])

    def close(self) -> None:
        self._client.close()


def _github_details(found: github_api.PullRequestDetails) -> Details:
    return Details(
        found.pull_request,
        found.reviews,
        found.comments,
        found.commits,
        found.files,
        files_incomplete=found.files_incomplete,
        commits_incomplete=found.commits_incomplete,
        patches_deferred=found.patches_deferred,
        base_sha=found.base_sha,
    )


def _gitlab_details(found: gitlab_api.MergeRequestDetails) -> Details:
    return Details(
        found.pull_request,
        found.reviews,
        found.comments,
        found.commits,
        found.files,
        files_not_ready=found.files_not_ready,
        files_incomplete=found.files_incomplete,
    )


def open_client(provider: str, base_url: str, token: Token, *, etags: dict[str, str] | None = None) -> VcsClient:
    """A client for one instance. A GitHub token may be a callable asked on every request (a GitHub App's
    installation token, refreshed before it expires)."""
    if provider == "github":
        return GitHubVcs(base_url, token, etags=etags)
    if provider == "gitlab":
        if not isinstance(token, str):
            raise ValueError("GitLab connections authenticate with a token")
        return GitLabVcs(base_url, token, etags=etags)
    raise ValueError(f"unknown provider {provider!r}")
