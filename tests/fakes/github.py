"""A fake GitHub REST API over real HTTP on 127.0.0.1, for PyGithub-based clients in tests and benchmarks.

State lives in memory as small dataclasses; each response is rendered on request as the complete object GitHub
documents (the @octokit/openapi examples: pull-request, pull-request-simple, pull-request-review, review comment,
issue comment, commit, diff-entry, commit-comparison, status, full-repository, rate-limit-overview).

Like GitHub it paginates with RFC 5988 `Link` headers, sends an ETag on every response and answers
`If-None-Match` with 304 (which costs no rate limit), sends X-RateLimit-* headers and checks the token.
Failures and latency can be injected per path (`fail_next`, `delay_next`), and a request held until the test lets it
be answered (`hold_next`). With `register_app` it also serves a GitHub App (tests/fakes/github_app.py):
JWT-authenticated installation lookup and token minting, installation tokens, check runs.

    with FakeGitHub() as github:
        github.seed_repository(n_pulls=1000)
        client = GitHubClient(github.url, github.token)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tests.fakes import github_app, github_graphql

JSON = dict[str, Any]

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DEFAULT_REPO = "octocat/Hello-World"
_DOCS = "https://docs.github.com/rest"
_PRIMARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
_SECONDARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
_REVIEW_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"})
_STATUS_STATES = frozenset({"error", "failure", "pending", "success"})
MAX_LISTED_FILES = 3000  # GitHub: "Responses include a maximum of 3000 files."
_LABEL_DESCRIPTIONS = {
    "bug": "Something isn't working",
    "dependencies": "Pull requests that update a dependency file",
    "documentation": "Improvements or additions to documentation",
}
_SEED_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def _ts(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


def _node_id(kind: str, number: int) -> str:
    # GitHub's legacy global ids: base64("04:User1") == "MDQ6VXNlcjE=".
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def _made_up_patch(changed: _File) -> str:
    removed = "".join(f"-old line {i} of {changed.filename}\n" for i in range(changed.deletions))
    added = "".join(f"+new line {i} of {changed.filename}\n" for i in range(changed.additions))
    return f"@@ -1,{changed.deletions} +1,{changed.additions} @@\n{removed}{added}".rstrip("\n")


def _small_id(*parts: object) -> int:
    return int(_sha(*parts)[:8], 16)


# --- state -----------------------------------------------------------------------------------------------------


@dataclass
class _Commit:
    sha: str
    message: str
    author_name: str
    author_email: str
    author_login: str | None
    authored_at: dt.datetime
    committed_at: dt.datetime
    parents: list[str]
    # The committer, when not the author: GitHub's web-flow for "Update branch" merges, someone who rebased.
    committer_name: str | None = None
    committer_email: str | None = None
    committer_login: str | None = None


@dataclass
class _File:
    filename: str
    status: str
    additions: int
    deletions: int
    previous_filename: str | None = None
    patch: str | None = None  # None: made up from the counts


@dataclass
class _Review:
    id: int
    user: str
    state: str
    body: str
    commit_id: str
    submitted_at: dt.datetime | None


@dataclass
class _Comment:
    id: int
    user: str
    body: str
    created_at: dt.datetime
    path: str | None = None  # review (diff) comments only
    review_id: int | None = None
    commit_id: str = ""
    line: int = 1


@dataclass
class _Pull:
    id: int
    number: int
    title: str
    body: str
    author: str
    state: str  # open / closed
    merged: bool
    draft: bool
    base_ref: str
    head_ref: str
    head_sha: str
    base_sha: str
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    merged_at: dt.datetime | None
    merged_by: str | None
    merge_commit_sha: str
    labels: list[str]
    requested_reviewers: list[str]
    reviews: list[_Review] = field(default_factory=list)
    review_comments: list[_Comment] = field(default_factory=list)
    issue_comments: list[_Comment] = field(default_factory=list)
    commits: list[_Commit] = field(default_factory=list)
    files: list[_File] = field(default_factory=list)
    # Heads the pull request had before a push (`push`): head sha -> (the base it was on, its files then).
    former_heads: dict[str, tuple[str, list[_File]]] = field(default_factory=dict)


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    created_at: dt.datetime
    pulls: dict[int, _Pull] = field(default_factory=dict)
    history: list[_Commit] = field(default_factory=list)  # the default branch, oldest first
    history_index: dict[str, int] = field(default_factory=dict)
    statuses: list[JSON] = field(default_factory=list)
    contents: dict[tuple[str, str], str] = field(default_factory=dict)  # (branch, path) -> text

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # below the API prefix, without the query: "/repos/octocat/Hello-World/pulls"
    query: dict[str, str]
    headers: dict[str, str]
    status: int


@dataclass
class _Injection:
    path_substring: str
    times: int
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass
class Hold:
    """A request kept waiting by `hold_next`: `arrived` is set when it comes in; `released`, set by the test, lets it
    be answered."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Response:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _NotFound(Exception):
    pass


class _Invalid(Exception):
    pass


# --- the server ------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as GitHub; every response carries Content-Length
    # One buffered write per response and no Nagle: otherwise delayed ACKs add 40 ms to every request.
    wbufsize = -1
    disable_nagle_algorithm = True
    fake: FakeGitHub

    def do_GET(self) -> None:
        self.fake._serve(self)

    def do_POST(self) -> None:
        self.fake._serve(self)

    def do_PATCH(self) -> None:
        self.fake._serve(self)

    def do_DELETE(self) -> None:
        self.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeGitHub:
    """GitHub's REST API for one authenticated user, on a free port of 127.0.0.1.

    `prefix="/api/v3"` serves it the way GitHub Enterprise Server does. The socket is bound on construction, so
    `.url` is known before `start()`.
    """

    def __init__(
        self,
        *,
        token: str = "fake-token",
        login: str = "tandem-bot",
        prefix: str = "",
        rate_limit: int = 5000,
    ) -> None:
        self.token = token
        self.login = login
        self.prefix = prefix.rstrip("/")
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.rate_reset = int(time.time()) + 3600
        self.graphql_remaining = github_graphql.POINTS_PER_HOUR  # GraphQL has its own hourly budget, in points
        self.graphql_points_used = 0
        self.requests: list[RecordedRequest] = []
        self.statuses_posted: list[JSON] = []
        self.reviewer_requests: list[tuple[str, int, list[str]]] = []  # (repo, number, logins) per request
        # Reviews of custom deployment protection rules: {"repo", "run_id", "environment_name", "state", "comment"}.
        self.protection_rule_reviews: list[JSON] = []
        self.status_creators: list[str] = []  # who posted each: the token's user, or the App's bot
        self.app_state = github_app.AppState()
        self.status_arrivals: list[float] = []  # time.monotonic() of each, in the same order
        self._repos: dict[str, _Repo] = {}
        self._user_ids: dict[str, int] = {"octocat": 1}
        self._user_cache: dict[str, JSON] = {}
        self._repo_cache: dict[str, JSON] = {}
        self._failures: list[_Injection] = []
        self._delays: list[_Injection] = []
        self._holds: list[tuple[str, Hold]] = []
        self._lock = threading.RLock()
        self._clock = EPOCH
        self._next_id = 1000
        handler = type("FakeGitHubHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()
        host, port = self._server.server_address[:2]
        self.web_url = f"http://{host!s}:{port}"
        self.url = f"{self.web_url}{self.prefix}"

    # --- lifecycle ---

    def start(self) -> FakeGitHub:
        if self._thread is None:
            # A short poll interval keeps stop() quick (shutdown waits for the loop's next poll).
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-github", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- seeding ---

    def _tick(self, at: dt.datetime | None = None) -> dt.datetime:
        """A timestamp: `at` when given, else one minute after the latest so far (so it sorts newest)."""
        if at is None:
            self._clock += dt.timedelta(minutes=1)
            return self._clock
        self._clock = max(self._clock, at)
        return at

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _user_id(self, login: str) -> int:
        if login not in self._user_ids:
            self._user_ids[login] = 100 + len(self._user_ids)
        return self._user_ids[login]

    def add_repo(self, full_name: str = DEFAULT_REPO, *, id: int | None = None, default_branch: str = "main") -> JSON:
        """Add a repository (or answer the existing one) and return it as `GET /repos/{owner}/{repo}` would."""
        with self._lock:
            repo = self._repos.get(full_name)
            if repo is None:
                owner, name = full_name.split("/", 1)
                repo_id = id if id is not None else (1296269 if not self._repos else self._new_id())
                repo = _Repo(repo_id, owner, name, default_branch, created_at=EPOCH - dt.timedelta(days=365))
                self._repos[full_name] = repo
                base = self._new_commit(repo, "Initial commit", "octocat", EPOCH - dt.timedelta(days=365), None)
                self._append_history(repo, base)
            return self._full_repo_json(repo)

    def _repo(self, full_name: str) -> _Repo:
        if full_name not in self._repos:
            self.add_repo(full_name)
        return self._repos[full_name]

    def _pull(self, full_name: str, number: int) -> _Pull:
        return self._repo(full_name).pulls[number]

    def add_pull(
        self,
        repo: str = DEFAULT_REPO,
        *,
        number: int | None = None,
        title: str | None = None,
        body: str = "",
        author: str = "octocat",
        state: str = "open",
        draft: bool = False,
        base: str | None = None,
        head: str | None = None,
        head_sha: str | None = None,
        created_at: dt.datetime | None = None,
        updated_at: dt.datetime | None = None,
        closed_at: dt.datetime | None = None,
        merged_at: dt.datetime | None = None,
        merged_by: str | None = None,
        labels: Sequence[str] = (),
        requested_reviewers: Sequence[str] = (),
    ) -> JSON:
        """Add a pull request; `state` is open, closed or merged. Returns it as `GET .../pulls/{n}` would."""
        if state not in ("open", "closed", "merged"):
            raise ValueError(f"state must be open, closed or merged, not {state!r}")
        with self._lock:
            data = self._repo(repo)
            pull = self._make_pull(
                data,
                number=number if number is not None else max(data.pulls, default=0) + 1,
                title=title,
                body=body,
                author=author,
                state=state,
                draft=draft,
                base=base or data.default_branch,
                head=head,
                head_sha=head_sha,
                created_at=self._tick(created_at),
                updated_at=updated_at,
                closed_at=closed_at,
                merged_at=merged_at,
                merged_by=merged_by,
                labels=labels,
                requested_reviewers=requested_reviewers,
            )
            return self._pull_json(data, pull, full=True)

    def _make_pull(
        self,
        repo: _Repo,
        *,
        number: int,
        title: str | None,
        body: str,
        author: str,
        state: str,
        draft: bool,
        base: str,
        head: str | None,
        head_sha: str | None,
        created_at: dt.datetime,
        updated_at: dt.datetime | None,
        closed_at: dt.datetime | None,
        merged_at: dt.datetime | None,
        merged_by: str | None,
        labels: Iterable[str],
        requested_reviewers: Iterable[str],
    ) -> _Pull:
        updated = updated_at or merged_at or closed_at or created_at
        self._clock = max(self._clock, updated)
        if state == "merged":
            merged_at = merged_at or updated
            closed_at = closed_at or merged_at
            merged_by = merged_by or repo.owner
        elif state == "closed":
            closed_at = closed_at or updated
        pull = _Pull(
            id=self._new_id(),
            number=number,
            title=title or f"Change number {number}",
            body=body,
            author=author,
            state="open" if state == "open" else "closed",
            merged=state == "merged",
            draft=draft,
            base_ref=base,
            head_ref=head or f"feature-{number}",
            head_sha=head_sha or _sha(repo.full_name, number, "head"),
            base_sha=repo.history[-1].sha,
            created_at=created_at,
            updated_at=updated,
            closed_at=closed_at,
            merged_at=merged_at,
            merged_by=merged_by,
            merge_commit_sha=_sha(repo.full_name, number, "merge"),
            labels=list(labels),
            requested_reviewers=list(requested_reviewers),
        )
        repo.pulls[number] = pull
        return pull

    def update_pull(self, repo: str, number: int, **changes: Any) -> JSON:
        """Change fields of a pull request's state (title, body, draft, labels, head_sha...); bumps updated_at."""
        with self._lock:
            pull = self._pull(repo, number)
            for key, value in changes.items():
                if not hasattr(pull, key):
                    raise AttributeError(f"pull requests have no field {key!r}")
                setattr(pull, key, value)
            if "updated_at" not in changes:
                pull.updated_at = self._tick()
            return self._pull_json(self._repo(repo), pull, full=True)

    def push(
        self,
        repo: str,
        number: int,
        *,
        head_sha: str,
        files: Sequence[tuple[str, str]],
        base_sha: str | None = None,
    ) -> JSON:
        """A push to the pull request's branch: a new head with these (path, patch) files, on `base_sha` (a rebase
        onto a newer base) or the same base. The old head keeps its files and base, as compare shows them."""
        with self._lock:
            data = self._repo(repo)
            pull = data.pulls[number]
            pull.former_heads[pull.head_sha] = (pull.base_sha, list(pull.files))
            pull.files = [_File(path, "modified", 2, 1, None, patch) for path, patch in files]
            pull.head_sha = head_sha
            if base_sha is not None:
                pull.base_sha = base_sha
            pull.updated_at = self._tick()
            return self._pull_json(data, pull, full=True)

    def touch_pull(self, repo: str, number: int, *, at: dt.datetime | None = None) -> JSON:
        """Bump updated_at (to `at`, or to one minute after the newest timestamp so far)."""
        with self._lock:
            pull = self._pull(repo, number)
            pull.updated_at = self._tick(at)
            return self._pull_json(self._repo(repo), pull, full=True)

    def add_review(
        self,
        repo: str,
        number: int,
        *,
        reviewer: str = "hubot",
        state: str = "APPROVED",
        body: str = "",
        commit_id: str | None = None,
        submitted_at: dt.datetime | None = None,
    ) -> JSON:
        if state not in _REVIEW_STATES:
            raise ValueError(f"review state must be one of {sorted(_REVIEW_STATES)}, not {state!r}")
        with self._lock:
            data = self._repo(repo)
            pull = data.pulls[number]
            review = _Review(
                id=self._new_id(),
                user=reviewer,
                state=state,
                body=body,
                commit_id=commit_id or pull.head_sha,
                submitted_at=None if state == "PENDING" else self._tick(submitted_at),
            )
            pull.reviews.append(review)
            return self._review_json(data, pull, review)

    def add_review_comment(
        self,
        repo: str,
        number: int,
        *,
        user: str = "hubot",
        body: str = "Nit: rename this.",
        path: str = "README.md",
        review_id: int | None = None,
        line: int = 1,
        created_at: dt.datetime | None = None,
    ) -> JSON:
        with self._lock:
            data = self._repo(repo)
            pull = data.pulls[number]
            comment = _Comment(
                id=self._new_id(),
                user=user,
                body=body,
                created_at=self._tick(created_at),
                path=path,
                review_id=review_id,
                commit_id=pull.head_sha,
                line=line,
            )
            pull.review_comments.append(comment)
            return self._review_comment_json(data, pull, comment)

    def add_issue_comment(
        self,
        repo: str,
        number: int,
        *,
        user: str = "hubot",
        body: str = "Thanks!",
        created_at: dt.datetime | None = None,
    ) -> JSON:
        with self._lock:
            data = self._repo(repo)
            pull = data.pulls[number]
            comment = _Comment(id=self._new_id(), user=user, body=body, created_at=self._tick(created_at))
            pull.issue_comments.append(comment)
            return self._issue_comment_json(data, pull, comment)

    def add_commit(
        self,
        repo: str,
        number: int | None = None,
        *,
        sha: str | None = None,
        message: str = "Change things",
        author_login: str | None = "octocat",
        author_name: str | None = None,
        author_email: str | None = None,
        authored_at: dt.datetime | None = None,
        committer_login: str | None = None,
        committer_name: str | None = None,
        committer_email: str | None = None,
        parents: Sequence[str] | None = None,
    ) -> JSON:
        """Add a commit to the repository's history (linear), and to pull request `number` when given.

        A pull request's last commit becomes its head sha. `author_login=None` makes a commit whose e-mail
        GitHub cannot map to an account (`"author": null`). A committer other than the author, and parents other
        than the previous commit (a merge), may be given.
        """
        with self._lock:
            data = self._repo(repo)
            commit = self._new_commit(
                data, message, author_login, self._tick(authored_at), sha, author_name=author_name, email=author_email
            )
            commit.committer_login = committer_login
            commit.committer_name = committer_name
            commit.committer_email = committer_email
            if parents is not None:
                commit.parents = list(parents)
            self._append_history(data, commit)
            if number is not None:
                pull = data.pulls[number]
                pull.commits.append(commit)
                pull.head_sha = commit.sha
            return self._commit_json(data, commit)

    def _new_commit(
        self,
        repo: _Repo,
        message: str,
        login: str | None,
        at: dt.datetime,
        sha: str | None,
        *,
        author_name: str | None = None,
        email: str | None = None,
    ) -> _Commit:
        name = author_name or (login or "Someone").capitalize()
        noreply = f"{self._user_id(login)}+{login}@users.noreply.github.com" if login else "someone@example.com"
        address = email or noreply
        return _Commit(
            sha=sha or _sha(repo.full_name, len(repo.history), message),
            message=message,
            author_name=name,
            author_email=address,
            author_login=login,
            authored_at=at,
            committed_at=at,
            parents=[repo.history[-1].sha] if repo.history else [],
        )

    @staticmethod
    def _append_history(repo: _Repo, commit: _Commit) -> None:
        repo.history_index[commit.sha] = len(repo.history)
        repo.history.append(commit)

    def set_content(self, repo: str, path: str, text: str | None, *, branch: str | None = None) -> None:
        """Put a file in the repository (or remove it, with None), as the contents API then serves it."""
        with self._lock:
            data = self._repo(repo)
            key = (branch or data.default_branch, path.strip("/"))
            if text is None:
                data.contents.pop(key, None)
            else:
                data.contents[key] = text

    def add_file(
        self,
        repo: str,
        number: int,
        filename: str,
        *,
        additions: int = 1,
        deletions: int = 0,
        status: str = "modified",
        previous_filename: str | None = None,
        patch: str | None = None,
    ) -> JSON:
        with self._lock:
            data = self._repo(repo)
            pull = data.pulls[number]
            changed = _File(filename, status, additions, deletions, previous_filename, patch)
            pull.files.append(changed)
            return self._file_json(data, pull, changed)

    def seed_repository(
        self,
        repo: str = DEFAULT_REPO,
        *,
        n_pulls: int = 1000,
        reviews_per_pull: int = 2,
        commits_per_pull: int = 3,
        files_per_pull: int = 4,
        comments_per_pull: int = 1,
        start: dt.datetime = EPOCH,
    ) -> list[int]:
        """A realistic repository of `n_pulls` pull requests, oldest first, updated in number order.

        Mixes open, merged and closed pull requests, drafts, a bot author, changes-requested reviews and
        commits with Co-authored-by trailers. Returns the pull request numbers. 1,000 seed in ~0.1 s: nothing
        is rendered until asked for.
        """
        with self._lock:
            data = self._repo(repo)
            first = max(data.pulls, default=0) + 1
            numbers = []
            for offset in range(n_pulls):
                number = first + offset
                numbers.append(number)
                self._seed_pull(
                    data,
                    number,
                    start + dt.timedelta(minutes=10 * offset),
                    reviews_per_pull,
                    commits_per_pull,
                    files_per_pull,
                    comments_per_pull,
                )
            return numbers

    def _seed_pull(
        self,
        repo: _Repo,
        number: int,
        created: dt.datetime,
        n_reviews: int,
        n_commits: int,
        n_files: int,
        n_comments: int,
    ) -> None:
        people = _SEED_PEOPLE
        author = "dependabot[bot]" if number % 25 == 0 else people[number % len(people)]
        kind = number % 10
        state = "closed" if kind == 0 else "merged" if kind <= 6 else "open"
        updated = created + dt.timedelta(minutes=5)
        pull = self._make_pull(
            repo,
            number=number,
            title=f"Improve module {number % 50} ({number})",
            body=f"Part of the module {number % 50} clean-up.",
            author=author,
            state=state,
            draft=state == "open" and number % 7 == 0,
            base=repo.default_branch,
            head=None,
            head_sha=None,
            created_at=created,
            updated_at=updated,
            closed_at=None,
            merged_at=None,
            merged_by=None,
            labels=["dependencies"] if author.endswith("[bot]") else (["bug"] if number % 3 == 0 else []),
            requested_reviewers=[people[(number + 3) % len(people)]] if state == "open" else [],
        )
        for index in range(n_commits):
            pair = people[(number + 2) % len(people)]
            trailer = f"\n\nCo-authored-by: {pair.capitalize()} <{pair}@example.com>" if index % 4 == 1 else ""
            commit = self._new_commit(
                repo,
                f"Step {index + 1} of #{number}{trailer}",
                author,
                created - dt.timedelta(minutes=n_commits - index),
                _sha(repo.full_name, number, "commit", index),
            )
            self._append_history(repo, commit)
            pull.commits.append(commit)
        if pull.commits:
            pull.head_sha = pull.commits[-1].sha
        for index in range(n_reviews):
            last = index == n_reviews - 1
            pull.reviews.append(
                _Review(
                    id=self._new_id(),
                    user=people[(number + 1 + index) % len(people)],
                    state=("CHANGES_REQUESTED" if number % 5 == 0 else "APPROVED") if last else "COMMENTED",
                    body="Looks good." if last else "A few questions.",
                    commit_id=pull.head_sha,
                    submitted_at=created + dt.timedelta(minutes=1 + index),
                )
            )
        for index in range(n_comments):
            review_id = pull.reviews[0].id if pull.reviews else None
            pull.review_comments.append(
                _Comment(
                    self._new_id(),
                    people[(number + 1) % len(people)],
                    "Could this be simpler?",
                    created + dt.timedelta(minutes=1),
                    f"src/module_{number % 50}/file_0.py",
                    review_id,
                    pull.head_sha,
                    10 + index,
                )
            )
            pull.issue_comments.append(
                _Comment(self._new_id(), author, "Updated, thanks.", created + dt.timedelta(minutes=2))
            )
        for index in range(n_files):
            pull.files.append(
                _File(
                    f"src/module_{number % 50}/file_{index}.py",
                    "added" if index == 0 else "modified",
                    10 * (index + 1),
                    index,
                )
            )

    # --- a GitHub App ---

    def register_app(self, *, app_id: int, public_key_pem: str, slug: str = "tandem-review") -> None:
        """The App whose JWTs this GitHub accepts (verified with `public_key_pem`)."""
        with self._lock:
            self.app_state.app = github_app.App(app_id, slug, public_key_pem)

    def install_app(
        self,
        account: str,
        repositories: Sequence[str] | None = None,
        *,
        installation_id: int | None = None,
        account_type: str = "Organization",
        permissions: dict[str, str] | None = None,
    ) -> int:
        """Install the App on `account`: on these repositories, or on all of the account's (None)."""
        with self._lock:
            new_id = installation_id if installation_id is not None else self._new_id()
            self.app_state.installations[new_id] = github_app.Installation(
                new_id,
                account,
                account_type,
                None if repositories is None else set(repositories),
                dict(permissions or github_app.DEFAULT_PERMISSIONS),
                ["pull_request", "pull_request_review", "push", "status"],
                created_at=self._clock,
            )
            return new_id

    def installation_json(self, installation_id: int) -> JSON:
        """The installation as webhooks and the API show it."""
        with self._lock:
            return github_app.installation_json(self, self.app_state.installations[installation_id])

    def suspend_installation(self, installation_id: int, *, by: str = "octocat") -> None:
        with self._lock:
            installation = self.app_state.installations[installation_id]
            installation.suspended_at, installation.suspended_by = self._tick(), by

    def unsuspend_installation(self, installation_id: int) -> None:
        with self._lock:
            installation = self.app_state.installations[installation_id]
            installation.suspended_at, installation.suspended_by = None, None

    def uninstall_app(self, installation_id: int) -> None:
        with self._lock:
            del self.app_state.installations[installation_id]
            for token, minted in list(self.app_state.tokens.items()):
                if minted.installation_id == installation_id:
                    del self.app_state.tokens[token]

    def installation_repositories_change(
        self, installation_id: int, *, added: Sequence[str] = (), removed: Sequence[str] = ()
    ) -> None:
        with self._lock:
            installation = self.app_state.installations[installation_id]
            covered = set(installation.repositories or ())
            installation.repositories = (covered | set(added)) - set(removed)

    def expire_installation_tokens(self) -> None:
        """Every installation token minted so far expires now (an hour passed)."""
        with self._lock:
            for minted in self.app_state.tokens.values():
                minted.expires_at = time.time() - 1

    @property
    def tokens_minted(self) -> list[github_app.MintedToken]:
        with self._lock:
            return list(self.app_state.minted)

    @property
    def check_runs(self) -> dict[int, JSON]:
        with self._lock:
            return {key: dict(value) for key, value in self.app_state.check_runs.items()}

    # --- failure injection and log ---

    def fail_next(
        self, path_substring: str, status: int = 500, *, retry_after: float | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` requests whose path contains `path_substring` with an error.

        403 with `retry_after` is GitHub's secondary rate limit; 403 without it, its primary limit
        (X-RateLimit-Remaining: 0); 429 is a secondary limit; other statuses get GitHub's error body.
        """
        with self._lock:
            self._failures.append(_Injection(path_substring, times, status=status, retry_after=retry_after))

    def delay_next(self, path_substring: str, seconds: float, *, times: int = 1) -> None:
        with self._lock:
            self._delays.append(_Injection(path_substring, times, seconds=seconds))

    def hold_next(self, path_substring: str) -> Hold:
        """Keep the next request whose path contains `path_substring` waiting before it is answered (and, for a
        status, before it is recorded) until the test releases it: a race made to happen, not hoped for."""
        hold = Hold()
        with self._lock:
            self._holds.append((path_substring, hold))
        return hold

    def requests_to(self, path_substring: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if path_substring in request.path]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    @staticmethod
    def _take(injections: list[_Injection], path: str) -> _Injection | None:
        for injection in injections:
            if injection.times > 0 and injection.path_substring in path:
                injection.times -= 1
                return injection
        return None

    # --- rendering: the documented shapes ---

    def _user_json(self, login: str | None) -> JSON | None:
        if login is None:
            return None
        cached = self._user_cache.get(login)
        if cached is not None:
            return cached
        user_id = self._user_id(login)
        bot = login.endswith("[bot]")
        api = f"{self.url}/users/{quote(login)}"
        data = {
            "login": login,
            "id": user_id,
            "node_id": _node_id("Bot" if bot else "User", user_id),
            "avatar_url": f"{self.web_url}/avatars/u/{user_id}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.web_url}/apps/{login.removesuffix('[bot]')}" if bot else f"{self.web_url}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "Bot" if bot else "User",
            "site_admin": False,
        }
        self._user_cache[login] = data
        return data

    def _repo_json(self, repo: _Repo) -> JSON:
        cached = self._repo_cache.get(repo.full_name)
        if cached is not None:
            return cached
        api = f"{self.url}/repos/{repo.full_name}"
        web = f"{self.web_url}/{repo.full_name}"
        host = self.web_url.split("://", 1)[1]
        data = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(repo.owner),
            "private": False,
            "html_url": web,
            "description": "This your first repo!",
            "fork": False,
            "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments",
            "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events",
            "forks_url": f"{api}/forks",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"git://{host}/{repo.full_name}.git",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}",
            "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages",
            "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "releases_url": f"{api}/releases{{/id}}",
            "ssh_url": f"git@{host}:{repo.full_name}.git",
            "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "tags_url": f"{api}/tags",
            "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "clone_url": f"{web}.git",
            "mirror_url": None,
            "hooks_url": f"{api}/hooks",
            "svn_url": web,
            "homepage": None,
            "language": "Python",
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 108,
            "default_branch": repo.default_branch,
            "open_issues_count": 0,
            "topics": [],
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "pushed_at": _ts(repo.created_at),
            "created_at": _ts(repo.created_at),
            "updated_at": _ts(repo.created_at),
            "permissions": {"admin": False, "push": True, "pull": True},
            "allow_rebase_merge": True,
            "temp_clone_token": "",
            "allow_squash_merge": True,
            "allow_merge_commit": True,
            "allow_forking": True,
            "forks": 0,
            "open_issues": 0,
            "license": None,
            "watchers": 0,
        }
        self._repo_cache[repo.full_name] = data
        return data

    def _full_repo_json(self, repo: _Repo) -> JSON:
        data = dict(self._repo_json(repo))
        open_pulls = sum(1 for pull in repo.pulls.values() if pull.state == "open")
        data.update(
            open_issues_count=open_pulls,
            open_issues=open_pulls,
            is_template=False,
            visibility="public",
            template_repository=None,
            allow_auto_merge=False,
            delete_branch_on_merge=True,
            subscribers_count=1,
            network_count=0,
        )
        return data

    def _label_json(self, repo: _Repo, name: str) -> JSON:
        label_id = _small_id(repo.full_name, "label", name)
        return {
            "id": label_id,
            "node_id": _node_id("Label", label_id),
            "url": f"{self.url}/repos/{repo.full_name}/labels/{quote(name)}",
            "name": name,
            "description": _LABEL_DESCRIPTIONS.get(name, ""),
            "color": _sha(name)[:6],
            "default": name in ("bug", "documentation", "enhancement"),
        }

    def _pull_json(self, repo: _Repo, pull: _Pull, *, full: bool) -> JSON:
        api = f"{self.url}/repos/{repo.full_name}"
        web = f"{self.web_url}/{repo.full_name}"
        number = pull.number
        repo_json = self._repo_json(repo)
        owner = self._user_json(repo.owner)
        data: JSON = {
            "url": f"{api}/pulls/{number}",
            "id": pull.id,
            "node_id": _node_id("PullRequest", pull.id),
            "html_url": f"{web}/pull/{number}",
            "diff_url": f"{web}/pull/{number}.diff",
            "patch_url": f"{web}/pull/{number}.patch",
            "issue_url": f"{api}/issues/{number}",
            "commits_url": f"{api}/pulls/{number}/commits",
            "review_comments_url": f"{api}/pulls/{number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{number}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
            "number": number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._user_json(pull.author),
            "body": pull.body or None,
            "labels": [self._label_json(repo, name) for name in pull.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _ts(pull.created_at),
            "updated_at": _ts(pull.updated_at),
            "closed_at": _ts(pull.closed_at),
            "merged_at": _ts(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [self._user_json(login) for login in pull.requested_reviewers],
            "requested_teams": [],
            "head": {
                "label": f"{repo.owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": owner,
                "repo": repo_json,
            },
            "base": {
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": pull.base_sha,
                "user": owner,
                "repo": repo_json,
            },
            "_links": {
                "self": {"href": f"{api}/pulls/{number}"},
                "html": {"href": f"{web}/pull/{number}"},
                "issue": {"href": f"{api}/issues/{number}"},
                "comments": {"href": f"{api}/issues/{number}/comments"},
                "review_comments": {"href": f"{api}/pulls/{number}/comments"},
                "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
                "commits": {"href": f"{api}/pulls/{number}/commits"},
                "statuses": {"href": f"{api}/statuses/{pull.head_sha}"},
            },
            "author_association": "OWNER" if pull.author == repo.owner else "MEMBER",
            "auto_merge": None,
            "draft": pull.draft,
        }
        if full:
            is_open = pull.state == "open"
            data.update(
                merged=pull.merged,
                mergeable=True if is_open else None,
                rebaseable=True if is_open else None,
                mergeable_state="clean" if is_open else "unknown",
                merged_by=self._user_json(pull.merged_by),
                comments=len(pull.issue_comments),
                review_comments=len(pull.review_comments),
                maintainer_can_modify=False,
                commits=len(pull.commits),
                additions=sum(changed.additions for changed in pull.files),
                deletions=sum(changed.deletions for changed in pull.files),
                changed_files=len(pull.files),
            )
        return data

    def _review_json(self, repo: _Repo, pull: _Pull, review: _Review) -> JSON:
        html = f"{self.web_url}/{repo.full_name}/pull/{pull.number}#pullrequestreview-{review.id}"
        pull_url = f"{self.url}/repos/{repo.full_name}/pulls/{pull.number}"
        data: JSON = {
            "id": review.id,
            "node_id": _node_id("PullRequestReview", review.id),
            "user": self._user_json(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": pull_url,
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "submitted_at": _ts(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": "MEMBER",
        }
        if review.submitted_at is None:
            del data["submitted_at"]  # a pending review has not been submitted
        return data

    def _review_comment_json(self, repo: _Repo, pull: _Pull, comment: _Comment) -> JSON:
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"{self.web_url}/{repo.full_name}/pull/{pull.number}#discussion_r{comment.id}"
        return {
            "url": f"{api}/pulls/comments/{comment.id}",
            "pull_request_review_id": comment.review_id,
            "id": comment.id,
            "node_id": _node_id("PullRequestReviewComment", comment.id),
            "diff_hunk": "@@ -16,33 +16,40 @@ def example():",
            "path": comment.path,
            "position": comment.line,
            "original_position": comment.line,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "user": self._user_json(comment.user),
            "body": comment.body,
            "created_at": _ts(comment.created_at),
            "updated_at": _ts(comment.created_at),
            "html_url": html,
            "pull_request_url": f"{api}/pulls/{pull.number}",
            "author_association": "MEMBER",
            "_links": {
                "self": {"href": f"{api}/pulls/comments/{comment.id}"},
                "html": {"href": html},
                "pull_request": {"href": f"{api}/pulls/{pull.number}"},
            },
            "start_line": None,
            "original_start_line": None,
            "start_side": None,
            "line": comment.line,
            "original_line": comment.line,
            "side": "RIGHT",
        }

    def _issue_comment_json(self, repo: _Repo, pull: _Pull, comment: _Comment) -> JSON:
        api = f"{self.url}/repos/{repo.full_name}"
        return {
            "id": comment.id,
            "node_id": _node_id("IssueComment", comment.id),
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{pull.number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self._user_json(comment.user),
            "created_at": _ts(comment.created_at),
            "updated_at": _ts(comment.created_at),
            "issue_url": f"{api}/issues/{pull.number}",
            "author_association": "MEMBER",
            "minimized": None,
        }

    def _commit_json(self, repo: _Repo, commit: _Commit) -> JSON:
        api = f"{self.url}/repos/{repo.full_name}"
        author = {"name": commit.author_name, "email": commit.author_email, "date": _ts(commit.authored_at)}
        committer = {
            "name": commit.committer_name or commit.author_name,
            "email": commit.committer_email or commit.author_email,
            "date": _ts(commit.committed_at),
        }
        tree = _sha(commit.sha, "tree")
        return {
            "url": f"{api}/commits/{commit.sha}",
            "sha": commit.sha,
            "node_id": base64.b64encode(f"06:Commit{repo.id}:{commit.sha}".encode()).decode(),
            "html_url": f"{self.web_url}/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{api}/commits/{commit.sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{commit.sha}",
                "author": author,
                "committer": committer,
                "message": commit.message,
                "tree": {"url": f"{api}/git/trees/{tree}", "sha": tree},
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "author": self._user_json(commit.author_login),
            "committer": self._user_json(commit.committer_login or commit.author_login),
            "parents": [{"url": f"{api}/commits/{parent}", "sha": parent} for parent in commit.parents],
        }

    def _file_json(self, repo: _Repo, pull: _Pull, changed: _File) -> JSON:
        blob = _sha(repo.full_name, pull.number, changed.filename)
        data: JSON = {
            "sha": blob,
            "filename": changed.filename,
            "status": changed.status,
            "additions": changed.additions,
            "deletions": changed.deletions,
            "changes": changed.additions + changed.deletions,
            "blob_url": f"{self.web_url}/{repo.full_name}/blob/{pull.head_sha}/{changed.filename}",
            "raw_url": f"{self.web_url}/{repo.full_name}/raw/{pull.head_sha}/{changed.filename}",
            "contents_url": f"{self.url}/repos/{repo.full_name}/contents/{changed.filename}?ref={pull.head_sha}",
            "patch": changed.patch if changed.patch is not None else _made_up_patch(changed),
        }
        if changed.previous_filename:
            data["previous_filename"] = changed.previous_filename
        return data

    def _status_json(self, repo: _Repo, sha: str, status_id: int, body: JSON, at: dt.datetime) -> JSON:
        return {
            "url": f"{self.url}/repos/{repo.full_name}/statuses/{sha}",
            "avatar_url": f"{self.web_url}/avatars/u/{self._user_id(self.login)}?v=4",
            "id": status_id,
            "node_id": _node_id("Status", status_id),
            "state": body["state"],
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "context": body.get("context") or "default",
            "created_at": _ts(at),
            "updated_at": _ts(at),
            "creator": self._user_json(self.login),
        }

    def _rate_limit_json(self) -> JSON:
        used = self.rate_limit - self.rate_remaining
        core = {"limit": self.rate_limit, "used": used, "remaining": self.rate_remaining, "reset": self.rate_reset}

        def bucket(limit: int) -> JSON:
            return {"limit": limit, "used": 0, "remaining": limit, "reset": self.rate_reset}

        return {
            "resources": {
                "core": core,
                "search": bucket(30),
                "graphql": bucket(5000),
                "integration_manifest": bucket(5000),
                "source_import": bucket(100),
                "actions_runner_registration": bucket(10000),
                "scim": bucket(15000),
                "dependency_snapshots": bucket(100),
                "code_search": bucket(10),
                "code_scanning_autofix": bucket(10),
            },
            "rate": core,
        }

    # --- routing ---

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., _Response]]]:
        repo = r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        return [
            ("GET", re.compile(r"^/rate_limit$"), self._get_rate_limit),
            ("GET", re.compile(repo + r"$"), self._get_repo),
            ("GET", re.compile(repo + r"/pulls$"), self._list_pulls),
            ("GET", re.compile(repo + r"/pulls/(?P<number>\d+)$"), self._get_pull),
            ("GET", re.compile(repo + r"/pulls/(?P<number>\d+)/reviews$"), self._list_reviews),
            ("GET", re.compile(repo + r"/pulls/(?P<number>\d+)/comments$"), self._list_review_comments),
            ("GET", re.compile(repo + r"/issues/(?P<number>\d+)/comments$"), self._list_issue_comments),
            ("GET", re.compile(repo + r"/pulls/(?P<number>\d+)/commits$"), self._list_commits),
            ("GET", re.compile(repo + r"/pulls/(?P<number>\d+)/files$"), self._list_files),
            ("GET", re.compile(repo + r"/compare/(?P<base>[^.]+)\.\.\.(?P<head>.+)$"), self._compare),
            ("GET", re.compile(repo + r"/contents/(?P<path>.+)$"), self._get_content),
            ("POST", re.compile(repo + r"/statuses/(?P<sha>[0-9a-fA-F]{4,40})$"), self._post_status),
            ("POST", re.compile(repo + r"/pulls/(?P<number>\d+)/requested_reviewers$"), self._request_reviewers),
            ("GET", re.compile(r"^/app$"), self._get_app),
            ("GET", re.compile(r"^/app/installations/(?P<installation_id>\d+)$"), self._get_installation),
            ("POST", re.compile(r"^/app/installations/(?P<installation_id>\d+)/access_tokens$"), self._mint_token),
            ("GET", re.compile(repo + r"/installation$"), self._get_repo_installation),
            ("POST", re.compile(repo + r"/check-runs$"), self._create_check_run),
            ("PATCH", re.compile(repo + r"/check-runs/(?P<check_run_id>\d+)$"), self._update_check_run),
            (
                "POST",
                re.compile(repo + r"/actions/runs/(?P<run_id>\d+)/deployment_protection_rule$"),
                self._review_protection_rule,
            ),
        ]

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        principal: github_app.Principal = github_app.USER,
    ) -> _Response:
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                try:
                    return handler(query=query, body=body, principal=principal, **match.groupdict())
                except _NotFound:
                    return _Response(404, _error_body("Not Found", 404))
                except _Invalid as exc:
                    return _Response(422, {**_error_body("Validation Failed", 422), "errors": [str(exc)]})
        return _Response(404, _error_body("Not Found", 404))

    def _page(self, path: str, query: dict[str, str], items: Sequence[Any]) -> tuple[Sequence[Any], dict[str, str]]:
        """One page of `items` and its Link header, as GitHub paginates (per_page ≤ 100, default 30)."""
        try:
            per_page = min(max(int(query.get("per_page", "30")), 1), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError as exc:
            raise _Invalid("per_page and page must be integers") from exc
        last = max((len(items) + per_page - 1) // per_page, 1)

        def link(number: int) -> str:
            return f"{self.url}{path}?{urlencode({**query, 'page': str(number)})}"

        rels = []
        if page < last:
            rels += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        if page > 1:
            rels = [f'<{link(page - 1)}>; rel="prev"', *rels, f'<{link(1)}>; rel="first"']
        headers = {"Link": ", ".join(rels)} if rels else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _get_rate_limit(self, **_: Any) -> _Response:
        return _Response(200, self._rate_limit_json())

    def _repo_of(self, owner: str, name: str) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}")
        if repo is None:
            raise _NotFound
        return repo

    def _get_repo(self, *, owner: str, name: str, **_: Any) -> _Response:
        return _Response(200, self._full_repo_json(self._repo_of(owner, name)))

    def _list_pulls(self, *, owner: str, name: str, query: dict[str, str], **_: Any) -> _Response:
        repo = self._repo_of(owner, name)
        state = query.get("state", "open")
        sort = query.get("sort", "created")
        # GitHub: "Default: desc when sort is created or sort is not specified, otherwise asc."
        direction = query.get("direction", "desc" if sort == "created" else "asc")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "popularity", "long-running"):
            raise _Invalid("state or sort is not one of the allowed values")
        pulls = [pull for pull in repo.pulls.values() if state == "all" or pull.state == state]
        keys: dict[str, Callable[[_Pull], Any]] = {
            "created": lambda pull: (pull.created_at, pull.number),
            "updated": lambda pull: (pull.updated_at, pull.number),
            "popularity": lambda pull: (len(pull.issue_comments), pull.number),
            "long-running": lambda pull: (pull.created_at, pull.number),
        }
        pulls.sort(key=keys[sort], reverse=direction == "desc")
        base = query.get("base")
        if base:
            pulls = [pull for pull in pulls if pull.base_ref == base]
        page, headers = self._page(f"/repos/{owner}/{name}/pulls", query, pulls)
        return _Response(200, [self._pull_json(repo, pull, full=False) for pull in page], headers)

    def _pull_of(self, owner: str, name: str, number: str) -> tuple[_Repo, _Pull]:
        repo = self._repo_of(owner, name)
        pull = repo.pulls.get(int(number))
        if pull is None:
            raise _NotFound
        return repo, pull

    def _get_pull(self, *, owner: str, name: str, number: str, **_: Any) -> _Response:
        repo, pull = self._pull_of(owner, name, number)
        return _Response(200, self._pull_json(repo, pull, full=True))

    def _list_of(
        self,
        owner: str,
        name: str,
        what: str,
        query: dict[str, str],
        items: Sequence[Any],
        render: Callable[[Any], JSON],
    ) -> _Response:
        page, headers = self._page(f"/repos/{owner}/{name}/{what}", query, items)
        return _Response(200, [render(item) for item in page], headers)

    def _list_reviews(self, *, owner: str, name: str, number: str, query: dict[str, str], **_: Any) -> _Response:
        repo, pull = self._pull_of(owner, name, number)
        # Pending reviews are visible to their author only; the fake's user writes none.
        reviews = [review for review in pull.reviews if review.state != "PENDING" or review.user == self.login]
        return self._list_of(
            owner, name, f"pulls/{number}/reviews", query, reviews, lambda review: self._review_json(repo, pull, review)
        )

    def _list_review_comments(
        self, *, owner: str, name: str, number: str, query: dict[str, str], **_: Any
    ) -> _Response:
        repo, pull = self._pull_of(owner, name, number)
        return self._list_of(
            owner,
            name,
            f"pulls/{number}/comments",
            query,
            pull.review_comments,
            lambda comment: self._review_comment_json(repo, pull, comment),
        )

    def _list_issue_comments(self, *, owner: str, name: str, number: str, query: dict[str, str], **_: Any) -> _Response:
        repo, pull = self._pull_of(owner, name, number)
        return self._list_of(
            owner,
            name,
            f"issues/{number}/comments",
            query,
            pull.issue_comments,
            lambda comment: self._issue_comment_json(repo, pull, comment),
        )

    def _list_commits(self, *, owner: str, name: str, number: str, query: dict[str, str], **_: Any) -> _Response:
        repo, pull = self._pull_of(owner, name, number)
        return self._list_of(
            owner, name, f"pulls/{number}/commits", query, pull.commits, lambda commit: self._commit_json(repo, commit)
        )

    def _get_content(self, *, owner: str, name: str, path: str, query: dict[str, str], **_: Any) -> _Response:
        """GET /repos/{owner}/{repo}/contents/{path}?ref=: a file, base64-encoded, as GitHub documents it. Its ETag
        comes from the body, so an unchanged file answers a conditional request with 304."""
        repo = self._repo_of(owner, name)
        path = unquote(path)
        text = repo.contents.get((query.get("ref") or repo.default_branch, path))
        if text is None:
            raise _NotFound()
        raw = text.encode()
        blob = hashlib.sha1(b"blob %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()
        api = f"{self.url}/repos/{repo.full_name}/contents/{path}"
        return _Response(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(raw),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": base64.encodebytes(raw).decode(),
                "sha": blob,
                "url": api,
                "git_url": f"{self.url}/repos/{repo.full_name}/git/blobs/{blob}",
                "html_url": f"{self.web_url}/{repo.full_name}/blob/{query.get('ref') or repo.default_branch}/{path}",
                "download_url": f"{self.web_url}/{repo.full_name}/raw/{path}",
                "_links": {"self": api},
            },
        )

    def _list_files(self, *, owner: str, name: str, number: str, query: dict[str, str], **_: Any) -> _Response:
        repo, pull = self._pull_of(owner, name, number)
        return self._list_of(
            owner,
            name,
            f"pulls/{number}/files",
            query,
            pull.files[:MAX_LISTED_FILES],
            lambda changed: self._file_json(repo, pull, changed),
        )

    def _compare(self, *, owner: str, name: str, base: str, head: str, query: dict[str, str], **_: Any) -> _Response:
        repo = self._repo_of(owner, name)
        if base not in repo.history_index or head not in repo.history_index:
            headed = self._pull_head(repo, base, head)
            if headed is None:
                raise _NotFound
            return headed
        start, end = repo.history_index[base], repo.history_index[head]
        commits = repo.history[start + 1 : end + 1]
        behind = max(start - end, 0)
        status = "identical" if start == end else "ahead" if end > start else "behind"
        page, headers = self._page(f"/repos/{owner}/{name}/compare/{base}...{head}", query, commits)
        api = f"{self.url}/repos/{repo.full_name}"
        web = f"{self.web_url}/{repo.full_name}"
        base_commit = self._commit_json(repo, repo.history[start])
        merge_base = self._commit_json(repo, repo.history[min(start, end)])
        payload = {
            "url": f"{api}/compare/{base}...{head}",
            "html_url": f"{web}/compare/{base}...{head}",
            "permalink_url": f"{web}/compare/{repo.owner}:{base}...{repo.owner}:{head}",
            "diff_url": f"{web}/compare/{base}...{head}.diff",
            "patch_url": f"{web}/compare/{base}...{head}.patch",
            "base_commit": base_commit,
            "merge_base_commit": merge_base,
            "status": status,
            "ahead_by": len(commits),
            "behind_by": behind,
            "total_commits": len(commits),
            "commits": [self._commit_json(repo, commit) for commit in page],
            "files": self._pull_head_files(repo, base, head),
        }
        return _Response(200, payload, headers)

    def _pull_head_files(self, repo: _Repo, base: str, head: str) -> list[JSON]:
        """The files of `base...head` when head is a pull request's head, now or before a push, and base the base it
        was on (or its branch): that head's files with their patches, at most 300 (GitHub's limit here)."""
        found = self._pull_of_head(repo, base, head)
        if found is None:
            return []
        pull, files = found
        return [self._file_json(repo, pull, changed) for changed in files[:300]]

    @staticmethod
    def _pull_of_head(repo: _Repo, base: str, head: str) -> tuple[_Pull, list[_File]] | None:
        for pull in repo.pulls.values():
            if head == pull.head_sha and base in (pull.base_sha, pull.base_ref):
                return pull, pull.files
            if head in pull.former_heads and base in (pull.former_heads[head][0], pull.base_ref):
                return pull, pull.former_heads[head][1]
        return None

    def _pull_head(self, repo: _Repo, base: str, head: str) -> _Response | None:
        """`base...head` for a pull request's head that is not in the repository's history (a made-up sha)."""
        found = self._pull_of_head(repo, base, head)
        if found is not None:
            pull = found[0]
            payload = {
                "url": f"{self.url}/repos/{repo.full_name}/compare/{base}...{head}",
                "status": "ahead",
                "ahead_by": len(pull.commits),
                "behind_by": 0,
                "total_commits": len(pull.commits),
                "commits": [self._commit_json(repo, commit) for commit in pull.commits],
                "files": self._pull_head_files(repo, base, head),
            }
            return _Response(200, payload)
        return None

    def _get_app(self, **_: Any) -> _Response:
        return _Response(*github_app.get_app(self))

    def _get_installation(self, *, installation_id: str, **_: Any) -> _Response:
        return _Response(*github_app.get_installation(self, installation_id))

    def _get_repo_installation(self, *, owner: str, name: str, **_: Any) -> _Response:
        return _Response(*github_app.get_repo_installation(self, owner, name))

    def _mint_token(self, *, installation_id: str, body: bytes, **_: Any) -> _Response:
        return _Response(*github_app.mint_token(self, installation_id, body))

    def _create_check_run(self, *, owner: str, name: str, body: bytes, **_: Any) -> _Response:
        self._repo_of(owner, name)
        return _Response(*github_app.create_check_run(self, owner, name, body))

    def _update_check_run(self, *, owner: str, name: str, check_run_id: str, body: bytes, **_: Any) -> _Response:
        self._repo_of(owner, name)
        return _Response(*github_app.update_check_run(self, owner, name, check_run_id, body))

    def workflow_run_again(self, full_name: str, run_id: int) -> None:
        """A job of the run is re-run: same run id, a new attempt whose protection rules GitHub asks about anew."""
        for review in self.protection_rule_reviews:
            if (review["repo"], review["run_id"]) == (full_name, run_id):
                review["earlier_attempt"] = True

    def _review_protection_rule(self, *, owner: str, name: str, run_id: str, body: bytes, **_: Any) -> _Response:
        """GitHub's "review custom deployment protection rules for a workflow run": 204, no content. A rule
        already answered for that run and environment is refused, as GitHub refuses it."""
        repo = self._repo_of(owner, name)
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise _Invalid("Problems parsing JSON") from exc
        if not isinstance(data, dict) or data.get("state") not in ("approved", "rejected"):
            raise _Invalid("state is not one of approved, rejected")
        if not isinstance(data.get("environment_name"), str) or not data["environment_name"]:
            raise _Invalid("environment_name is required")
        for review in self.protection_rule_reviews:
            if not review.get("earlier_attempt") and (review["repo"], review["run_id"], review["environment_name"]) == (
                repo.full_name,
                int(run_id),
                data["environment_name"],
            ):
                raise _Invalid("the deployment protection rule was already reviewed")
        self.protection_rule_reviews.append({"repo": repo.full_name, "run_id": int(run_id), **data})
        return _Response(204, None)

    def _post_status(
        self,
        *,
        owner: str,
        name: str,
        sha: str,
        body: bytes,
        principal: github_app.Principal = github_app.USER,
        **_: Any,
    ) -> _Response:
        repo = self._repo_of(owner, name)
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise _Invalid("Problems parsing JSON") from exc
        if not isinstance(data, dict) or data.get("state") not in _STATUS_STATES:
            raise _Invalid("state is not one of error, failure, pending, success")
        creator = self.login
        if principal.kind == "installation" and self.app_state.app is not None:
            creator = f"{self.app_state.app.slug}[bot]"
        status = self._status_json(repo, sha, self._new_id(), data, self._tick())
        status["creator"] = self._user_json(creator)
        repo.statuses.append(status)
        self.statuses_posted.append({"repo": repo.full_name, "sha": sha, **data})
        self.status_creators.append(creator)
        self.status_arrivals.append(time.monotonic())  # bench/feedback.py: webhook → status accepted
        return _Response(201, status)

    def _request_reviewers(self, *, owner: str, name: str, number: str, body: bytes, **_: Any) -> _Response:
        """GitHub adds the logins to the pull request's requested reviewers (someone already requested stays once);
        the author cannot be requested (422), as on GitHub."""
        repo = self._repo_of(owner, name)
        pull = self._pull(repo.full_name, int(number))
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise _Invalid("Problems parsing JSON") from exc
        logins = data.get("reviewers") if isinstance(data, dict) else None
        if not isinstance(logins, list) or not all(isinstance(login, str) for login in logins):
            raise _Invalid("reviewers must be a list of logins")
        if pull.author in logins:
            raise _Invalid("Review cannot be requested from pull request author.")
        with self._lock:
            for login in logins:
                if login not in pull.requested_reviewers:
                    pull.requested_reviewers.append(login)
            self.reviewer_requests.append((repo.full_name, pull.number, list(logins)))
        return _Response(201, self._pull_json(repo, pull, full=False))

    # --- HTTP ---

    def _error(self, status: int, retry_after: float | None = None) -> _Response:
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if status == 429 or (status == 403 and retry_after is not None):
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                "If you reach out to GitHub Support for help, please include the request ID 0000:0000."
            )
            return _Response(status, _error_body(message, status, _SECONDARY_DOCS), headers)
        if status == 403:
            headers["X-RateLimit-Remaining"] = "0"
            message = f"API rate limit exceeded for user ID {self._user_id(self.login)}."
            return _Response(403, _error_body(message, 403, _PRIMARY_DOCS), headers)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return _Response(status, _error_body(phrase, status), headers)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = dict(handler.headers.items())
        outside = self.prefix and not parts.path.startswith(self.prefix + "/")
        path = None if outside else parts.path[len(self.prefix) :]
        if parts.path == self.graphql_path:
            path = "/graphql"

        with self._lock:
            delay = self._take(self._delays, path or parts.path)
            hold = next((hold for substring, hold in self._holds if substring in (path or parts.path)), None)
            if hold is not None:
                self._holds = [(substring, other) for substring, other in self._holds if other is not hold]
        if delay is not None:
            time.sleep(delay.seconds)
        if hold is not None:
            hold.arrived.set()
            hold.released.wait(timeout=60)

        with self._lock:
            status, response_headers, encoded = self._respond(handler.command, path, query, body, headers)
            self.requests.append(RecordedRequest(handler.command, path or parts.path, query, headers, status))

        handler.send_response(status)
        for key, value in response_headers.items():
            handler.send_header(key, value)
        if status != 304:
            handler.send_header("Content-Length", str(len(encoded)))
        handler.end_headers()
        if status != 304:
            handler.wfile.write(encoded)

    def _respond(
        self, method: str, path: str | None, query: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        lowered = {key.lower(): value for key, value in headers.items()}
        charged = False
        principal: github_app.Principal | None = None
        refused: github_app.Refused | None = None
        if path is not None:
            try:
                principal = github_app.authenticate(self, lowered.get("authorization"))
                github_app.authorize(self, principal, method, path)
            except github_app.Refused as error:
                refused = error
        if path is None:
            response = _Response(404, _error_body("Not Found", 404))
        elif refused is not None or principal is None:
            status = refused.status if refused is not None else 401
            response = _Response(status, _error_body(refused.message if refused else "Bad credentials", status))
        else:
            injection = self._take(self._failures, path)
            charged = path != "/rate_limit"  # GitHub does not count rate limit checks
            if injection is not None:
                response = self._error(injection.status, injection.retry_after)
            elif path == "/graphql":
                charged = False  # GraphQL spends points from its own budget, not REST calls
                response = self._graphql(method, body)
            elif self.rate_remaining <= 0 and charged:
                response = self._error(403)
            else:
                response = self._route(method, path, query, body, principal)

        encoded = json.dumps(response.payload).encode()
        etag = f'"{hashlib.sha1(encoded, usedforsecurity=False).hexdigest()}"'
        if method == "GET" and response.status == 200 and _etag_matches(lowered.get("if-none-match", ""), etag):
            # A conditional request answered 304 does not count against the rate limit.
            return 304, {**self._common_headers(), "ETag": etag}, b""
        if charged and self.rate_remaining > 0:
            self.rate_remaining -= 1
        return response.status, {**self._common_headers(), "ETag": etag, **response.headers}, encoded

    @property
    def graphql_path(self) -> str:
        """Where GitHub serves GraphQL: /graphql, or /api/graphql beside GitHub Enterprise's /api/v3."""
        return self.prefix.removesuffix("/v3") + "/graphql"

    def graphql_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == "/graphql"]

    def _graphql(self, method: str, body: bytes) -> _Response:
        if method != "POST":
            return _Response(404, _error_body("Not Found", 404))
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return _Response(400, _error_body("Problems parsing JSON", 400))
        status, payload, headers = github_graphql.serve(self, data)
        return _Response(status, payload, headers)

    def _graphql_headers(self) -> dict[str, str]:
        used = github_graphql.POINTS_PER_HOUR - self.graphql_remaining
        return {
            "X-RateLimit-Limit": str(github_graphql.POINTS_PER_HOUR),
            "X-RateLimit-Remaining": str(self.graphql_remaining),
            "X-RateLimit-Reset": str(self.rate_reset),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Resource": "graphql",
        }

    def _common_headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": _sha(time.monotonic_ns())[:20].upper(),
            "Cache-Control": "private, max-age=60, s-maxage=60",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.rate_remaining),
            "X-RateLimit-Reset": str(self.rate_reset),
            "X-RateLimit-Used": str(self.rate_limit - self.rate_remaining),
            "X-RateLimit-Resource": "core",
        }


def _error_body(message: str, status: int, documentation_url: str = _DOCS) -> JSON:
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison, as GitHub does: W/"x" matches "x".
    wanted = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == wanted for candidate in if_none_match.split(","))
