"""A fake GitLab REST API v4 over real HTTP on 127.0.0.1, for tests and benchmarks.

    with FakeGitLab() as fake:
        fake.add_project("acme/shop")
        fake.add_merge_request("acme/shop", iid=1, author="alice")
        client = GitLabClient(fake.url, fake.token)

State lives in memory and is seeded by the test. Responses follow the documented JSON shapes (whole objects, not
trimmed ones) and GitLab's conventions: PRIVATE-TOKEN or Bearer auth (401 `{"message": "401 Unauthorized"}`),
projects addressed by id or URL-encoded path, offset pagination headers (X-Page, X-Per-Page, X-Next-Page,
X-Prev-Page, X-Total, X-Total-Pages, Link) and, for merge requests with `pagination=keyset`, a cursor in the
Link header (or 405, like gitlab.com, with `keyset_merge_requests=False`), RateLimit-* headers on every answer
and 429 with Retry-After once the window's budget is spent.

`add_note`, `add_approval`, `add_commit` and `add_diff` do not touch the merge request's `updated_at`: call
`touch_merge_request` for that, as a test of incremental sync would. Times left out come from the fake's clock,
which ticks one second per event and never lags behind a time a test gave, so a touched merge request is always
the newest. Switches make it behave like other GitLabs: `keyset_merge_requests=False` (gitlab.com: 405 for
keyset), `approval_state=False` (Free tier: 403), `approval_rules=False` (Premium without rules),
`diffs_endpoint=False` (before 15.7: no /diffs), `rate_limit=N` requests per `rate_limit_window` seconds.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import email.utils
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from tests.fakes import gitlab_graphql

__all__ = ["FakeGitLab", "RecordedRequest"]

Json = dict[str, Any]
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_STATUS_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}
# GitLab's commit status state machine: a post updates the unfinished (pending or running) status of the same
# name and ref through one of these events, and refuses any other with 400 "Cannot transition status". A post
# after that status finished starts a new one.
_EVENTS = {"pending": "enqueue", "running": "run", "success": "success", "failed": "drop", "canceled": "cancel"}
_TRANSITIONS = {
    "pending": {"running", "success", "failed", "canceled", "skipped"},
    "running": {"success", "failed", "canceled"},
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # as sent, URL-encoded project paths included, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None

    @property
    def decoded_path(self) -> str:
        return unquote(self.path)


@dataclass
class _Injection:
    path_substring: str
    times: int
    status: int = 0
    retry_after: int | None = None
    delay: float = 0.0


@dataclass
class _MergeRequest:
    data: Json
    notes: list[Json] = field(default_factory=list)
    approvals: list[tuple[Json, str]] = field(default_factory=list)  # (user, approved_at)
    commits: list[Json] = field(default_factory=list)  # newest first, as GitLab lists them
    diffs: list[Json] = field(default_factory=list)
    # False while GitLab computes the diff after a push: no diff_refs, no changes_count, an empty diffs list.
    diff_ready: bool = True


@dataclass
class _Project:
    data: Json
    merge_requests: dict[int, _MergeRequest] = field(default_factory=dict)
    commits: dict[str, Json] = field(default_factory=dict)
    statuses: dict[str, list[Json]] = field(default_factory=dict)
    base_sha: str = ""
    files: dict[tuple[str, str], str] = field(default_factory=dict)  # (branch, path) -> text


class FakeGitLab:
    def __init__(
        self,
        *,
        token: str = "glpat-fake-token",
        keyset_merge_requests: bool = True,
        approval_state: bool = True,
        approval_rules: bool = True,
        diffs_endpoint: bool = True,
        rate_limit: int = 10_000,
        rate_limit_window: float = 60.0,
        version: str = "17.5.0",
    ) -> None:
        self.token = token
        self.keyset_merge_requests = keyset_merge_requests
        self.approval_state = approval_state  # False: Free tier, approval_state answers 403
        self.approval_rules = approval_rules  # False: Premium without rules, approval_state lists none
        self.diffs_endpoint = diffs_endpoint
        self.rate_limit = rate_limit
        self.rate_limit_window = rate_limit_window
        self.version = version
        self.requests: list[RecordedRequest] = []
        self.reviewer_updates: list[tuple[str, int, list[int]]] = []  # (project, iid, reviewer ids) per update
        self.statuses_posted: list[Json] = []

        self._lock = threading.RLock()
        self._projects: dict[str, _Project] = {}
        self._projects_by_id: dict[int, _Project] = {}
        self._users: dict[str, Json] = {}
        self._injections: list[_Injection] = []
        self._ids = itertools.count(1000)
        self._now = _EPOCH  # the fake's clock: one second per event, never behind any time it was given
        self._window_start = time.monotonic()
        self._window_used = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bot = self.add_user("tandem-bot", name="Tandem", bot=True)

    # --- lifecycle --------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitLab:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-gitlab", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGitLab is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- seeding ----------------------------------------------------------------------------------------------

    def add_user(self, username: str, *, name: str = "", bot: bool = False) -> Json:
        with self._lock:
            if username not in self._users:
                user_id = next(self._ids)
                self._users[username] = {
                    "id": user_id,
                    "username": username,
                    "name": name or username.replace(".", " ").replace("_", " ").title(),
                    "state": "active",
                    "locked": False,
                    "avatar_url": f"https://www.gravatar.com/avatar/{_hex(username)[:32]}?s=80&d=identicon",
                    "web_url": f"https://gitlab.example.com/{username}",
                    "bot": bot,
                }
            return self._users[username]

    def add_project(
        self, full_path: str, *, project_id: int | None = None, default_branch: str = "main", description: str = ""
    ) -> Json:
        with self._lock:
            project_id = project_id or next(self._ids)
            namespace, _, path = full_path.rpartition("/")
            web_url = f"https://gitlab.example.com/{full_path}"
            created_at = self._stamp(None)
            data: Json = {
                "id": project_id,
                "description": description,
                "name": path,
                "name_with_namespace": " / ".join(full_path.split("/")),
                "path": path,
                "path_with_namespace": full_path,
                "created_at": created_at,
                "default_branch": default_branch,
                "tag_list": [],
                "topics": [],
                "ssh_url_to_repo": f"git@gitlab.example.com:{full_path}.git",
                "http_url_to_repo": f"{web_url}.git",
                "web_url": web_url,
                "readme_url": f"{web_url}/-/blob/{default_branch}/README.md",
                "forks_count": 0,
                "avatar_url": None,
                "star_count": 0,
                "last_activity_at": created_at,
                "namespace": {
                    "id": project_id + 1_000_000,
                    "name": namespace.rpartition("/")[2] or path,
                    "path": namespace.rpartition("/")[2] or path,
                    "kind": "group",
                    "full_path": namespace,
                    "parent_id": None,
                    "avatar_url": None,
                    "web_url": f"https://gitlab.example.com/groups/{namespace}",
                },
                "container_registry_image_prefix": f"registry.gitlab.example.com/{full_path}",
                "_links": {
                    "self": f"https://gitlab.example.com/api/v4/projects/{project_id}",
                    "issues": f"https://gitlab.example.com/api/v4/projects/{project_id}/issues",
                    "merge_requests": f"https://gitlab.example.com/api/v4/projects/{project_id}/merge_requests",
                    "repo_branches": f"https://gitlab.example.com/api/v4/projects/{project_id}/repository/branches",
                    "labels": f"https://gitlab.example.com/api/v4/projects/{project_id}/labels",
                    "events": f"https://gitlab.example.com/api/v4/projects/{project_id}/events",
                    "members": f"https://gitlab.example.com/api/v4/projects/{project_id}/members",
                    "cluster_agents": f"https://gitlab.example.com/api/v4/projects/{project_id}/cluster_agents",
                },
                "empty_repo": False,
                "archived": False,
                "visibility": "private",
                "resolve_outdated_diff_discussions": False,
                "issues_enabled": True,
                "merge_requests_enabled": True,
                "jobs_enabled": True,
                "wiki_enabled": True,
                "snippets_enabled": True,
                "container_registry_enabled": True,
                "creator_id": self._bot["id"],
                "import_status": "none",
                "open_issues_count": 0,
                "ci_default_git_depth": 20,
                "ci_config_path": "",
                "shared_runners_enabled": True,
                "public_jobs": True,
                "shared_with_groups": [],
                "only_allow_merge_if_pipeline_succeeds": False,
                "allow_merge_on_skipped_pipeline": False,
                "only_allow_merge_if_all_discussions_are_resolved": False,
                "remove_source_branch_after_merge": True,
                "request_access_enabled": True,
                "merge_method": "merge",
                "squash_option": "default_off",
                "autoclose_referenced_issues": True,
                "approvals_before_merge": 0,
                "mirror": False,
                "permissions": {"project_access": {"access_level": 40, "notification_level": 3}, "group_access": None},
            }
            project = _Project(data=data)
            self._projects[full_path] = project
            self._projects_by_id[project_id] = project
            base = self._commit_json(
                project,
                sha=_hex(f"{full_path}:base"),
                message="Initial commit",
                author_name="Root",
                author_email="root@example.com",
                authored_date=created_at,
                committed_date=created_at,
                committer_name=None,
                committer_email=None,
                parent_ids=[],
            )
            project.commits[base["id"]] = base
            project.base_sha = base["id"]
            return data

    def add_merge_request(
        self,
        full_path: str,
        *,
        iid: int | None = None,
        title: str = "Change things",
        description: str = "",
        author: str = "alice",
        state: str = "opened",
        draft: bool = False,
        source_branch: str | None = None,
        target_branch: str | None = None,
        sha: str | None = None,
        labels: Iterable[str] = (),
        reviewers: Iterable[str] = (),
        created_at: dt.datetime | str | None = None,
        updated_at: dt.datetime | str | None = None,
        merged_at: dt.datetime | str | None = None,
        merged_by: str | None = None,
        merge_commit_sha: str | None = None,
        closed_at: dt.datetime | str | None = None,
    ) -> Json:
        with self._lock:
            project = self._projects[full_path]
            iid = iid or max(project.merge_requests, default=0) + 1
            created = self._stamp(created_at)
            updated = self._stamp(updated_at) if updated_at else created
            author_json = self.add_user(author)
            merger = self.add_user(merged_by) if merged_by else None
            reviewer_json = [self.add_user(name) for name in reviewers]
            web_url = f"{project.data['web_url']}/-/merge_requests/{iid}"
            head = sha or _hex(f"{full_path}!{iid}:head")
            draft_title = f"Draft: {title}" if draft and not title.startswith("Draft:") else title
            data: Json = {
                "id": next(self._ids),
                "iid": iid,
                "project_id": project.data["id"],
                "title": draft_title,
                "description": description,
                "state": state,
                "imported": False,
                "imported_from": "none",
                "created_at": created,
                "updated_at": updated,
                "merged_by": merger,
                "merge_user": merger,
                "merged_at": self._stamp(merged_at) if merged_at else None,
                "merge_after": None,
                "prepared_at": created,
                "closed_by": author_json if state == "closed" else None,
                "closed_at": self._stamp(closed_at) if closed_at else None,
                "target_branch": target_branch or project.data["default_branch"],
                "source_branch": source_branch or f"feature-{iid}",
                "user_notes_count": 0,
                "upvotes": 0,
                "downvotes": 0,
                "author": author_json,
                "assignees": [],
                "assignee": None,
                "reviewers": reviewer_json,
                "source_project_id": project.data["id"],
                "target_project_id": project.data["id"],
                "labels": list(labels),
                "draft": draft,
                "work_in_progress": draft,
                "milestone": None,
                "merge_when_pipeline_succeeds": False,
                "merge_status": "can_be_merged",
                "detailed_merge_status": "draft_status" if draft else "mergeable",
                "sha": head,
                "merge_commit_sha": merge_commit_sha,
                "squash_commit_sha": None,
                "discussion_locked": None,
                "should_remove_source_branch": None,
                "force_remove_source_branch": True,
                "allow_collaboration": False,
                "allow_maintainer_to_push": False,
                "reference": f"!{iid}",
                "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{full_path}!{iid}"},
                "web_url": web_url,
                "time_stats": {
                    "time_estimate": 0,
                    "total_time_spent": 0,
                    "human_time_estimate": None,
                    "human_total_time_spent": None,
                },
                "squash": False,
                "squash_on_merge": False,
                "task_completion_status": {"count": 0, "completed_count": 0},
                "has_conflicts": False,
                "blocking_discussions_resolved": True,
                "approvals_before_merge": None,
            }
            project.merge_requests[iid] = _MergeRequest(data=data)
            return data

    def add_note(
        self,
        full_path: str,
        iid: int,
        *,
        author: str,
        body: str,
        system: bool = False,
        created_at: dt.datetime | str | None = None,
        position_path: str | None = None,
        internal: bool = False,
    ) -> Json:
        """A comment; with `position_path` a diff (line) comment on that file."""
        with self._lock:
            project = self._projects[full_path]
            mr = project.merge_requests[iid]
            created = self._stamp(created_at)
            note: Json = {
                "id": next(self._ids),
                "type": "DiffNote" if position_path else None,
                "body": body,
                "attachment": None,
                "author": self.add_user(author),
                "created_at": created,
                "updated_at": created,
                "system": system,
                "noteable_id": mr.data["id"],
                "noteable_type": "MergeRequest",
                "project_id": project.data["id"],
                "commit_id": None,
                "resolvable": bool(position_path),
                "resolved": False if position_path else None,
                "resolved_by": None,
                "resolved_at": None,
                "confidential": internal,
                "internal": internal,
                "imported": False,
                "imported_from": "none",
                "noteable_iid": iid,
                "commands_changes": {},
            }
            if position_path:
                note["position"] = {
                    "base_sha": project.base_sha,
                    "start_sha": project.base_sha,
                    "head_sha": mr.data["sha"],
                    "old_path": position_path,
                    "new_path": position_path,
                    "position_type": "text",
                    "old_line": None,
                    "new_line": 1,
                    "line_range": None,
                }
            mr.notes.append(note)
            if not system:
                mr.data["user_notes_count"] += 1
            return note

    def add_approval(
        self, full_path: str, iid: int, *, user: str, approved_at: dt.datetime | str | None = None
    ) -> Json:
        """An approval, with the "approved this merge request" system note GitLab writes beside it."""
        with self._lock:
            mr = self._projects[full_path].merge_requests[iid]
            when = self._stamp(approved_at)
            user_json = self.add_user(user)
            mr.approvals = [(u, at) for u, at in mr.approvals if u["id"] != user_json["id"]]
            mr.approvals.append((user_json, when))
            self.add_note(full_path, iid, author=user, body="approved this merge request", system=True, created_at=when)
            return {"user": user_json, "approved_at": when}

    def remove_approval(self, full_path: str, iid: int, *, user: str, at: dt.datetime | str | None = None) -> None:
        with self._lock:
            mr = self._projects[full_path].merge_requests[iid]
            user_json = self.add_user(user)
            mr.approvals = [(u, when) for u, when in mr.approvals if u["id"] != user_json["id"]]
            self.add_note(full_path, iid, author=user, body="unapproved this merge request", system=True, created_at=at)

    def add_commit(
        self,
        full_path: str,
        iid: int | None = None,
        *,
        sha: str | None = None,
        message: str = "Change things",
        author_name: str = "Alice",
        author_email: str = "alice@example.com",
        authored_date: dt.datetime | str | None = None,
        committed_date: dt.datetime | str | None = None,
        committer_name: str | None = None,
        committer_email: str | None = None,
        parent_ids: list[str] | None = None,
        push_note: bool = False,
    ) -> Json:
        """A commit in the project; with `iid`, pushed to that merge request, whose head it becomes.

        `push_note` also writes the "added 1 commit" system note GitLab writes on a push to a merge request.
        """
        with self._lock:
            project = self._projects[full_path]
            mr = project.merge_requests[iid] if iid is not None else None
            if parent_ids is None:
                parent_ids = [mr.commits[0]["id"] if mr and mr.commits else project.base_sha]
            authored = self._stamp(authored_date)
            commit = self._commit_json(
                project,
                sha=sha or _hex(f"{full_path}:{next(self._ids)}"),
                message=message,
                author_name=author_name,
                author_email=author_email,
                authored_date=authored,
                committed_date=self._stamp(committed_date) if committed_date else authored,
                committer_name=committer_name,
                committer_email=committer_email,
                parent_ids=parent_ids,
            )
            project.commits[commit["id"]] = commit
            if mr is not None and iid is not None:
                mr.commits.insert(0, commit)
                mr.data["sha"] = commit["id"]
                if push_note:
                    body = f"added 1 commit\n\n<ul><li>{commit['short_id']} - {commit['title']}</li></ul>"
                    self.add_note(
                        full_path,
                        iid,
                        author=mr.data["author"]["username"],
                        body=body,
                        system=True,
                        created_at=commit["committed_date"],
                    )
            return commit

    def add_diff(
        self,
        full_path: str,
        iid: int,
        *,
        new_path: str,
        diff: str,
        old_path: str | None = None,
        new_file: bool = False,
        deleted_file: bool = False,
        renamed_file: bool = False,
    ) -> Json:
        with self._lock:
            mr = self._projects[full_path].merge_requests[iid]
            entry = {
                "old_path": old_path or new_path,
                "new_path": new_path,
                "a_mode": "0" if new_file else "100644",
                "b_mode": "0" if deleted_file else "100644",
                "diff": diff,
                "new_file": new_file,
                "renamed_file": renamed_file,
                "deleted_file": deleted_file,
                "generated_file": False,
            }
            mr.diffs.append(entry)
            return entry

    def set_diff_ready(self, full_path: str, iid: int, ready: bool) -> None:
        """Play GitLab computing a merge request's diff in the background (`ready=False`) and finishing."""
        with self._lock:
            self._projects[full_path].merge_requests[iid].diff_ready = ready

    def touch_merge_request(
        self, full_path: str, iid: int, *, updated_at: dt.datetime | str | None = None, **changes: Any
    ) -> Json:
        """Bump `updated_at` (to the fake's next second, or the given time) and apply field changes."""
        with self._lock:
            data = self._projects[full_path].merge_requests[iid].data
            data.update(changes)
            data["updated_at"] = self._stamp(updated_at)
            return data

    def seed_project(
        self,
        full_path: str = "acme/monolith",
        *,
        n_merge_requests: int = 1000,
        approvals_per_mr: int = 2,
        notes_per_mr: int = 2,
        commits_per_mr: int = 3,
        diffs_per_mr: int = 4,
        start: dt.datetime = _EPOCH,
    ) -> Json:
        """A project with many merge requests, built without going through the per-item helpers (fast)."""
        with self._lock:
            project_data = self.add_project(full_path)
            project = self._projects[full_path]
            people = [self.add_user(name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")]
            for index in range(n_merge_requests):
                iid = index + 1
                created = start + dt.timedelta(minutes=10 * index)
                author = people[index % len(people)]
                mr = self.add_merge_request(
                    full_path,
                    iid=iid,
                    title=f"Change {iid}",
                    author=author["username"],
                    state=("merged", "opened", "closed")[index % 3],
                    created_at=created,
                    updated_at=created + dt.timedelta(minutes=9),
                    labels=("backend",) if index % 2 else (),
                )
                entry = project.merge_requests[iid]
                parent = project.base_sha
                for number in range(commits_per_mr):
                    moment = _iso(created + dt.timedelta(minutes=number))
                    commit = self._commit_json(
                        project,
                        sha=_hex(f"{full_path}!{iid}:{number}"),
                        message=f"Step {number} of !{iid}",
                        author_name=author["name"],
                        author_email=f"{author['username']}@example.com",
                        authored_date=moment,
                        committed_date=moment,
                        committer_name=None,
                        committer_email=None,
                        parent_ids=[parent],
                    )
                    project.commits[commit["id"]] = commit
                    entry.commits.insert(0, commit)
                    parent = commit["id"]
                if entry.commits:
                    mr["sha"] = entry.commits[0]["id"]
                for number in range(diffs_per_mr):
                    entry.diffs.append(
                        {
                            "old_path": f"src/module_{number}.py",
                            "new_path": f"src/module_{number}.py",
                            "a_mode": "100644",
                            "b_mode": "100644",
                            "diff": f"@@ -1,2 +1,3 @@\n context\n-old {number}\n+new {number}\n+more {number}\n",
                            "new_file": False,
                            "renamed_file": False,
                            "deleted_file": False,
                            "generated_file": False,
                        }
                    )
                for number in range(notes_per_mr):
                    self.add_note(
                        full_path,
                        iid,
                        author=people[(index + number + 1) % len(people)]["username"],
                        body=f"Comment {number}",
                        created_at=created + dt.timedelta(minutes=4 + number),
                    )
                for number in range(approvals_per_mr):
                    self.add_approval(
                        full_path,
                        iid,
                        user=people[(index + number + 2) % len(people)]["username"],
                        approved_at=created + dt.timedelta(minutes=6 + number),
                    )
            return project_data

    def statuses(self, sha: str, full_path: str | None = None) -> list[Json]:
        """The commit statuses GitLab holds for `sha` now (updated in place while unfinished), oldest first."""
        with self._lock:
            projects = [self._projects[full_path]] if full_path else list(self._projects.values())
            return [dict(status) for project in projects for status in project.statuses.get(sha, [])]

    def fail_next(self, path_substring: str, status: int, retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next `times` requests whose path contains `path_substring` with `status`."""
        with self._lock:
            self._injections.append(_Injection(path_substring, times, status=status, retry_after=retry_after))

    def delay_next(self, path_substring: str, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._injections.append(_Injection(path_substring, times, delay=seconds))

    def requests_to(self, path_substring: str, method: str = "GET") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and path_substring in r.decoded_path]

    def graphql_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == "/api/graphql"]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def set_file(self, full_path: str, path: str, text: str | None, *, branch: str | None = None) -> None:
        """Put a file in the repository (None removes it), as the repository files API then serves it."""
        with self._lock:
            project = self._projects[full_path]
            key = (branch or project.data["default_branch"], path.strip("/"))
            if text is None:
                project.files.pop(key, None)
            else:
                project.files[key] = text

    def merge_request(self, full_path: str, iid: int) -> Json:
        return self._projects[full_path].merge_requests[iid].data

    # --- request handling -------------------------------------------------------------------------------------

    def _handle(self, method: str, raw_target: str, headers: dict[str, str], body: bytes) -> tuple[int, Json, Any]:
        """(status, headers, JSON body) for one request."""
        split = urlsplit(raw_target)
        query = parse_qs(split.query, keep_blank_values=True)
        payload = _decode_body(body, headers.get("content-type", ""))
        with self._lock:
            self.requests.append(RecordedRequest(method, split.path, query, headers, payload))
            injection = self._take_injection(split.path)
        if injection is not None and injection.delay:
            time.sleep(injection.delay)
        rate_headers, limited = self._spend_rate_limit()
        if limited:
            retry = rate_headers["RateLimit-Reset"]
            extra = {"Retry-After": str(max(1, int(retry) - int(time.time())))}
            return 429, {**rate_headers, **extra}, {"message": "429 Too Many Requests"}
        if injection is not None and injection.status:
            extra = {"Retry-After": str(injection.retry_after)} if injection.retry_after is not None else {}
            if injection.status == 429:
                rate_headers = {**rate_headers, "RateLimit-Remaining": "0"}
            return injection.status, {**rate_headers, **extra}, {"message": _reason(injection.status)}
        if not self._authorized(headers):
            return 401, rate_headers, {"message": "401 Unauthorized"}
        if split.path == "/api/graphql" and method == "POST":
            with self._lock:
                status, result = gitlab_graphql.serve(self, payload)
            return status, rate_headers, result
        if not split.path.startswith("/api/v4/"):
            return 404, rate_headers, {"error": "404 Not Found"}
        route = split.path.removeprefix("/api/v4/")
        for pattern, verb, handler in _ROUTES:
            match = pattern.match(route)
            if match and verb == method:
                with self._lock:
                    status, extra_headers, result = handler(self, match.groupdict(), query, payload)
                etag = extra_headers.get("ETag", "")
                if method == "GET" and status == 200 and etag and headers.get("if-none-match") == etag:
                    return 304, {**rate_headers, "ETag": etag}, None  # Rack's conditional GET
                return status, {**rate_headers, **extra_headers}, result
        return 404, rate_headers, {"error": "404 Not Found"}

    def _take_injection(self, path: str) -> _Injection | None:
        decoded = unquote(path)
        for injection in self._injections:
            if injection.times > 0 and (injection.path_substring in path or injection.path_substring in decoded):
                injection.times -= 1
                found = dataclasses.replace(injection)
                self._injections = [i for i in self._injections if i.times > 0]
                return found
        return None

    def _spend_rate_limit(self) -> tuple[dict[str, str], bool]:
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.rate_limit_window:
                self._window_start, self._window_used = now, 0
            self._window_used += 1
            reset_epoch = int(time.time() + self.rate_limit_window - (now - self._window_start)) + 1
            remaining = max(0, self.rate_limit - self._window_used)
            headers = {
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Limit": str(self.rate_limit),
                "RateLimit-Observed": str(self._window_used),
                "RateLimit-Remaining": str(remaining),
                "RateLimit-Reset": str(reset_epoch),
                "RateLimit-ResetTime": email.utils.formatdate(reset_epoch, usegmt=True),
            }
            return headers, self._window_used > self.rate_limit

    def _authorized(self, headers: dict[str, str]) -> bool:
        if headers.get("private-token") == self.token:
            return True
        return headers.get("authorization", "") == f"Bearer {self.token}"

    def _project(self, params: dict[str, str]) -> _Project | None:
        key = unquote(params["project"])
        if key.isdigit():
            return self._projects_by_id.get(int(key))
        return self._projects.get(key)

    def _merge_request(self, params: dict[str, str]) -> tuple[_Project, _MergeRequest] | None:
        project = self._project(params)
        if project is None:
            return None
        mr = project.merge_requests.get(int(params["iid"]))
        return (project, mr) if mr is not None else None

    def _tick(self) -> dt.datetime:
        self._now += dt.timedelta(seconds=1)
        return self._now

    def _stamp(self, moment: dt.datetime | str | None) -> str:
        """The given time (moving the clock up to it), or the clock's next second: later than anything seeded."""
        if moment is None:
            return _iso(self._tick())
        parsed = _parse(moment) if isinstance(moment, str) else moment.astimezone(dt.UTC)
        self._now = max(self._now, parsed)
        return _iso(parsed)

    def _commit_json(self, project: _Project, **fields: Any) -> Json:
        message: str = fields["message"]
        sha: str = fields["sha"]
        return {
            "id": sha,
            "short_id": sha[:8],
            "created_at": fields["committed_date"],
            "parent_ids": fields["parent_ids"],
            "title": message.split("\n", 1)[0],
            "message": message,
            "author_name": fields["author_name"],
            "author_email": fields["author_email"],
            "authored_date": fields["authored_date"],
            "committer_name": fields["committer_name"] or fields["author_name"],
            "committer_email": fields["committer_email"] or fields["author_email"],
            "committed_date": fields["committed_date"],
            "trailers": {},
            "extended_trailers": {},
            "web_url": f"{project.data['web_url']}/-/commit/{sha}",
        }

    def _link(self, route: str, query: dict[str, list[str]], **changes: str) -> str:
        params = {key: values[-1] for key, values in query.items()}
        params.update(changes)
        return f"{self.url}/api/v4/{route}?{urlencode(params)}"

    def _paginate(self, route: str, items: list[Json], query: dict[str, list[str]]) -> tuple[Json, list[Json]]:
        per_page = _per_page(query)
        total = len(items)
        total_pages = max(1, -(-total // per_page))
        page = max(1, int(_param(query, "page") or 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = [f'<{self._link(route, query, page="1", per_page=str(per_page))}>; rel="first"']
        links.append(f'<{self._link(route, query, page=str(total_pages), per_page=str(per_page))}>; rel="last"')
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(total),
            "X-Total-Pages": str(total_pages),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        if page < total_pages:
            links.insert(0, f'<{self._link(route, query, page=str(page + 1), per_page=str(per_page))}>; rel="next"')
        if page > 1:
            links.insert(0, f'<{self._link(route, query, page=str(page - 1), per_page=str(per_page))}>; rel="prev"')
        headers["Link"] = ", ".join(links)
        return headers, chunk

    # --- routes -----------------------------------------------------------------------------------------------

    def _get_version(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        return 200, {}, {"version": self.version, "revision": "6fb2f3b7d4e", "kas": {"enabled": False}}

    def _get_user(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        return 200, {}, {**self._bot, "email": "tandem@example.com", "created_at": _iso(_EPOCH), "is_admin": False}

    def _get_project(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        project = self._project(params)
        if project is None:
            return 404, {}, {"message": "404 Project Not Found"}
        return 200, {}, project.data

    def _list_merge_requests(
        self, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Json, Any]:
        project = self._project(params)
        if project is None:
            return 404, {}, {"message": "404 Project Not Found"}
        items = [mr.data for mr in project.merge_requests.values()]
        state = _param(query, "state") or "all"
        if state != "all":
            items = [mr for mr in items if mr["state"] == state]
        for key, field_name, after in (
            ("updated_after", "updated_at", True),
            ("updated_before", "updated_at", False),
            ("created_after", "created_at", True),
            ("created_before", "created_at", False),
        ):
            bound = _param(query, key)
            if bound:
                try:
                    limit = _parse(bound)
                except ValueError:
                    return 400, {}, {"error": f"{key} is invalid"}
                items = [mr for mr in items if _within(_parse(mr[field_name]), limit, after=after)]
        order_by = _param(query, "order_by") or "created_at"
        if order_by not in ("created_at", "updated_at"):
            return 400, {}, {"error": "order_by does not have a valid value"}
        descending = (_param(query, "sort") or "desc") == "desc"
        items.sort(key=lambda mr: (_parse(mr[order_by]), mr["id"]), reverse=descending)
        items = [_list_item(mr) for mr in items]
        route = f"projects/{params['project']}/merge_requests"
        if _param(query, "pagination") == "keyset":
            if not self.keyset_merge_requests:
                return 405, {}, {"message": "Keyset pagination is not yet available for this type of request"}
            return self._keyset_page(route, items, query, order_by, descending)
        headers, chunk = self._paginate(route, items, query)
        return 200, headers, chunk

    def _keyset_page(
        self, route: str, items: list[Json], query: dict[str, list[str]], order_by: str, descending: bool
    ) -> tuple[int, Json, Any]:
        per_page = _per_page(query)
        cursor = _param(query, "cursor")
        if cursor:
            after = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            bound = (_parse(after["value"]), after["id"])
            if descending:
                items = [mr for mr in items if (_parse(mr[order_by]), mr["id"]) < bound]
            else:
                items = [mr for mr in items if (_parse(mr[order_by]), mr["id"]) > bound]
        chunk = items[:per_page]
        headers: Json = {"X-Per-Page": str(per_page)}
        if len(items) > per_page:
            last = chunk[-1]
            token = json.dumps({"value": last[order_by], "id": last["id"]}).encode()
            next_cursor = base64.urlsafe_b64encode(token).decode()
            query = {key: values for key, values in query.items() if key != "page"}
            headers["Link"] = f'<{self._link(route, query, cursor=next_cursor)}>; rel="next"'
        return 200, headers, chunk

    def _get_merge_request(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        project, mr = found
        return 200, {}, self._single(project, mr)

    def _update_merge_request(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        """Update an MR: only `reviewer_ids` (which replaces the reviewers), as Tandem's reviewer requests send."""
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        project, mr = found
        fields = dict(body) if isinstance(body, dict) else {}
        fields.update({key: values[-1] for key, values in query.items()})
        if "reviewer_ids" in fields:
            wanted = fields["reviewer_ids"]
            ids = [int(item) for item in (wanted if isinstance(wanted, list) else str(wanted).split(",")) if item]
            by_id = {user["id"]: user for user in self._users.values()}
            if any(user_id not in by_id for user_id in ids):
                return 400, {}, {"message": {"reviewer_ids": ["contains an unknown user"]}}
            with self._lock:
                mr.data["reviewers"] = [by_id[user_id] for user_id in ids]
                self.reviewer_updates.append((project.data["path_with_namespace"], mr.data["iid"], ids))
        return 200, {}, self._single(project, mr)

    def _single(self, project: _Project, mr: _MergeRequest) -> Json:
        data = mr.data
        pipeline = {
            "id": data["id"] + 5_000_000,
            "iid": data["iid"],
            "project_id": project.data["id"],
            "sha": data["sha"],
            "ref": f"refs/merge-requests/{data['iid']}/head",
            "status": "success",
            "source": "merge_request_event",
            "created_at": data["updated_at"],
            "updated_at": data["updated_at"],
            "web_url": f"{project.data['web_url']}/-/pipelines/{data['id'] + 5_000_000}",
        }
        return {
            **data,
            "subscribed": False,
            "changes_count": str(len(mr.diffs)) if mr.diff_ready else None,
            "latest_build_started_at": None,
            "latest_build_finished_at": None,
            "first_deployed_to_production_at": None,
            "pipeline": pipeline,
            "head_pipeline": {
                **pipeline,
                "before_sha": project.base_sha,
                "tag": False,
                "yaml_errors": None,
                "user": data["author"],
                "started_at": None,
                "finished_at": None,
                "committed_at": None,
                "duration": None,
                "queued_duration": None,
                "coverage": None,
            },
            "diff_refs": (
                {"base_sha": project.base_sha, "head_sha": data["sha"], "start_sha": project.base_sha}
                if mr.diff_ready
                else None
            ),
            **({} if mr.diff_ready else {"detailed_merge_status": "preparing"}),
            "merge_error": None,
            "first_contribution": False,
            "user": {"can_merge": True},
            "diverged_commits_count": 0,
        }

    def _get_approval_state(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        if not self.approval_state:
            return 403, {}, {"message": "403 Forbidden"}
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        _, mr = found
        approvers = [user for user, _ in mr.approvals]
        rule = {
            "id": mr.data["id"] + 7_000_000,
            "name": "All Members",
            "rule_type": "any_approver",
            "report_type": None,
            "eligible_approvers": [],
            "approvals_required": 1,
            "users": [],
            "groups": [],
            "contains_hidden_groups": False,
            "approved_by": [_basic_user(user) for user in approvers],
            "source_rule": None,
            "approved": bool(approvers),
            "overridden": False,
        }
        return 200, {}, {"approval_rules_overwritten": False, "rules": [rule] if self.approval_rules else []}

    def _get_approvals(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        project, mr = found
        data = mr.data
        return (
            200,
            {},
            {
                "id": data["id"],
                "iid": data["iid"],
                "project_id": project.data["id"],
                "title": data["title"],
                "description": data["description"],
                "state": data["state"],
                "created_at": data["created_at"],
                "updated_at": data["updated_at"],
                "merge_status": data["merge_status"],
                "approved": bool(mr.approvals),
                "approvals_required": 0,
                "approvals_left": 0,
                "require_password_to_approve": False,
                "approved_by": [{"user": _basic_user(user), "approved_at": at} for user, at in mr.approvals],
                "suggested_approvers": [],
                "approvers": [],
                "approver_groups": [],
                "user_has_approved": False,
                "user_can_approve": True,
                "approval_rules_left": [],
                "has_approval_rules": False,
                "merge_request_approvers_available": False,
                "multiple_approval_rules_available": False,
                "invalid_approvers_rules": [],
            },
        )

    def _list_notes(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        _, mr = found
        order_by = _param(query, "order_by") or "created_at"
        descending = (_param(query, "sort") or "desc") == "desc"
        notes = sorted(mr.notes, key=lambda note: (_parse(note[order_by]), note["id"]), reverse=descending)
        notes = [{**note, "author": _basic_user(note["author"])} for note in notes]
        headers, chunk = self._paginate(
            f"projects/{params['project']}/merge_requests/{params['iid']}/notes", notes, query
        )
        return 200, headers, chunk

    def _list_commits(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        _, mr = found
        route = f"projects/{params['project']}/merge_requests/{params['iid']}/commits"
        headers, chunk = self._paginate(route, list(mr.commits), query)
        return 200, headers, chunk

    def _list_diffs(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        if not self.diffs_endpoint:
            return 404, {}, {"error": "404 Not Found"}
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        _, mr = found
        route = f"projects/{params['project']}/merge_requests/{params['iid']}/diffs"
        headers, chunk = self._paginate(route, list(mr.diffs) if mr.diff_ready else [], query)
        return 200, headers, chunk

    def _get_changes(self, params: dict[str, str], query: Any, body: Any) -> tuple[int, Json, Any]:
        found = self._merge_request(params)
        if found is None:
            return 404, {}, {"message": "404 Not found"}
        project, mr = found
        changes = list(mr.diffs) if mr.diff_ready else []
        return 200, {}, {**self._single(project, mr), "changes": changes, "overflow": False}

    def _compare(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        project = self._project(params)
        if project is None:
            return 404, {}, {"message": "404 Project Not Found"}
        base, head = _param(query, "from"), _param(query, "to")
        if not base or not head:
            return 400, {}, {"error": "from is missing, to is missing"}
        if head not in project.commits or base not in project.commits:
            return 404, {}, {"message": "404 Ref Not Found"}
        reachable_from_base = _ancestors(project.commits, base)
        commits = [c for c in _ancestors_ordered(project.commits, head) if c["id"] not in reachable_from_base]
        return (
            200,
            {},
            {
                "commit": commits[-1] if commits else None,
                "commits": commits,
                "diffs": [],
                "compare_timeout": False,
                "compare_same_ref": base == head,
                "web_url": f"{project.data['web_url']}/-/compare/{base}...{head}",
            },
        )

    def _post_status(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        project = self._project(params)
        if project is None:
            return 404, {}, {"message": "404 Project Not Found"}
        fields = {key: values[-1] for key, values in query.items()}
        if isinstance(body, dict):
            fields.update({key: value for key, value in body.items() if value is not None})
        state = fields.get("state")
        if state not in _STATUS_STATES:
            return 400, {}, {"error": "state does not have a valid value"}
        sha = params["sha"]
        name = fields.get("name") or fields.get("context") or "default"
        ref = fields.get("ref") or project.data["default_branch"]
        unfinished = [
            s
            for s in project.statuses.get(sha, [])
            if s["name"] == name and s["ref"] == ref and s["status"] in _TRANSITIONS
        ]
        current = unfinished[-1] if unfinished else None
        if current is not None and state not in _TRANSITIONS[current["status"]]:
            event = _EVENTS.get(state, state)
            message = (
                f"Cannot transition status via :{event} from :{current['status']} "
                f'(Reason(s): Status cannot transition via "{event}")'
            )
            return 400, {}, {"message": message}
        now = self._stamp(None)
        if current is not None:
            current.update(
                status=state,
                description=fields.get("description", current["description"]),
                target_url=fields.get("target_url", current["target_url"]),
                started_at=current["started_at"] or now,
                finished_at=now if state not in _TRANSITIONS else None,
            )
            self.statuses_posted.append({"project": project.data["path_with_namespace"], **current})
            return 201, {}, current
        status = {
            "id": next(self._ids),
            "sha": sha,
            "ref": ref,
            "status": state,
            "name": name,
            "target_url": fields.get("target_url"),
            "description": fields.get("description"),
            "created_at": now,
            "started_at": now if state != "pending" else None,
            "finished_at": now if state in ("success", "failed", "canceled", "skipped") else None,
            "allow_failure": False,
            "coverage": None,
            "pipeline_id": next(self._ids),
            "author": _basic_user(self._bot),
        }
        project.statuses.setdefault(sha, []).append(status)
        self.statuses_posted.append({"project": project.data["path_with_namespace"], **status})
        return 201, {}, status

    def _get_file(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        """GET /projects/:id/repository/files/:file_path?ref=: the file, base64-encoded, with its blob id."""
        project = self._project(params)
        if project is None:
            return 404, {}, {"message": "404 Project Not Found"}
        ref = (query.get("ref") or [""])[0]
        path = unquote(params["file_path"])
        text = project.files.get((ref, path))
        if text is None:
            return 404, {}, {"message": "404 File Not Found"}
        raw = text.encode()
        blob = hashlib.sha1(b"blob %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()
        data = {
            "file_name": path.rsplit("/", 1)[-1],
            "file_path": path,
            "size": len(raw),
            "encoding": "base64",
            "content": base64.b64encode(raw).decode(),
            "content_sha256": hashlib.sha256(raw).hexdigest(),
            "ref": ref,
            "blob_id": blob,
            "commit_id": project.base_sha,
            "last_commit_id": project.base_sha,
            "execute_filemode": False,
        }
        return 200, {"ETag": f'W/"{blob}"', "X-Gitlab-Blob-Id": blob, "X-Gitlab-File-Path": path}, data

    def _list_statuses(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Json, Any]:
        project = self._project(params)
        if project is None:
            return 404, {}, {"message": "404 Project Not Found"}
        route = f"projects/{params['project']}/repository/commits/{params['sha']}/statuses"
        headers, chunk = self._paginate(route, list(project.statuses.get(params["sha"], [])), query)
        return 200, headers, chunk


_Route = tuple[re.Pattern[str], str, Callable[[FakeGitLab, dict[str, str], Any, Any], tuple[int, Json, Any]]]
_P = r"projects/(?P<project>[^/]+)"
_MR = _P + r"/merge_requests/(?P<iid>\d+)"
_ROUTES: list[_Route] = [
    (re.compile(r"^version$"), "GET", FakeGitLab._get_version),
    (re.compile(r"^user$"), "GET", FakeGitLab._get_user),
    (re.compile(rf"^{_P}$"), "GET", FakeGitLab._get_project),
    (re.compile(rf"^{_P}/merge_requests$"), "GET", FakeGitLab._list_merge_requests),
    (re.compile(rf"^{_MR}$"), "GET", FakeGitLab._get_merge_request),
    (re.compile(rf"^{_MR}$"), "PUT", FakeGitLab._update_merge_request),
    (re.compile(rf"^{_MR}/approval_state$"), "GET", FakeGitLab._get_approval_state),
    (re.compile(rf"^{_MR}/approvals$"), "GET", FakeGitLab._get_approvals),
    (re.compile(rf"^{_MR}/notes$"), "GET", FakeGitLab._list_notes),
    (re.compile(rf"^{_MR}/commits$"), "GET", FakeGitLab._list_commits),
    (re.compile(rf"^{_MR}/diffs$"), "GET", FakeGitLab._list_diffs),
    (re.compile(rf"^{_MR}/changes$"), "GET", FakeGitLab._get_changes),
    (re.compile(rf"^{_P}/repository/compare$"), "GET", FakeGitLab._compare),
    (re.compile(rf"^{_P}/repository/files/(?P<file_path>[^/]+)$"), "GET", FakeGitLab._get_file),
    (re.compile(rf"^{_P}/statuses/(?P<sha>[0-9a-fA-F]+)$"), "POST", FakeGitLab._post_status),
    (re.compile(rf"^{_P}/repository/commits/(?P<sha>[0-9a-fA-F]+)/statuses$"), "GET", FakeGitLab._list_statuses),
]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitLab
    protocol_version = "HTTP/1.1"  # keep-alive, as GitLab's own frontend
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self._respond("GET")

    def do_POST(self) -> None:
        self._respond("POST")

    def do_PUT(self) -> None:
        self._respond("PUT")

    def do_DELETE(self) -> None:
        self._respond("DELETE")

    def _respond(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            status, extra_headers, result = self.fake._handle(method, self.path, headers, body)
        except Exception as error:  # a bug in the fake must show as a 500, not as a hung client
            status, extra_headers, result = 500, {}, {"message": f"500 Internal Server Error: {error!r}"}
        encoded = b"" if status == 304 else json.dumps(result).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status != 304:
            self.send_header("Content-Length", str(len(encoded)))
        for key, value in extra_headers.items():
            if value != "" or key.startswith("X-"):
                self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `fake.requests` instead


def _list_item(mr: Json) -> Json:
    return dict(mr)


def _basic_user(user: Json) -> Json:
    """GitLab's UserBasic: what notes, approvals and merge requests embed (no `bot` flag there)."""
    return {key: user[key] for key in ("id", "username", "name", "state", "locked", "avatar_url", "web_url")}


def _ancestors(commits: dict[str, Json], sha: str) -> set[str]:
    seen: set[str] = set()
    stack = [sha]
    while stack:
        current = stack.pop()
        if current in seen or current not in commits:
            continue
        seen.add(current)
        stack.extend(commits[current]["parent_ids"])
    return seen


def _ancestors_ordered(commits: dict[str, Json], sha: str) -> list[Json]:
    """Ancestors of `sha`, itself included, oldest first (parents before children)."""
    ordered: list[Json] = []
    done: set[str] = set()

    def visit(current: str) -> None:
        stack = [(current, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done or node not in commits:
                continue
            if expanded:
                done.add(node)
                ordered.append(commits[node])
                continue
            stack.append((node, True))
            stack.extend((parent, False) for parent in commits[node]["parent_ids"])

    visit(sha)
    return ordered


def _decode_body(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    if "json" in content_type:
        return json.loads(body)
    return {key: values[-1] for key, values in parse_qs(body.decode()).items()}


def _within(moment: dt.datetime, bound: dt.datetime, *, after: bool) -> bool:
    """GitLab's date filters are inclusive: "updated on or after the given time"."""
    return moment >= bound if after else moment <= bound


def _param(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[-1] if values else ""


def _per_page(query: dict[str, list[str]]) -> int:
    value = _param(query, "per_page")
    return max(1, min(int(value), 100)) if value.isdigit() else 20


def _reason(status: int) -> str:
    reasons = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return f"{status} {reasons.get(status, 'Error')}"


def _iso(moment: dt.datetime | str) -> str:
    """GitLab API timestamps: ISO 8601 in UTC with milliseconds, "2022-05-13T07:26:38.402Z"."""
    if isinstance(moment, str):
        moment = _parse(moment)
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _hex(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()
