"""A synchronous GitHub REST client for the sync jobs, over PyGithub.

PyGithub's `Requester` does the transport: authentication, the base URL (github.com or GitHub Enterprise's
`https://host/api/v3`), connection reuse, write spacing. Responses are read as plain JSON and turned into records by
`reviews.integrations.github`, the same converters the webhooks use. No lazily completing PyGithub object is ever
created, so no request happens behind Tandem's back and `api_calls` counts every one.

Tandem decides about retries, so PyGithub's own retry is off. A rate limit raises `RateLimited(retry_after_seconds)`
for a Celery task to retry with that countdown; a 5xx, a timeout or a refused connection raise `GitHubUnavailable`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

import requests
from github import Auth, Github, GithubException
from github.Requester import Requester

from reviews.instruments import VCS_API_CALLS, VCS_RATE_LIMIT_REMAINING, rate_limit_resource
from reviews.integrations import github_graphql
from reviews.integrations.endpoints import endpoint_template
from reviews.integrations.github import (
    parse_changed_file,
    parse_commit,
    parse_issue_comment,
    parse_pull_request,
    parse_repository,
    parse_review,
    parse_review_comment,
    parse_status,
)
from reviews.integrations.http_pool import pygithub_on_process_pool
from reviews.integrations.payloads import JsonReader, json_type
from reviews.integrations.records import (
    ChangedFileRecord,
    CommentRecord,
    CommitRecord,
    CompareRead,
    FileRead,
    PayloadError,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    StatusRecord,
)

__all__ = [
    "GitHubClient",
    "GitHubError",
    "GitHubNotFound",
    "GitHubUnavailable",
    "PullRequestDetails",
    "RateLimited",
]

_T = TypeVar("_T")
CommitState = Literal["error", "failure", "pending", "success"]
_COMMIT_STATES = frozenset({"error", "failure", "pending", "success"})
# GitHub's documented advice when a secondary rate limit names no Retry-After: wait at least a minute.
_SECONDARY_LIMIT_WAIT = 60.0
_DESCRIPTION_LIMIT = 140  # GitHub rejects longer commit status descriptions
_CHECK_SUMMARY_LIMIT = 65535  # GitHub's limit on a check run's output summary
_CHECK_TITLE_LIMIT = 1000


class _TokenSource(Auth.Auth):
    """A token asked for on every request, so that a long sync goes on with a GitHub App's fresh installation
    token when the one it started with nears its expiry (the source keeps it between requests)."""

    def __init__(self, source: Callable[[], str]) -> None:
        self._source = source

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._source()


class GitHubError(Exception):
    """GitHub answered with an error (or not at all). `status` is the HTTP status, when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubNotFound(GitHubError):
    """404: the repository, pull request or commit does not exist, or the token cannot see it."""


class GitHubUnavailable(GitHubError):
    """A 5xx, a timeout or a connection failure: worth retrying later."""


class RateLimited(GitHubError):
    """GitHub's primary or secondary rate limit: retry after `retry_after_seconds`."""

    def __init__(self, retry_after_seconds: float, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message or f"GitHub rate limit; retry after {retry_after_seconds:g}s", status=status)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class PullRequestDetails:
    """Everything the review policy needs about one pull request."""

    pull_request: PullRequestRecord  # from the single GET: carries additions, deletions, changed_files
    reviews: list[ReviewRecord]  # submitted reviews, oldest first (pending ones are not reviews yet)
    comments: list[CommentRecord]  # diff comments and conversation comments, oldest first
    commits: list[CommitRecord]
    files: list[ChangedFileRecord]
    files_incomplete: str = ""  # why `files` is not the whole change (GitHub lists at most 3,000 files)
    commits_incomplete: str = ""  # why `commits` are not all of them (GitHub lists at most 250 commits)
    patches_deferred: bool = False  # the files came from GraphQL, without patches: the fingerprint is owed
    base_sha: str = ""  # the base branch's head GitHub showed with them (what a compare for the patches starts from)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, Any]  # lower-cased names, as PyGithub hands them over
    data: Any


class GitHubClient:
    """One GitHub (or GitHub Enterprise) instance, one token.

    `etags` maps a pull request list URL (see `pulls_etag_key`) to the ETag of its first page; pass what was
    persisted last time and persist `client.etags` again once the sync has stored everything it was given.
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        per_page: int = 100,
        etags: dict[str, str] | None = None,
        timeout: int = 30,
        seconds_between_writes: float | None = 1.0,
        user_agent: str = "Tandem",
    ) -> None:
        if not 1 <= per_page <= 100:
            raise ValueError(f"per_page must be between 1 and 100, not {per_page}")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self.etags: dict[str, str] = etags if etags is not None else {}
        self.api_calls = 0  # every HTTP request that got an answer, 304s included
        self.api_calls_rate_limited = 0  # the ones GitHub counts against the rate limit (all but 304s)
        self.rate_limit_remaining: int | None = None
        self.rate_limit_reset: dt.datetime | None = None
        self.graphql_calls = 0  # the GraphQL calls among api_calls
        self.graphql_points = 0  # what they cost, in GraphQL's points
        self.graphql_remaining: int | None = None  # GraphQL's own hourly budget, in points
        self.graphql_reset: dt.datetime | None = None
        self._github = Github(
            base_url=self.base_url,
            auth=Auth.Token(token) if isinstance(token, str) else _TokenSource(token),
            per_page=per_page,
            timeout=timeout,
            user_agent=user_agent,
            retry=None,
            seconds_between_requests=None,
            # GitHub asks integrators to space out writes by a second to avoid secondary rate limits.
            seconds_between_writes=seconds_between_writes,
        )
        self._requester: Requester = self._github.requester
        pygithub_on_process_pool(self._requester)
        self._origin = _origin(self.base_url)

    def close(self) -> None:
        self._github.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- API --------------------------------------------------------------------------------------------------

    def repository(self, full_path: str) -> RepositoryRecord:
        reply = self._request("GET", f"/repos/{_repo_path(full_path)}")
        return parse_repository(reply.data, "repository")

    def pulls_etag_key(self, full_path: str) -> str:
        return (
            f"{self.base_url}/repos/{_repo_path(full_path)}/pulls"
            f"?state=all&sort=updated&direction=desc&per_page={self.per_page}"
        )

    def pull_requests_since(self, full_path: str, since: dt.datetime | None) -> Iterator[PullRequestRecord]:
        """Pull requests updated after `since` (the watermark), most recently updated first.

        Paging stops at the first pull request updated at or before `since`. With a watermark, page 1 is asked
        for conditionally: a 304 means nothing changed, and yields nothing for the price of an uncounted call.
        `since=None` lists everything, unconditionally. The first page's new ETag goes into `self.etags` once
        the listing has been read to its end, so an abandoned listing is asked for again next time.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        key = self.pulls_etag_key(full_path)
        headers = {"If-None-Match": self.etags[key]} if since is not None and key in self.etags else {}
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": self.per_page}
        reply = self._request("GET", f"/repos/{_repo_path(full_path)}/pulls", params=params, headers=headers)
        if reply.status == 304:
            return
        etag = reply.headers.get("etag")
        for item_path, item in self._pages(reply, "pulls"):
            pull = parse_pull_request(item, item_path)
            if since is not None and pull.updated_at <= since:
                break
            yield pull
        if isinstance(etag, str):
            self.etags[key] = etag

    def pull_request_details(self, full_path: str, number: int) -> PullRequestDetails:
        """The pull request with its reviews, comments, commits and files.

        Six requests at most: the pull request, then its reviews, diff comments, conversation comments, commits
        and files. A list the pull request itself counts as empty (`review_comments: 0`, `comments: 0`,
        `changed_files: 0`) is not asked for.
        """
        repo = f"/repos/{_repo_path(full_path)}"
        pull_path = f"{repo}/pulls/{number}"
        data = self._request("GET", pull_path).data
        pull = parse_pull_request(data, f"pulls/{number}")
        raw_reviews = list(self._list(f"{pull_path}/reviews"))
        diff_comments = self._items(f"{pull_path}/comments", _count(data, "review_comments"), parse_review_comment)
        conversation = self._items(f"{repo}/issues/{number}/comments", _count(data, "comments"), parse_issue_comment)
        commit_count = _count(data, "commits")
        commits = self._items(f"{pull_path}/commits", commit_count, parse_commit)
        files = self._items(f"{pull_path}/files", pull.changed_files, parse_changed_file)
        return _assemble(pull, raw_reviews, diff_comments, conversation, commits, files, commit_count)

    # --- GraphQL ----------------------------------------------------------------------------------------------

    def pull_requests_with_details(
        self,
        full_path: str,
        repository: RepositoryRecord,
        *,
        wanted: Callable[[PullRequestRecord], bool] | None = None,
        page_size: int = github_graphql.PAGE_SIZE,
    ) -> Iterator[PullRequestDetails]:
        """Every pull request, most recently updated first, with its details: a GraphQL call per `page_size` of
        them (REST for what GraphQL lacks, see `_graphql_details`). `wanted` passes over a pull request before any
        REST call is made for it."""
        owner, name = _owner_and_name(full_path)
        after: str | None = None
        while True:
            variables = {"owner": owner, "name": name, "first": page_size, "after": after}
            data = self._graphql(github_graphql.PAGE_QUERY, variables)
            found = JsonReader(_graphql_obj(_graphql_obj(data, "repository"), "pullRequests"), "pullRequests")
            for index, node in enumerate(found.opt_list("nodes") or []):
                details = self._graphql_details(full_path, node, repository, f"pullRequests[{index}]", wanted)
                if details is not None:
                    yield details
            if not found.opt_bool("pageInfo", "hasNextPage"):
                return
            after = found.opt_str("pageInfo", "endCursor") or None

    def pull_requests_details(
        self, full_path: str, numbers: Sequence[int], repository: RepositoryRecord
    ) -> Iterator[PullRequestDetails]:
        """These pull requests with their details, `github_graphql.BATCH_SIZE` to a GraphQL call."""
        owner, name = _owner_and_name(full_path)
        for start in range(0, len(numbers), github_graphql.BATCH_SIZE):
            chunk = list(numbers[start : start + github_graphql.BATCH_SIZE])
            data = self._graphql(github_graphql.numbers_query(chunk), {"owner": owner, "name": name})
            found = _graphql_obj(data, "repository")
            for number in chunk:
                node = found.get(f"n{number}")
                if not isinstance(node, Mapping):
                    raise GitHubNotFound(f"GraphQL: pull request {full_path}#{number} not found", status=404)
                details = self._graphql_details(full_path, node, repository, f"pullRequest({number})")
                if details is not None:
                    yield details

    def _graphql_details(
        self,
        full_path: str,
        data: object,
        repository: RepositoryRecord,
        path: str,
        wanted: Callable[[PullRequestRecord], bool] | None = None,
    ) -> PullRequestDetails | None:
        """One GraphQL pull request as REST would have given it. A list longer than GraphQL's page sends the whole
        pull request to REST, and a renamed file's previous path comes from REST. Everything else comes from the
        GraphQL answer: the files without their patches, so an open pull request's fingerprint is owed
        (`patches_deferred`), fetched by `compare_files` only when a verdict needs it."""
        node = JsonReader(data, path)
        pull_data = github_graphql.rest_pull(node)
        pull = parse_pull_request(pull_data, path, repository)
        if wanted is not None and not wanted(pull):
            return None
        if github_graphql.overflows(node):
            return self.pull_request_details(full_path, pull.number)
        raw_reviews = [(f"{path}.reviews[{i}]", item) for i, item in enumerate(github_graphql.rest_reviews(node))]
        diff_comments = [
            parse_review_comment(item, f"{path}.reviews.comments[{i}]")
            for i, item in enumerate(github_graphql.rest_review_comments(node))
        ]
        conversation = [
            parse_issue_comment(item, f"{path}.comments[{i}]")
            for i, item in enumerate(github_graphql.rest_issue_comments(node))
        ]
        commits = [
            parse_commit(item, f"{path}.commits[{i}]") for i, item in enumerate(github_graphql.rest_commits(node))
        ]
        deferred = False
        if github_graphql.files_lack_previous_path(node):
            pull_path = f"/repos/{_repo_path(full_path)}/pulls/{pull.number}"
            files = self._items(f"{pull_path}/files", pull.changed_files, parse_changed_file)
        else:
            files = [
                parse_changed_file(item, f"{path}.files[{i}]") for i, item in enumerate(github_graphql.rest_files(node))
            ]
            deferred = bool(files)
        found = _assemble(pull, raw_reviews, diff_comments, conversation, commits, files, _count(pull_data, "commits"))
        base_sha = JsonReader(pull_data, path).opt_str("base", "sha")
        return replace(found, patches_deferred=deferred, base_sha=base_sha)

    def _graphql(self, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        """One GraphQL call through PyGithub; its data, after noting the points it cost and what is left."""
        try:
            headers, payload = self._requester.graphql_query(query, dict(variables))
        except requests.RequestException as exc:
            VCS_API_CALLS.labels("github", "POST", "/graphql", "unreachable").inc()
            raise GitHubUnavailable(f"POST graphql: {exc}") from exc
        except GithubException as exc:
            VCS_API_CALLS.labels("github", "POST", "/graphql", str(exc.status)).inc()
            self.api_calls += 1
            self.graphql_calls += 1
            self._note_graphql_budget(exc.headers or {}, None)
            raise self._graphql_error(exc) from exc
        VCS_API_CALLS.labels("github", "POST", "/graphql", "200").inc()
        self.api_calls += 1
        self.graphql_calls += 1
        data = payload.get("data") if isinstance(payload, Mapping) else None
        if not isinstance(data, Mapping):
            raise GitHubError("GraphQL answered without data")
        self._note_graphql_budget(headers, data.get("rateLimit"))
        return data

    def _note_graphql_budget(self, headers: Mapping[str, Any], rate_limit: Any) -> None:
        """GraphQL's points left, from the answer's `rateLimit` or else its headers; shown in the headroom gauge as
        the `graphql` resource, beside REST's `core`, which a GraphQL backfill does not spend."""
        remaining: int | None = None
        if isinstance(rate_limit, Mapping):
            cost, said = rate_limit.get("cost"), rate_limit.get("remaining")
            if isinstance(cost, int):
                self.graphql_points += cost
            if isinstance(said, int):
                remaining = said
            reset = rate_limit.get("resetAt")
            if isinstance(reset, str):
                with contextlib.suppress(ValueError):
                    self.graphql_reset = dt.datetime.fromisoformat(reset.replace("Z", "+00:00"))
        elif headers.get("x-ratelimit-resource") == "graphql":
            remaining_header = _number(headers.get("x-ratelimit-remaining"))
            reset_header = _number(headers.get("x-ratelimit-reset"))
            if remaining_header is not None:
                remaining = int(remaining_header)
            if reset_header is not None:
                self.graphql_reset = dt.datetime.fromtimestamp(int(reset_header), tz=dt.UTC)
        if remaining is not None:
            self.graphql_remaining = remaining
            resource = rate_limit_resource(headers.get("x-ratelimit-resource"), default="graphql")
            VCS_RATE_LIMIT_REMAINING.labels("github", self._origin[1], resource).set(remaining)

    def _graphql_error(self, exc: GithubException) -> GitHubError:
        """GraphQL's errors as REST's: a spent point budget (RATE_LIMITED, answered with 200) waits for its reset;
        secondary limits, 5xx and 404 are read as the REST path reads them."""
        data = exc.data if isinstance(exc.data, Mapping) else {}
        errors = [error for error in data.get("errors") or [] if isinstance(error, Mapping)]
        kinds = {str(error.get("type") or "") for error in errors}
        message = "; ".join(str(error.get("message") or "") for error in errors) or str(exc.data)[:200]
        if "RATE_LIMITED" in kinds:
            reset = self.graphql_reset
            wait = (reset.timestamp() - time.time()) if reset else _SECONDARY_LIMIT_WAIT
            return RateLimited(max(wait, 1.0), f"GraphQL point budget spent: {message}", status=exc.status)
        if errors and exc.status in (200, 400, 404):
            if kinds == {"NOT_FOUND"}:
                return GitHubNotFound(f"GraphQL: {message}", status=404)
            return GitHubError(f"GraphQL: {message}", status=exc.status)
        headers = {str(key).lower(): value for key, value in (exc.headers or {}).items()}
        return self._error("POST", "graphql", exc.status, headers, json.dumps(exc.data) if exc.data else "")

    def compare(self, full_path: str, base_sha: str, head_sha: str, etag: str = "") -> CompareRead:
        """The commits reachable from `head_sha` but not from `base_sha` (what a deployment shipped), oldest first.
        With the `etag` of an earlier answer the first page is asked for conditionally: a 304 (no quota) says the
        comparison is unchanged."""
        basehead = f"{quote(base_sha, safe='')}...{quote(head_sha, safe='')}"
        reply = self._request(
            "GET",
            f"/repos/{_repo_path(full_path)}/compare/{basehead}",
            params={"per_page": self.per_page},
            headers={"If-None-Match": etag} if etag else {},
        )
        if reply.status == 304:
            return CompareRead(etag=str(reply.headers.get("etag") or etag), unchanged=True)
        first_etag = str(reply.headers.get("etag") or "")
        commits: list[CommitRecord] = []
        while True:
            items = JsonReader(reply.data, "compare").req_list("commits")
            offset = len(commits)
            commits.extend(parse_commit(item, f"compare.commits[{offset + i}]") for i, item in enumerate(items))
            next_url = self._next_url(reply.headers)
            if next_url is None:
                return CompareRead(tuple(commits), etag=first_etag)
            reply = self._request("GET", next_url)

    def compare_files(self, full_path: str, base: str, head: str) -> list[ChangedFileRecord]:
        """The files of the change `base...head` (from their merge base, as a pull request's diff), with their
        patches: one call. GitHub lists at most 300 files here, unpaginated; the caller compares the count."""
        basehead = f"{quote(base, safe='')}...{quote(head, safe='')}"
        reply = self._request("GET", f"/repos/{_repo_path(full_path)}/compare/{basehead}")
        files = JsonReader(reply.data, "compare").opt_list("files") or []
        return [parse_changed_file(item, f"compare.files[{index}]") for index, item in enumerate(files)]

    def first_file(self, full_path: str, paths: tuple[str, ...], ref: str, known: FileRead | None = None) -> FileRead:
        """The first of `paths` that exists on `ref`, through the contents API. The location read last time is asked
        for with its ETag: a 304 (no quota) says it is unchanged."""
        for path in paths:
            headers = {"If-None-Match": known.etag} if known and known.path == path and known.etag else {}
            url = f"/repos/{_repo_path(full_path)}/contents/{quote(path)}"
            try:
                reply = self._request("GET", url, params={"ref": ref}, headers=headers)
            except GitHubNotFound:
                continue
            etag = str(reply.headers.get("etag") or "")
            if reply.status == 304:
                return FileRead(path, etag=etag or (known.etag if known else ""), unchanged=True)
            return FileRead(path, _file_text(reply.data, path), etag)
        return FileRead("")

    def post_status(
        self,
        full_path: str,
        sha: str,
        *,
        state: CommitState,
        description: str,
        target_url: str,
        context: str = "tandem/review-policy",
    ) -> StatusRecord:
        """Set a commit status (Tandem's verdict) and return it as GitHub recorded it."""
        if state not in _COMMIT_STATES:
            raise ValueError(f"state must be one of {sorted(_COMMIT_STATES)}, not {state!r}")
        if len(description) > _DESCRIPTION_LIMIT:
            description = description[: _DESCRIPTION_LIMIT - 1] + "…"
        body: dict[str, str] = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        reply = self._request("POST", f"/repos/{_repo_path(full_path)}/statuses/{quote(sha, safe='')}", body=body)
        return parse_status(reply.data, sha)

    def reviewers_request(self, full_path: str, number: int, logins: Sequence[str]) -> None:
        """Ask these people (logins) to review the pull request; GitHub keeps anyone already requested."""
        self._request(
            "POST",
            f"/repos/{_repo_path(full_path)}/pulls/{int(number)}/requested_reviewers",
            body={"reviewers": list(logins)},
        )

    def check_run_post(
        self,
        full_path: str,
        sha: str,
        *,
        name: str,
        state: CommitState,
        title: str,
        summary: str,
        details_url: str,
        external_id: str = "",
        check_run_id: int | None = None,
    ) -> int:
        """Create a check run on `sha` (or update `check_run_id`) showing a verdict; returns the check run's id.

        A pending verdict is a check run in progress (a required check then keeps the merge waiting); the others
        are completed with success or failure. Needs a GitHub App's installation token with checks: write."""
        if state not in _COMMIT_STATES:
            raise ValueError(f"state must be one of {sorted(_COMMIT_STATES)}, not {state!r}")
        if len(title) > _CHECK_TITLE_LIMIT:
            title = title[: _CHECK_TITLE_LIMIT - 1] + "…"
        if len(summary) > _CHECK_SUMMARY_LIMIT:
            summary = summary[: _CHECK_SUMMARY_LIMIT - 80] + "\n\n…(cut: GitHub shows at most 65,535 characters)"
        body: dict[str, Any] = {"name": name, "output": {"title": title, "summary": summary}}
        if details_url:
            body["details_url"] = details_url
        if external_id:
            body["external_id"] = external_id
        if state == "pending":
            body["status"] = "in_progress"
        else:
            body["status"] = "completed"
            body["conclusion"] = "success" if state == "success" else "failure"
        repo = f"/repos/{_repo_path(full_path)}/check-runs"
        if check_run_id is None:
            reply = self._request("POST", repo, body={**body, "head_sha": sha})
        else:
            reply = self._request("PATCH", f"{repo}/{check_run_id}", body=body)
        found = reply.data.get("id") if isinstance(reply.data, Mapping) else None
        if not isinstance(found, int) or isinstance(found, bool):
            raise GitHubError("GitHub answered the check run without its id", status=reply.status)
        return found

    def deployment_protection_rule_review(
        self, full_path: str, run_id: int, *, environment: str, approved: bool, comment: str
    ) -> None:
        """Answer a custom deployment protection rule for one environment of a workflow run (a GitHub App's
        installation token)."""
        body = {"environment_name": environment, "state": "approved" if approved else "rejected", "comment": comment}
        path = f"/repos/{_repo_path(full_path)}/actions/runs/{int(run_id)}/deployment_protection_rule"
        self._request("POST", path, body=body)

    # --- transport --------------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> _Reply:
        try:
            status, response_headers, text = self._requester.requestJson(
                method, url, parameters=dict(params or {}), headers=dict(headers or {}), input=body
            )
        except requests.RequestException as exc:
            VCS_API_CALLS.labels("github", method, endpoint_template(url), "unreachable").inc()
            raise GitHubUnavailable(f"{method} {url}: {exc}") from exc
        VCS_API_CALLS.labels("github", method, endpoint_template(url), str(status)).inc()
        self.api_calls += 1
        if status != 304:
            self.api_calls_rate_limited += 1
        self._note_rate_limit(response_headers)
        if status == 304:
            return _Reply(status, response_headers, None)
        if status >= 300:
            raise self._error(method, url, status, response_headers, text)
        try:
            data = json.loads(text) if text else None
        except ValueError as exc:
            raise GitHubError(f"{method} {url}: {status} with a body that is not JSON", status=status) from exc
        return _Reply(status, response_headers, data)

    def _list(self, path: str) -> Iterator[tuple[str, Any]]:
        """Every item of a paginated list endpoint, with its path for error messages."""
        reply = self._request("GET", path, params={"per_page": self.per_page})
        yield from self._pages(reply, path.strip("/"))

    def _items(self, path: str, count: int | None, parse: Callable[[object, str], _T]) -> list[_T]:
        if count == 0:
            return []  # the pull request says this list is empty: spare the call
        return [parse(item, item_path) for item_path, item in self._list(path)]

    def _pages(self, reply: _Reply, name: str) -> Iterator[tuple[str, Any]]:
        index = 0
        while True:
            if not isinstance(reply.data, list):
                raise PayloadError(f"{name}: expected an array, got {json_type(reply.data)}")
            for item in reply.data:
                yield f"{name}[{index}]", item
                index += 1
            next_url = self._next_url(reply.headers)
            if next_url is None:
                return
            reply = self._request("GET", next_url)

    def _next_url(self, headers: Mapping[str, Any]) -> str | None:
        """The `rel="next"` target of the RFC 5988 Link header, if it points at this GitHub."""
        link = headers.get("link")
        if not isinstance(link, str):
            return None
        for part in link.split(","):
            target, _, params = part.partition(";")
            if any(param.strip().replace(" ", "") == 'rel="next"' for param in params.split(";")):
                url = target.strip().removeprefix("<").removesuffix(">")
                if _origin(url) != self._origin:
                    # Never send the token to another host.
                    raise GitHubError(f"pagination link points away from {self._origin}: {url}")
                return url
        return None

    def _note_rate_limit(self, headers: Mapping[str, Any]) -> None:
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset = _number(headers.get("x-ratelimit-reset"))
        if remaining is not None:
            self.rate_limit_remaining = int(remaining)
            resource = rate_limit_resource(headers.get("x-ratelimit-resource"))
            VCS_RATE_LIMIT_REMAINING.labels("github", self._origin[1], resource).set(self.rate_limit_remaining)
        if reset is not None:
            self.rate_limit_reset = dt.datetime.fromtimestamp(int(reset), tz=dt.UTC)

    def _error(self, method: str, url: str, status: int, headers: Mapping[str, Any], text: str) -> GitHubError:
        message = _message(text)
        described = f"{method} {url}: {status} {message}".strip()
        retry_after = _retry_after(headers.get("retry-after"))
        exhausted = _number(headers.get("x-ratelimit-remaining")) == 0
        secondary_or_primary = retry_after is not None or exhausted or Requester.isRateLimitError(message)
        if status == 429 or (status == 403 and secondary_or_primary):
            if retry_after is None and exhausted and self.rate_limit_reset is not None:
                retry_after = self.rate_limit_reset.timestamp() - time.time()
            if retry_after is None:
                retry_after = _SECONDARY_LIMIT_WAIT
            return RateLimited(max(retry_after, 1.0), described, status=status)
        if status >= 500:
            return GitHubUnavailable(described, status=status)
        if status == 404:
            return GitHubNotFound(described, status=status)
        return GitHubError(described, status=status)


def _assemble(
    pull: PullRequestRecord,
    raw_reviews: list[tuple[str, Any]],
    diff_comments: list[CommentRecord],
    conversation: list[CommentRecord],
    commits: list[CommitRecord],
    files: list[ChangedFileRecord],
    commit_count: int | None,
) -> PullRequestDetails:
    """The details as the policy reads them, whichever API the parts came from."""
    per_review = Counter(comment.review_external_id for comment in diff_comments if comment.review_external_id)
    reviews = []
    for path, item in raw_reviews:
        if isinstance(item, Mapping) and item.get("state") == "PENDING":
            continue  # a draft review, visible to its author only: not given yet
        review = parse_review(item, path)
        reviews.append(replace(review, comment_count=per_review[review.external_id]))
    reviews.sort(key=lambda review: (review.submitted_at, review.external_id))
    comments = sorted(diff_comments + conversation, key=lambda comment: (comment.created_at, comment.external_id))
    return PullRequestDetails(
        pull,
        reviews,
        comments,
        commits,
        files,
        files_incomplete=_files_incomplete(pull, files),
        commits_incomplete=_commits_incomplete(commit_count, commits),
    )


def _owner_and_name(full_path: str) -> tuple[str, str]:
    _repo_path(full_path)  # the same check
    owner, _, name = full_path.strip("/").partition("/")
    return owner, name


def _graphql_obj(data: Any, key: str) -> Mapping[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, Mapping):
        raise GitHubNotFound(f"GraphQL: no {key} in the answer", status=404)
    return value


def _file_text(data: Any, path: str) -> str:
    contents = JsonReader(data, f"contents/{path}")
    if contents.opt_str("type") != "file":
        raise PayloadError(f"contents/{path}: expected a file, got {contents.opt_str('type') or 'none'}")
    if contents.opt_str("encoding") != "base64":
        raise PayloadError(f"contents/{path}: unexpected encoding {contents.raw('encoding')!r}")
    return base64.b64decode(contents.req_str("content")).decode("utf-8", errors="replace")


def _repo_path(full_path: str) -> str:
    owner, slash, name = full_path.strip("/").partition("/")
    if not owner or not slash or not name or "/" in name:
        raise ValueError(f"a GitHub repository is 'owner/name', not {full_path!r}")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _count(data: object, key: str) -> int | None:
    return JsonReader(data).opt_int(key)


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _retry_after(value: Any) -> float | None:
    """Retry-After is delta-seconds (what GitHub sends) or an HTTP date."""
    seconds = _number(value)
    if seconds is not None or not isinstance(value, str):
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() - time.time()


def _message(text: str) -> str:
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return text[:200]
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        return str(data["message"])
    return ""


def _commits_incomplete(count: int | None, commits: list[CommitRecord]) -> str:
    """GitHub's commits list stops at 250 entries; the pull request's own count says how many there are. A
    commit left out may be someone's contribution, so who contributed is not known."""
    if count is None:
        return "GitHub did not say how many commits the pull request has"
    if len(commits) < count:
        return f"GitHub listed {len(commits):,} of {count:,} commits (it lists at most 250)"
    return ""


def _files_incomplete(pull: PullRequestRecord, files: list[ChangedFileRecord]) -> str:
    """GitHub's files list stops at 3,000 entries; the pull request's own count says how many there are."""
    if pull.changed_files is None:
        return "GitHub did not say how many files the pull request changes"
    if len(files) < pull.changed_files:
        return f"GitHub listed {len(files):,} of {pull.changed_files:,} changed files (it lists at most 3,000)"
    return ""
