"""A synchronous GitLab REST client for sync, over python-gitlab, returning provider-neutral records.

Works against any GitLab (gitlab.com or self-managed): give it the instance URL and a token.

Rate limits and failures are Tandem's to handle, not python-gitlab's: its own retries (on 429 and on 5xx) are
switched off, so a Celery task sees `RateLimited(retry_after)` or `GitLabUnavailable` at once and schedules its
own retry. Every HTTP response is counted in `api_calls`, and the `RateLimit-*` headers of the last one are kept.

A client is meant for one task at a time (not thread-safe): it remembers per project what it learnt about the
server (project record, whether `approval_state` exists there, whether keyset pagination is offered).

Decisions worth knowing:

- Listing asks for `order_by=updated_at&sort=desc`. With offset pagination, a merge request updated while we page
  jumps to page one: this run may miss it, but its new `updated_at` is above any watermark this run can produce,
  so the next run fetches it. Ascending order would instead push an *unchanged* merge request out of reach.
  `updated_after` is GitLab's "on or after": the caller skips merge requests whose `updated_at` it already has.
- Pagination: keyset when the server offers it, else offset. GitLab answers 405 to keyset pagination for merge
  requests (only some resources have it); with `pagination="auto"` the first 405 switches this client to offset.
- Additions and deletions are counted from the diffs' `+`/`-` lines (GitLab's merge request has no such
  figures). Diffs GitLab truncates (too large, over the instance's diff limits) count what GitLab returns.
- Approvals come from `approval_state` (Premium) and fall back to `approvals` when that answers 403/404 (Free
  tier; remembered per project) or lists no rule at all (it would list no approver either). The
  approval time is `approved_at` when GitLab gives it, else the "approved this merge request" system note, else
  the merge request's `updated_at`. The commit an approval was given on is the head, unless a push ("added N
  commits" system note) came after the approval: then the newest commit committed before the approval (none
  found: no sha, and the policy then tells stale from not by the last push, the newest such note).
- `merge_commit_sha` is the merge commit, else the squash commit (a fast-forward squash has only the latter).
- Posting a commit status GitLab already holds in a running state (pending → pending) is a no-op: GitLab answers
  400 "Cannot transition status", which this client swallows so that a repeated task stays idempotent.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import gitlab
import httpx
import requests
from gitlab.exceptions import GitlabError
from gitlab.utils import EncodedId
from gql.transport.exceptions import TransportError, TransportQueryError

from reviews.instruments import VCS_API_CALLS, VCS_RATE_LIMIT_REMAINING, rate_limit_resource
from reviews.integrations.endpoints import endpoint_template
from reviews.integrations.gitlab import (
    PayloadReader,
    approval_external_id,
    clean_email,
    is_draft,
    merge_request_state,
    user_record,
)
from reviews.integrations.http_pool import session_on_process_pool
from reviews.integrations.records import (
    ChangedFileRecord,
    CommentRecord,
    CommitRecord,
    CompareRead,
    FileRead,
    GitUserRecord,
    PayloadError,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    StatusState,
    UserRecord,
    patch_id,
)
from reviews.integrations.trailers import co_authors

__all__ = [
    "GitLabClient",
    "GitLabError",
    "GitLabUnavailable",
    "MergeRequestDetails",
    "RateLimited",
    "count_diff_lines",
]

Pagination = Literal["auto", "keyset", "offset"]

# Tandem's verdicts as GitLab commit-status states. GitLab has no "error": a policy that could not be evaluated
# must not let the merge request through, so it is failed, with the reason in the description.
_STATUS_STATES: dict[StatusState, str] = {
    "success": "success",
    "pending": "pending",
    "failure": "failed",
    "error": "failed",
}
_DEFAULT_RETRY_AFTER = 60.0
_DIFF_HEADER = re.compile(
    r"^(?:diff --git |index |--- |\+\+\+ |new file mode|deleted file mode|old mode|new mode|similarity index"
    r"|dissimilarity index|rename from|rename to|copy from|copy to|Binary files)"
)
_APPROVED_NOTE = "approved this merge request"
_PUSH_NOTE = re.compile(r"^added \d+ (?:new )?commits?\b")


class GitLabError(Exception):
    """GitLab answered with an error (or could not be reached). `status_code` is None when nothing answered."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RateLimited(GitLabError):
    """429: try again in `retry_after` seconds (from Retry-After, else RateLimit-Reset)."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"GitLab rate limit hit; retry after {retry_after:.0f}s", status_code=429)
        self.retry_after = retry_after


class GitLabUnavailable(GitLabError):
    """5xx, a timeout or a refused connection: worth retrying later."""


@dataclass(frozen=True)
class MergeRequestDetails:
    pull_request: PullRequestRecord  # with additions, deletions and changed_files counted from the diffs
    reviews: list[ReviewRecord]  # the approvals standing now, one per approver
    comments: list[CommentRecord]  # every note, system notes flagged
    commits: list[CommitRecord]
    files: list[ChangedFileRecord]
    files_not_ready: str = ""  # why GitLab cannot list the files for this head yet: fetch again later
    files_incomplete: str = ""  # why `files` is not the whole change (GitLab's diff limits)


class _Gitlab(gitlab.Gitlab):
    """python-gitlab with its own 429 and 5xx retries switched off: Tandem's Celery task decides."""

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.update(obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
        return super().http_request(verb, path, *args, **kwargs)


class GitLabClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        per_page: int = 100,
        pagination: Pagination = "auto",
        timeout: float = 30.0,
    ) -> None:
        self.api_calls = 0
        self.rate_limit_remaining: int | None = None
        self.rate_limit_reset: dt.datetime | None = None
        self._last_headers: Mapping[str, str] = {}
        self._per_page = max(1, min(per_page, 100))  # GitLab caps per_page at 100
        self._pagination = pagination
        self._repositories: dict[str, RepositoryRecord] = {}
        self._approval_state: dict[str, bool] = {}
        self._diffs_endpoint = True

        session = session_on_process_pool(requests.Session())
        session.hooks["response"].append(self._on_response)
        self._gl = _Gitlab(
            url,
            private_token=token,
            per_page=self._per_page,
            timeout=timeout,
            retry_transient_errors=False,
            keep_base_url=True,  # self-managed GitLab behind a proxy may advertise another host in its Link headers
            session=session,
        )
        self.graphql_calls = 0  # the GraphQL calls among api_calls (GitLab throttles them like REST calls)
        self._graphql_url, self._token, self._timeout = url, token, timeout
        self._graphql_http: httpx.Client | None = None
        self._graphql_client: gitlab.GraphQL | None = None

    # --- public API -------------------------------------------------------------------------------------------

    def project(self, full_path: str) -> RepositoryRecord:
        with self._translate():
            data = self._gl.projects.get(full_path).asdict()
        record = repository_from_api(PayloadReader(data, "project"))
        self._repositories[full_path] = record
        return record

    def know_project(self, record: RepositoryRecord) -> None:
        """The project as Tandem stored it: listing its merge requests then needs no call for it."""
        self._repositories[record.full_path] = record

    def close(self) -> None:
        if self._graphql_http is not None:
            self._graphql_http.close()

    def merge_requests_since(self, full_path: str, since: dt.datetime | None) -> Iterator[PullRequestRecord]:
        """Merge requests updated on or after `since` (all of them when None), newest first, fetched page by page.

        Records from a list call carry no additions/deletions/changed_files (None): `merge_request_details` does.
        """
        repository = self._repository(full_path)
        params: dict[str, Any] = {"state": "all", "order_by": "updated_at", "sort": "desc", "per_page": self._per_page}
        if since is not None:
            params["updated_after"] = _isoformat(since)
        with self._translate():
            for index, item in enumerate(self._list_merge_requests(full_path, params)):
                yield pull_request_from_api(PayloadReader(item.asdict(), f"merge_requests[{index}]"), repository)

    def merge_request_details(
        self, full_path: str, iid: int, *, pull_request: PullRequestRecord | None = None
    ) -> MergeRequestDetails:
        """Everything the policy needs about one merge request.

        Pass the record `merge_requests_since` just yielded as `pull_request` to keep the listed fields; the merge
        request itself is fetched all the same, for whether its diff is ready.
        """
        repository = self._repository(full_path)
        project = self._lazy_project(full_path)
        with self._translate():
            mr = project.mergerequests.get(iid, lazy=True)
            # Always asked for: only the single merge request says whether its diff is ready for its head.
            data = project.mergerequests.get(iid).asdict()
            if pull_request is None:
                pull_request = pull_request_from_api(PayloadReader(data, "merge_request"), repository)
            notes = self._rest_notes(mr)
            commits = self._rest_commits(mr)
            files = self._changed_files(full_path, mr)
            approvals = self._approvals(full_path, mr)
        return _details(pull_request, notes, commits, files, approvals, data)

    def merge_requests_details(
        self, full_path: str, listed: Sequence[PullRequestRecord], *, batch: int = 50
    ) -> Iterator[MergeRequestDetails]:
        """The details of merge requests a listing gave, `batch` to a GraphQL call: its notes, approvals and whether
        its diff is ready come from GraphQL, and the listed record is kept as it is. GraphQL lacks a diff's text and
        the file's status (added, renamed...) and a commit's parents: the diffs and commits are asked from REST,
        and so is a list longer than GraphQL's page."""
        for start in range(0, len(listed), batch):
            chunk = listed[start : start + batch]
            variables = {"fullPath": full_path, "iids": [str(pull.number) for pull in chunk], "first": len(chunk)}
            data = self._graphql(_MERGE_REQUESTS_QUERY, variables)
            project = data.get("project") if isinstance(data, Mapping) else None
            if not isinstance(project, Mapping):
                raise GitLabError(f"GitLab GraphQL: no project {full_path}", status_code=404)
            by_iid = {node.req_id("iid"): node for node in _nodes(PayloadReader(project, "project"), "mergeRequests")}
            for pull_request in chunk:
                node = by_iid.get(str(pull_request.number))
                if node is None:
                    raise GitLabError(f"GitLab GraphQL: no merge request !{pull_request.number}", status_code=404)
                yield self._graphql_details(full_path, pull_request, node)

    def _graphql_details(
        self, full_path: str, pull_request: PullRequestRecord, node: PayloadReader
    ) -> MergeRequestDetails:
        """One GraphQL merge request, read through `PayloadReader` (a value of the wrong type is a PayloadError
        naming its path), turned into the REST shapes the REST converters read."""
        mr = self._lazy_project(full_path).mergerequests.get(pull_request.number, lazy=True)
        with self._translate():
            if _more(node, "notes"):
                notes = self._rest_notes(mr)
            else:
                notes = [PayloadReader(_rest_note(note), note.path) for note in _nodes(node, "notes")]
            commits = self._rest_commits(mr)
            files = self._changed_files(full_path, mr)
            if _more(node, "approvedBy"):
                approvals = self._approvals(full_path, mr)
            else:
                approvals = [
                    (user_record(PayloadReader(_rest_user(user), user.path)), None)
                    for user in _nodes(node, "approvedBy")
                ]
        refs = node.opt_obj("diffRefs")
        file_count = node.opt_int("diffStatsSummary", "fileCount")
        data = {
            "sha": pull_request.head_sha,
            "diff_refs": {"head_sha": refs.raw("headSha")} if refs is not None else None,
            "detailed_merge_status": node.opt_str("detailedMergeStatus").lower(),
            # As REST's changes_count reads: "1000+" when GitLab listed fewer files than the diff has.
            "changes_count": f"{len(files)}+" if _more_files(file_count, files) else str(len(files)),
        }
        return _details(pull_request, notes, commits, files, approvals, data)

    def _rest_notes(self, mr: Any) -> list[PayloadReader]:
        return [
            PayloadReader(note.asdict(), f"notes[{index}]")
            for index, note in enumerate(
                mr.notes.list(iterator=True, sort="asc", order_by="created_at", per_page=self._per_page)
            )
        ]

    def _rest_commits(self, mr: Any) -> list[CommitRecord]:
        return [
            commit_from_api(PayloadReader(commit.asdict(), f"commits[{index}]"))
            for index, commit in enumerate(mr.commits(per_page=self._per_page))
        ]

    def _graphql(self, query: str, variables: Mapping[str, Any]) -> Any:
        """One GraphQL call through python-gitlab's client; errors as the REST path raises them."""
        try:
            with self._translate():
                return self._graphql_made().execute(query, variable_values=dict(variables))
        except TransportQueryError as error:
            raise GitLabError(f"GitLab GraphQL: {error.errors or error}") from error
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
            raise GitLabUnavailable(f"GitLab unreachable: {error}") from error
        except (TransportError, httpx.HTTPError) as error:
            raise GitLabError(f"GitLab GraphQL failed: {error}") from error

    def _graphql_made(self) -> gitlab.GraphQL:
        """python-gitlab's GraphQL client, made at the first GraphQL call. It brings its own HTTP client (httpx),
        counted, authenticated and left without retries as the REST path is; making one loads the CA bundle (about
        30 ms of CPU), which a client that only reads over REST or posts a status never needs."""
        if self._graphql_client is None:
            self._graphql_http = httpx.Client(
                headers={"Authorization": f"Bearer {self._token}", "User-Agent": "Tandem"},
                timeout=self._timeout,
                event_hooks={"response": [self._on_graphql_response]},
            )
            self._graphql_client = gitlab.GraphQL(
                self._graphql_url, token=self._token, client=self._graphql_http, max_retries=0, obey_rate_limit=False
            )
        return self._graphql_client

    def _on_graphql_response(self, response: httpx.Response) -> None:
        VCS_API_CALLS.labels("gitlab", "POST", "/graphql", str(response.status_code)).inc()
        self.graphql_calls += 1
        self._count(response.headers)

    def compare(self, full_path: str, base_sha: str, head_sha: str, etag: str = "") -> CompareRead:
        """The commits reachable from `head_sha` and not from `base_sha`, in GitLab's order (oldest first). GitLab's
        API ignores If-None-Match, so `etag` is not sent: every compare is read whole."""
        with self._translate():
            result = self._lazy_project(full_path).repository_compare(base_sha, head_sha)
        compared = PayloadReader(result, "compare")
        return CompareRead(tuple(commit_from_api(commit) for commit in compared.req_objs("commits")))

    def compare_files(self, full_path: str, base: str, head: str) -> list[ChangedFileRecord]:
        """The files of the change from the merge base of `base` and `head` to `head`, with their diffs: one call."""
        with self._translate():
            result = self._lazy_project(full_path).repository_compare(base, head)
        compared = PayloadReader(result, "compare")
        return [changed_file_from_api(diff) for diff in compared.req_objs("diffs")]

    def post_status(
        self,
        full_path: str,
        sha: str,
        *,
        state: StatusState,
        description: str,
        target_url: str,
        name: str = "tandem/review-policy",
        ref: str = "",
    ) -> None:
        """Report a verdict as a commit status. `ref` pins it to a branch (GitLab guesses one when left out)."""
        data = {"state": _STATUS_STATES[state], "name": name, "description": description[:255]}
        if target_url:
            data["target_url"] = target_url
        if ref:
            data["ref"] = ref
        commit = self._lazy_project(full_path).commits.get(sha, lazy=True)
        with self._translate():
            try:
                commit.statuses.create(data)
            except GitlabError as error:
                if state != "pending" or not _refused_transition(error):
                    raise
                self._keep_pending_description_current(commit, data)

    def reviewers_add(self, full_path: str, iid: int, user_ids: Sequence[int]) -> None:
        """Add these users (GitLab ids) to the merge request's reviewers: `reviewer_ids` replaces the list, so the
        current reviewers are read first and kept."""
        with self._translate():
            merge_request = self._lazy_project(full_path).mergerequests.get(iid)
            current = [int(user["id"]) for user in merge_request.attributes.get("reviewers") or []]
            wanted = current + [user_id for user_id in user_ids if user_id not in current]
            if wanted != current:
                merge_request.reviewer_ids = wanted
                merge_request.save()

    def first_file(self, full_path: str, paths: tuple[str, ...], ref: str, known: FileRead | None = None) -> FileRead:
        """The first of `paths` that exists on `ref`, through the repository files API; the location read last time
        is asked for with its ETag, and a 304 says it is unchanged."""
        for path in paths:
            headers = {"If-None-Match": known.etag} if known and known.path == path and known.etag else {}
            url = f"/projects/{EncodedId(full_path)}/repository/files/{EncodedId(path)}"
            try:
                with self._translate():
                    response = self._file_request(url, ref, headers)
            except GitLabError as error:
                if error.status_code == 404:
                    continue
                raise
            if response is None:
                return FileRead(path, etag=known.etag if known else "", unchanged=True)
            data = PayloadReader(response.json(), f"files/{path}")
            if data.req_str("encoding") != "base64":
                raise PayloadError(f"files/{path}: unexpected encoding {data.req_str('encoding')!r}")
            text = base64.b64decode(data.req_str("content")).decode("utf-8", errors="replace")
            return FileRead(path, text, response.headers.get("ETag", ""))
        return FileRead("")

    def _file_request(self, url: str, ref: str, headers: dict[str, str]) -> requests.Response | None:
        """The file's response, or None when GitLab answered 304 Not Modified."""
        try:
            return self._gl.http_request("GET", url, query_data={"ref": ref}, extra_headers=headers)
        except GitlabError as error:
            if error.response_code == 304:
                return None
            raise

    def _keep_pending_description_current(self, commit: Any, data: dict[str, str]) -> None:
        """GitLab updates an unfinished status in place but refuses pending -> pending (400 "Cannot transition
        status"), so a new reason for waiting would never show. Move it to running, still unfinished, with the new
        description; once running, finish it as canceled and start a new pending status (a post after a finished
        status starts a new one). Anything GitLab still refuses is raised: the verdict is not reported."""
        try:
            commit.statuses.create({**data, "state": "running"})
            return
        except GitlabError as error:
            if not _refused_transition(error):
                raise
        commit.statuses.create({**data, "state": "canceled", "description": "Superseded by a newer verdict"})
        commit.statuses.create(data)

    # --- internals --------------------------------------------------------------------------------------------

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = str(response.request.method or "GET")
        VCS_API_CALLS.labels("gitlab", method, endpoint_template(response.url), str(response.status_code)).inc()
        self._count(response.headers)

    def _count(self, headers: Mapping[str, str]) -> None:
        self.api_calls += 1
        self._last_headers = headers
        remaining = headers.get("RateLimit-Remaining", "")
        if remaining.isdigit():
            self.rate_limit_remaining = int(remaining)
            resource = rate_limit_resource(headers.get("RateLimit-Name"))
            host = urlsplit(self._gl.url).netloc
            VCS_RATE_LIMIT_REMAINING.labels("gitlab", host, resource).set(self.rate_limit_remaining)
        reset = headers.get("RateLimit-Reset", "")
        if reset.isdigit():
            self.rate_limit_reset = dt.datetime.fromtimestamp(int(reset), tz=dt.UTC)

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """python-gitlab and requests errors → GitLabError, RateLimited, GitLabUnavailable."""
        try:
            yield
        except GitlabError as error:
            code = error.response_code
            message = f"GitLab answered {code}: {error.error_message}"
            if code == 429:
                raise RateLimited(self._retry_after(), message) from error
            if code is not None and code >= 500:
                raise GitLabUnavailable(message, status_code=code) from error
            raise GitLabError(message, status_code=code) from error
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            _unreachable_count(error)
            raise GitLabUnavailable(f"GitLab unreachable: {error}") from error
        except requests.RequestException as error:
            raise GitLabError(f"GitLab request failed: {error}") from error

    def _retry_after(self) -> float:
        headers = self._last_headers
        value = headers.get("Retry-After", "").strip()
        if value.isdigit():
            return float(value)
        if value:
            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, (email.utils.parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds())
        reset = headers.get("RateLimit-Reset", "").strip()
        if reset.isdigit():
            return max(0.0, int(reset) - dt.datetime.now(dt.UTC).timestamp())
        return _DEFAULT_RETRY_AFTER

    def _repository(self, full_path: str) -> RepositoryRecord:
        record = self._repositories.get(full_path)
        return record if record is not None else self.project(full_path)

    def _lazy_project(self, full_path: str) -> Any:
        return self._gl.projects.get(full_path, lazy=True)  # lazy: no request, only the path

    def _list_merge_requests(self, full_path: str, params: dict[str, Any]) -> Any:
        merge_requests = self._lazy_project(full_path).mergerequests
        if self._pagination != "offset":
            try:
                return merge_requests.list(iterator=True, pagination="keyset", **params)
            except GitlabError as error:
                if self._pagination == "keyset" or error.response_code != 405:
                    raise
                self._pagination = "offset"  # GitLab: "Keyset pagination is not yet available for this type"
        return merge_requests.list(iterator=True, **params)

    def _changed_files(self, full_path: str, mr: Any) -> list[ChangedFileRecord]:
        if self._diffs_endpoint:
            path = f"/projects/{EncodedId(full_path)}/merge_requests/{mr.encoded_id}/diffs"
            try:
                diffs = self._gl.http_list(path, iterator=True, per_page=self._per_page)
                return [changed_file_from_api(PayloadReader(diff, f"diffs[{i}]")) for i, diff in enumerate(diffs)]
            except GitlabError as error:
                if error.response_code != 404:
                    raise
                self._diffs_endpoint = False  # GitLab before 15.7 has no /diffs: the deprecated /changes then
        changes = PayloadReader(mr.changes(), "changes")
        return [changed_file_from_api(change) for change in changes.req_objs("changes")]

    def _approvals(self, full_path: str, mr: Any) -> list[tuple[UserRecord, dt.datetime | None]]:
        """(approver, approved_at when GitLab says) for every approval standing now."""
        if self._approval_state.get(full_path, True):
            try:
                state = PayloadReader(mr.approval_state.get().asdict(), "approval_state")
            except GitlabError as error:
                if error.response_code not in (403, 404):
                    raise
                self._approval_state[full_path] = False  # Free tier: only /approvals
            else:
                rules = state.req_objs("rules")
                # Without any rule, approval_state lists no approvers at all, yet approvals may stand: ask /approvals.
                if rules:
                    approvers: dict[str, UserRecord] = {}
                    for rule in rules:
                        for user in rule.opt_objs("approved_by") or []:
                            record = user_record(user)
                            approvers.setdefault(record.external_id or record.login, record)
                    return [(approver, None) for approver in approvers.values()]
        approvals = PayloadReader(mr.approvals.get().asdict(), "approvals")
        return [
            (user_record(entry.req_obj("user")), entry.opt_time("approved_at"))
            for entry in approvals.opt_objs("approved_by") or []
        ]


def _details(
    pull_request: PullRequestRecord,
    notes: list[PayloadReader],
    commits: list[CommitRecord],
    files: list[ChangedFileRecord],
    approvals: list[tuple[UserRecord, dt.datetime | None]],
    data: Mapping[str, Any],
) -> MergeRequestDetails:
    """The details as the policy reads them, whichever API the parts came from. `data` holds the merge request's
    `sha`, `diff_refs`, `detailed_merge_status` and `changes_count`."""
    comments = [comment_from_api(note) for note in notes]
    reviews = _approval_reviews(approvals, comments, commits, pull_request)
    pull_request = replace(
        pull_request,
        pushed_at=_last_push(comments),
        additions=sum(file.additions for file in files),
        deletions=sum(file.deletions for file in files),
        changed_files=len(files),
    )
    return MergeRequestDetails(
        pull_request=pull_request,
        reviews=reviews,
        comments=comments,
        commits=commits,
        files=files,
        files_not_ready=diff_not_ready(PayloadReader(data, "merge_request")),
        files_incomplete=diff_incomplete(PayloadReader(data, "merge_request"), len(files)),
    )


_USER_FIELDS = "id username name"
_MERGE_REQUESTS_QUERY = f"""
query MergeRequestFacts($fullPath: ID!, $iids: [String!], $first: Int!) {{
  project(fullPath: $fullPath) {{
    mergeRequests(iids: $iids, first: $first) {{
      nodes {{
        iid
        detailedMergeStatus
        diffRefs {{ headSha }}
        diffStatsSummary {{ fileCount }}
        approvedBy(first: 100) {{ pageInfo {{ hasNextPage }} nodes {{ {_USER_FIELDS} }} }}
        notes(first: 100) {{
          pageInfo {{ hasNextPage }}
          nodes {{ id body system createdAt author {{ {_USER_FIELDS} }} position {{ newPath oldPath }} }}
        }}
      }}
    }}
  }}
}}
"""


def _more_files(file_count: int | None, files: list[ChangedFileRecord]) -> bool:
    return file_count is not None and file_count > len(files)


def _nodes(node: PayloadReader, key: str) -> list[PayloadReader]:
    """The nodes of a GraphQL connection (a node GitLab cannot give is null: left out)."""
    connection = node.opt_obj(key)
    if connection is None:
        return []
    path = connection.key_path("nodes")
    items = connection.opt_list("nodes") or []
    return [PayloadReader(item, f"{path}[{index}]") for index, item in enumerate(items) if item is not None]


def _more(node: PayloadReader, key: str) -> bool:
    """Whether the connection holds more than its page."""
    return node.opt_bool(key, "pageInfo", "hasNextPage")


def _global_id(value: Any) -> Any:
    """GraphQL's "gid://gitlab/Note/12" is REST's 12."""
    if isinstance(value, str) and value.startswith("gid://"):
        tail = value.rsplit("/", 1)[-1]
        return int(tail) if tail.isdigit() else value
    return value


def _rest_user(user: PayloadReader) -> dict[str, Any]:
    return {"id": _global_id(user.raw("id")), "username": user.raw("username"), "name": user.raw("name")}


def _rest_note(note: PayloadReader) -> dict[str, Any]:
    """A GraphQL note in REST's shape; the values are checked by the REST converters (`comment_from_api`)."""
    position = note.opt_obj("position")
    author = note.opt_obj("author")
    return {
        "id": _global_id(note.raw("id")),
        "body": note.raw("body"),
        "system": note.raw("system"),
        "created_at": note.raw("createdAt"),
        "author": _rest_user(author) if author is not None else None,
        "type": "DiffNote" if position is not None else None,
        "position": (
            {"new_path": position.raw("newPath"), "old_path": position.raw("oldPath")} if position is not None else None
        ),
    }


def _refused_transition(error: GitlabError) -> bool:
    return error.response_code == 400 and "Cannot transition status" in str(error.error_message)


def diff_not_ready(mr: PayloadReader) -> str:
    """GitLab computes a merge request's diff after a push; until then its diff_refs lag behind (or are null)
    and the diffs list is empty or belongs to the previous head."""
    head = mr.opt_str("diff_refs", "head_sha")
    if mr.opt_str("detailed_merge_status") == "preparing" or not head or head != mr.opt_str("sha"):
        return "GitLab is still preparing the merge request's diff"
    return ""


def diff_incomplete(mr: PayloadReader, listed: int) -> str:
    """Over GitLab's diff limits `changes_count` reads like "1000+" and the list stops short."""
    count = str(mr.raw("changes_count") or "")
    if count.endswith("+"):
        return f"GitLab listed {listed:,} of {count} changed files"
    return ""


# --- API objects → records ----------------------------------------------------------------------------------------


def repository_from_api(project: PayloadReader) -> RepositoryRecord:
    return RepositoryRecord(
        provider="gitlab",
        external_id=project.req_id("id"),
        full_path=project.req_str("path_with_namespace"),
        default_branch=project.opt_str("default_branch"),
        web_url=project.opt_str("web_url"),
    )


def pull_request_from_api(mr: PayloadReader, repository: RepositoryRecord) -> PullRequestRecord:
    author = mr.opt_obj("author")
    merged_by = mr.opt_obj("merge_user") or mr.opt_obj("merged_by")
    diff_refs = mr.opt_obj("diff_refs")
    reviewers = mr.opt_objs("reviewers")
    labels = mr.opt_objs_or_texts("labels")
    return PullRequestRecord(
        repository=repository,
        number=mr.req_int("iid"),
        external_id=mr.req_id("id"),
        title=mr.req_str("title"),
        author=user_record(author) if author else None,
        state=merge_request_state(mr),
        created_at=mr.req_time("created_at"),
        updated_at=mr.req_time("updated_at"),
        body=mr.opt_str("description"),
        draft=is_draft(mr),
        base_ref=mr.req_str("target_branch"),
        head_ref=mr.req_str("source_branch"),
        head_sha=mr.opt_str("sha") or (diff_refs.opt_str("head_sha") if diff_refs else ""),
        merge_commit_sha=mr.opt_str("merge_commit_sha") or mr.opt_str("squash_commit_sha"),
        labels=tuple(labels) if labels is not None else None,
        web_url=mr.opt_str("web_url"),
        merged_at=mr.opt_time("merged_at"),
        closed_at=mr.opt_time("closed_at"),
        merged_by=user_record(merged_by) if merged_by and mr.opt_str("state") == "merged" else None,
        requested_reviewers=tuple(user_record(r) for r in reviewers) if reviewers is not None else None,
    )


def comment_from_api(note: PayloadReader) -> CommentRecord:
    position = note.opt_obj("position")
    path = (position.opt_str("new_path") or position.opt_str("old_path")) if position else ""
    return CommentRecord(
        external_id=note.req_id("id"),
        author=user_record(note.req_obj("author")),
        body=note.opt_str("body"),
        created_at=note.req_time("created_at"),
        kind="diff" if note.opt_str("type") == "DiffNote" or position else "conversation",
        is_system=note.opt_bool("system"),
        path=path,
    )


def commit_from_api(commit: PayloadReader) -> CommitRecord:
    message = commit.opt_str("message") or commit.opt_str("title")
    committer_name = commit.opt_str("committer_name")
    committer_email = clean_email(commit.opt_str("committer_email"))
    parents = commit.opt_list("parent_ids") or []
    return CommitRecord(
        sha=commit.req_str("id"),
        message=message,
        author=GitUserRecord(name=commit.opt_str("author_name"), email=clean_email(commit.opt_str("author_email"))),
        authored_at=commit.opt_time("authored_date") or commit.req_time("created_at"),
        committer=GitUserRecord(name=committer_name, email=committer_email)
        if committer_name or committer_email
        else None,
        committed_at=commit.opt_time("committed_date"),
        parents=tuple(str(parent) for parent in parents),
        co_authors=co_authors(message),
    )


def changed_file_from_api(diff: PayloadReader) -> ChangedFileRecord:
    additions, deletions = count_diff_lines(diff.opt_str("diff"))
    new_path = diff.req_str("new_path")
    old_path = diff.opt_str("old_path")
    if diff.opt_bool("new_file"):
        status = "added"
    elif diff.opt_bool("deleted_file"):
        status = "removed"
    elif diff.opt_bool("renamed_file"):
        status = "renamed"
    else:
        status = "modified"
    return ChangedFileRecord(
        path=new_path,
        additions=additions,
        deletions=deletions,
        status=status,
        previous_path=old_path if status == "renamed" else "",
        patch_id=patch_id(diff.opt_str("diff")) if diff.opt_str("diff") else "",
    )


def count_diff_lines(diff: str) -> tuple[int, int]:
    """(added, deleted) lines of one file's unified diff, as GitLab's diff view counts them.

    File headers (`--- a/x`, `+++ b/x`, `diff --git`, ...) before the first hunk are not changes; inside a hunk
    every `+`/`-` line is, even one whose content starts with `--`.
    """
    additions = deletions = 0
    in_hunk = False
    for line in diff.splitlines():
        if line.startswith("@@"):
            in_hunk = True
        elif not in_hunk and _DIFF_HEADER.match(line):
            continue
        elif line.startswith("+"):
            additions += 1
        elif line.startswith("-"):
            deletions += 1
    return additions, deletions


def _approval_reviews(
    approvals: list[tuple[UserRecord, dt.datetime | None]],
    comments: list[CommentRecord],
    commits: list[CommitRecord],
    pull_request: PullRequestRecord,
) -> list[ReviewRecord]:
    approval_notes: dict[str, dt.datetime] = {}
    push_times: list[dt.datetime] = []
    for comment in comments:
        if not comment.is_system:
            continue
        body = comment.body.strip()
        if body == _APPROVED_NOTE:
            # Notes come oldest first: the last one is the approval standing now.
            approval_notes[comment.author.external_id or comment.author.login] = comment.created_at
        elif _PUSH_NOTE.match(body):
            push_times.append(comment.created_at)

    reviews = []
    for approver, approved_at in approvals:
        submitted_at = approved_at or approval_notes.get(approver.external_id or approver.login)
        reviews.append(
            ReviewRecord(
                external_id=approval_external_id(approver),
                reviewer=approver,
                state="approved",
                submitted_at=submitted_at or pull_request.updated_at,
                commit_sha=_approved_sha(submitted_at, push_times, commits, pull_request.head_sha),
            )
        )
    return reviews


def _last_push(comments: list[CommentRecord]) -> dt.datetime | None:
    """When commits were last added, as GitLab's "added N commits" system notes say (None: no push since opening,
    as far as the notes go)."""
    pushes = [c.created_at for c in comments if c.is_system and _PUSH_NOTE.match(c.body.strip())]
    return max(pushes, default=None)


def _approved_sha(
    approved_at: dt.datetime | None, push_times: list[dt.datetime], commits: list[CommitRecord], head_sha: str
) -> str:
    if approved_at is None or not any(pushed > approved_at for pushed in push_times):
        return head_sha
    earlier = [c for c in commits if (c.committed_at or c.authored_at) <= approved_at]
    if not earlier:
        return ""
    return max(earlier, key=lambda c: c.committed_at or c.authored_at).sha


def _isoformat(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unreachable_count(error: requests.RequestException) -> None:
    request = error.request
    url = str(getattr(request, "url", "") or "")
    method = str(getattr(request, "method", "") or "GET")
    VCS_API_CALLS.labels("gitlab", method, endpoint_template(url), "unreachable").inc()
