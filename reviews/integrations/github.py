"""GitHub webhook payloads and REST objects → provider-neutral records.

`parse_webhook` turns one delivery (the `X-GitHub-Event` name and the decoded JSON body) into a `WebhookEvent`.
The REST API and the webhooks share object shapes (a pull request, a review, a comment), so the `parse_*`
converters here are used by `github_api` too.

Every value is read through `_Node`, the one JSON reader of every integration (`payloads.JsonReader`), which
names the key path in the `PayloadError` it raises ("pull_request.number: expected an integer, got string"), so a
KeyError or TypeError never escapes to the caller.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reviews.integrations.bots import is_bot
from reviews.integrations.limits import moment_check, record_check
from reviews.integrations.payloads import JsonReader, json_type
from reviews.integrations.records import (
    ChangedFileRecord,
    CommentKind,
    CommentRecord,
    CommitRecord,
    DeploymentRecord,
    GitUserRecord,
    InstallationEvent,
    InstallationRecord,
    PayloadError,
    ProtectionRuleRecord,
    PullRequestRecord,
    PullRequestState,
    RepositoryRecord,
    ReviewRecord,
    ReviewState,
    StatusRecord,
    StatusState,
    UserRecord,
    WebhookEvent,
    patch_id,
)
from reviews.integrations.signing import hmac_sha256_hex, secret_matches
from reviews.integrations.trailers import co_authors

# The git committer of what GitHub commits on the web (web-flow): merges by "Update branch", web edits.
WEB_COMMITTER_EMAIL = "noreply@github.com"
WEB_COMMITTER_LOGIN = "web-flow"

__all__ = [
    "parse_changed_file",
    "parse_commit",
    "parse_issue_comment",
    "parse_pull_request",
    "parse_repository",
    "parse_review",
    "parse_review_comment",
    "parse_status",
    "parse_webhook",
    "verify_signature",
]

# GitHub shows deleted accounts as @ghost; a review or comment by one has `"user": null`.
GHOST = UserRecord(provider="github", login="ghost")

_REVIEW_STATES: dict[str, ReviewState] = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
    "DISMISSED": "dismissed",
}
_STATUS_STATES: dict[str, StatusState] = {
    "success": "success",
    "pending": "pending",
    "failure": "failure",
    "error": "error",
}
_CHECK_SUCCESS = frozenset({"success", "neutral", "skipped"})
_CHECK_FAILURE = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"})
_DEPLOYMENT_STATES = {
    "pending": "pending",
    "queued": "pending",
    "in_progress": "in_progress",
    "success": "success",
    "failure": "failure",
    "error": "error",
}
_DEPLOYMENT_FINAL = frozenset({"success", "failure", "error"})


# --- reading JSON with named key paths --------------------------------------------------------------------------


class _Node(JsonReader):
    """An object of a GitHub payload (`reviews.integrations.payloads.JsonReader`): its times are ISO 8601 strings
    (naive ones are UTC), except push payloads' repository times, which are epoch seconds."""

    __slots__ = ()

    def _time(self, value: Any, path: str) -> dt.datetime:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return moment_check(dt.datetime.fromtimestamp(value, tz=dt.UTC), path)
            except (OverflowError, OSError, ValueError) as error:
                if isinstance(error, PayloadError):
                    raise
                raise PayloadError(f"{path}: expected a date-time, got {value} seconds") from None
        if not isinstance(value, str):
            raise PayloadError(f"{path}: expected a date-time, got {json_type(value)}")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise PayloadError(f"{path}: expected a date-time, got {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return moment_check(parsed, path).astimezone(dt.UTC)


# --- GitHub objects → records -------------------------------------------------------------------------------------


def _id(value: int | None) -> str:
    return "" if value is None else str(value)


def _email(value: str) -> str:
    # trailers.co_authors lower-cases e-mails; do the same everywhere so identities match.
    return value.strip().lower()


def _user(node: _Node) -> UserRecord:
    login = node.req_str("login")
    return UserRecord(
        provider="github",
        login=login,
        external_id=_id(node.opt_int("id")),
        name=node.opt_str("name"),
        email=_email(node.opt_str("email")),
        is_bot=is_bot(login, account_type=node.opt_str("type")),
    )


def _opt_user(node: _Node | None) -> UserRecord | None:
    return None if node is None else _user(node)


def _user_or_ghost(node: _Node, key: str) -> UserRecord:
    account = node.opt_obj(key)
    return GHOST if account is None else _user(account)


def _repository(node: _Node) -> RepositoryRecord:
    return RepositoryRecord(
        provider="github",
        external_id=str(node.req_int("id")),
        full_path=node.req_str("full_name"),
        default_branch=node.opt_str("default_branch") or "main",
        web_url=node.opt_str("html_url"),
    )


def _pull_request_state(node: _Node, merged_at: dt.datetime | None) -> PullRequestState:
    state = node.req_str("state")
    if state not in ("open", "closed"):
        raise PayloadError(f"{node.key_path('state')}: expected 'open' or 'closed', got {state[:40]!r}")
    # List calls and review payloads carry merged_at but no `merged`; either says the PR was merged.
    if node.opt_bool("merged") or merged_at is not None:
        return "merged"
    return "closed" if state == "closed" else "open"


def _pull_request(node: _Node, repository: RepositoryRecord | None = None) -> PullRequestRecord:
    if repository is None:
        repository = _repository(node.req_obj("base", "repo"))
    merged_at = node.opt_time("merged_at")
    labels = node.opt_objs("labels")
    reviewers = node.opt_objs("requested_reviewers")
    return PullRequestRecord(
        repository=repository,
        number=node.req_int("number"),
        external_id=str(node.req_int("id")),
        title=node.req_str("title"),
        author=_opt_user(node.opt_obj("user")),
        state=_pull_request_state(node, merged_at),
        created_at=node.req_time("created_at"),
        updated_at=node.req_time("updated_at"),
        body=node.opt_str("body"),
        draft=node.opt_bool("draft"),
        base_ref=node.req_str("base", "ref"),
        head_ref=node.req_str("head", "ref"),
        head_sha=node.req_str("head", "sha"),
        merge_commit_sha=node.opt_str("merge_commit_sha"),
        additions=node.opt_int("additions"),
        deletions=node.opt_int("deletions"),
        changed_files=node.opt_int("changed_files"),
        labels=None if labels is None else tuple(label.req_str("name") for label in labels),
        web_url=node.opt_str("html_url"),
        merged_at=merged_at,
        closed_at=node.opt_time("closed_at"),
        merged_by=_opt_user(node.opt_obj("merged_by")),
        requested_reviewers=None if reviewers is None else tuple(_user(user) for user in reviewers),
    )


def _review_state(node: _Node) -> ReviewState:
    raw = node.req_str("state")
    state = _REVIEW_STATES.get(raw.upper())
    if state is None:
        raise PayloadError(f"{node.key_path('state')}: unknown review state {raw[:40]!r}")
    return state


def _review(node: _Node, comment_count: int = 0) -> ReviewRecord:
    return ReviewRecord(
        external_id=str(node.req_int("id")),
        reviewer=_user_or_ghost(node, "user"),
        state=_review_state(node),
        submitted_at=node.req_time("submitted_at"),
        commit_sha=node.opt_str("commit_id"),
        body=node.opt_str("body"),
        comment_count=comment_count,
    )


def _comment(node: _Node, kind: CommentKind) -> CommentRecord:
    return CommentRecord(
        external_id=str(node.req_int("id")),
        author=_user_or_ghost(node, "user"),
        body=node.opt_str("body"),
        created_at=node.req_time("created_at"),
        kind=kind,
        path=node.opt_str("path"),
        review_external_id=_id(node.opt_int("pull_request_review_id")),
    )


def _git_user(node: _Node | None) -> GitUserRecord | None:
    if node is None:
        return None
    return GitUserRecord(name=node.opt_str("name"), email=_email(node.opt_str("email")))


def _rest_commit(node: _Node) -> CommitRecord:
    git = node.req_obj("commit")
    message = git.req_str("message")
    author = _git_user(git.opt_obj("author"))
    committed_at = git.opt_time("committer", "date")
    authored_at = git.opt_time("author", "date") or committed_at
    if authored_at is None:
        raise PayloadError(f"{git.key_path('author.date')}: missing")
    return CommitRecord(
        sha=node.req_str("sha"),
        message=message,
        author=author or GitUserRecord(name="", email=""),
        authored_at=authored_at,
        committer=_git_user(git.opt_obj("committer")),
        committed_at=committed_at,
        author_account=_opt_user(node.opt_obj("author")),
        committer_account=_committer_account(_opt_user(node.opt_obj("committer"))),
        parents=tuple(parent.req_str("sha") for parent in node.opt_objs("parents") or []),
        co_authors=co_authors(message),
    )


def _committer_account(account: UserRecord | None) -> UserRecord | None:
    return None if account is None or account.login == WEB_COMMITTER_LOGIN else account


def _push_commit(node: _Node) -> CommitRecord:
    message = node.req_str("message")
    author = node.req_obj("author")
    username = author.opt_str("username")
    committer_login = node.opt_str("committer", "username")
    return CommitRecord(
        sha=node.req_str("id"),
        message=message,
        author=GitUserRecord(name=author.opt_str("name"), email=_email(author.opt_str("email"))),
        # A push payload has one timestamp per commit, and no parents.
        authored_at=node.req_time("timestamp"),
        committer=_git_user(node.opt_obj("committer")),
        paths=tuple(path for key in ("added", "modified", "removed") for path in node.opt_strs(key)),
        author_account=UserRecord(provider="github", login=username, is_bot=is_bot(username)) if username else None,
        committer_account=_committer_account(
            UserRecord(provider="github", login=committer_login, is_bot=is_bot(committer_login))
            if committer_login
            else None
        ),
        co_authors=co_authors(message),
    )


def _changed_file(node: _Node) -> ChangedFileRecord:
    return ChangedFileRecord(
        path=node.req_str("filename"),
        additions=node.req_int("additions"),
        deletions=node.req_int("deletions"),
        status=node.opt_str("status") or "modified",
        previous_path=node.opt_str("previous_filename"),
        patch_id=patch_id(node.opt_str("patch")) if node.opt_str("patch") else "",
    )


def _status_state(node: _Node) -> StatusState:
    raw = node.req_str("state")
    state = _STATUS_STATES.get(raw)
    if state is None:
        raise PayloadError(f"{node.key_path('state')}: unknown status state {raw[:40]!r}")
    return state


def _status(node: _Node, sha: str) -> StatusRecord:
    return StatusRecord(
        sha=sha,
        context=node.req_str("context"),
        state=_status_state(node),
        updated_at=node.req_time("updated_at"),
        description=node.opt_str("description"),
        target_url=node.opt_str("target_url"),
        external_id=str(node.req_int("id")),
        source="status",
    )


def _check_state(node: _Node) -> StatusState:
    if node.req_str("status") != "completed":
        return "pending"  # queued, in_progress, waiting, requested, pending
    conclusion = node.opt_str("conclusion")
    if conclusion in _CHECK_SUCCESS:
        return "success"
    if conclusion in _CHECK_FAILURE:
        return "failure"
    # Completed without a conclusion we know: not a pass, and not the author's fault either.
    return "error"


def _single_pull_request_number(pulls: list[_Node]) -> int | None:
    # A check on a commit shared by several pull requests cannot be pinned to one of them.
    return pulls[0].req_int("number") if len(pulls) == 1 else None


# --- public converters for REST objects (used by github_api) ------------------------------------------------------


def parse_repository(data: object, path: str = "repository") -> RepositoryRecord:
    return _repository(_Node(data, path))


def parse_pull_request(
    data: object, path: str = "pull_request", repository: RepositoryRecord | None = None
) -> PullRequestRecord:
    """A pull request object (webhook, list item or single GET); the repository defaults to `base.repo`."""
    return _pull_request(_Node(data, path), repository)


def parse_review(data: object, path: str = "review", comment_count: int = 0) -> ReviewRecord:
    return _review(_Node(data, path), comment_count)


def parse_review_comment(data: object, path: str = "comment") -> CommentRecord:
    return _comment(_Node(data, path), "diff")


def parse_issue_comment(data: object, path: str = "comment") -> CommentRecord:
    return _comment(_Node(data, path), "conversation")


def parse_commit(data: object, path: str = "commit") -> CommitRecord:
    """A REST commit object (pull request commits, compare)."""
    return _rest_commit(_Node(data, path))


def parse_changed_file(data: object, path: str = "file") -> ChangedFileRecord:
    return _changed_file(_Node(data, path))


def parse_status(data: object, sha: str, path: str = "status") -> StatusRecord:
    """A REST commit status object; it does not repeat the commit's sha, so the caller passes it."""
    return _status(_Node(data, path), sha)


# --- webhooks -------------------------------------------------------------------------------------------------------


def _on_pull_request(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    pull = _pull_request(root.req_obj("pull_request"), repository)
    if event.action == "ready_for_review":
        pull = replace(pull, ready_at=pull.updated_at)
    elif event.action == "synchronize":
        pull = replace(pull, pushed_at=pull.updated_at)
    event.pull_request = pull
    event.pull_request_number = pull.number


def _on_pull_request_review(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    review = root.req_obj("review")
    if review.req_str("state").lower() == "pending":
        event.ignored = "pending review"
        return
    event.reviews = [_review(review)]
    # The review payload carries a simple pull request (no `merged`, no size figures): enough to upsert it.
    event.pull_request = _pull_request(root.req_obj("pull_request"), repository)
    event.pull_request_number = event.pull_request.number


def _on_pull_request_review_comment(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    event.comments = [_comment(root.req_obj("comment"), "diff")]
    # This payload's pull request may lack `draft`, so it is named by number only, never upserted from here.
    event.pull_request_number = root.req_int("pull_request", "number")


def _on_issue_comment(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    issue = root.req_obj("issue")
    if issue.opt_obj("pull_request") is None:
        event.ignored = "comment on an issue, not a pull request"
        return
    event.comments = [_comment(root.req_obj("comment"), "conversation")]
    event.pull_request_number = issue.req_int("number")


def _on_push(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    ref = root.req_str("ref")
    if not ref.startswith("refs/heads/"):
        event.ref = ref
        event.ignored = f"push to {ref}, not a branch"
        return
    event.ref = ref.removeprefix("refs/heads/")
    if root.opt_bool("deleted"):
        event.ignored = "branch deleted"
        return
    pusher = _opt_user(root.opt_obj("sender"))
    event.commits = [replace(_push_commit(commit), pusher=pusher) for commit in root.req_objs("commits")]


def _on_status(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    event.statuses = [_status(root, root.req_str("sha"))]


def _on_check_run(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    run = root.req_obj("check_run")
    event.statuses = [
        StatusRecord(
            sha=run.req_str("head_sha"),
            context=run.req_str("name"),
            state=_check_state(run),
            updated_at=run.opt_time("completed_at") or run.req_time("started_at"),
            description=run.opt_str("output", "title"),
            target_url=run.opt_str("html_url") or run.opt_str("details_url"),
            external_id=str(run.req_int("id")),
            source="check_run",
        )
    ]
    event.pull_request_number = _single_pull_request_number(run.req_objs("pull_requests"))


def _on_check_suite(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    suite = root.req_obj("check_suite")
    app = suite.req_obj("app")
    event.statuses = [
        StatusRecord(
            sha=suite.req_str("head_sha"),
            context=app.opt_str("slug") or app.req_str("name"),
            state=_check_state(suite),
            updated_at=suite.req_time("updated_at"),
            external_id=str(suite.req_int("id")),
            source="check_suite",
        )
    ]
    event.pull_request_number = _single_pull_request_number(suite.req_objs("pull_requests"))


def _deployment(
    node: _Node, repository: RepositoryRecord, *, status: str, updated_at: dt.datetime, environment: str = ""
) -> DeploymentRecord:
    return DeploymentRecord(
        repository=repository,
        external_id=str(node.req_int("id")),
        environment=environment or node.req_str("environment"),
        sha=node.req_str("sha"),
        status=status,
        created_at=node.req_time("created_at"),
        updated_at=updated_at,
        ref=node.opt_str("ref"),
    )


def _on_deployment(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    deployment = root.req_obj("deployment")
    # A new deployment has no status yet; GitHub shows it as pending until the first deployment_status.
    record = _deployment(deployment, repository, status="pending", updated_at=deployment.req_time("updated_at"))
    event.deployments = [record]


def _on_deployment_status(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    status_node = root.req_obj("deployment_status")
    state = status_node.req_str("state")
    if state == "inactive":
        event.ignored = "deployment status inactive (superseded by a later deployment)"
        return
    status = _DEPLOYMENT_STATES.get(state)
    if status is None:
        raise PayloadError(f"{status_node.key_path('state')}: unknown deployment state {state[:40]!r}")
    updated_at = status_node.req_time("updated_at")
    record = _deployment(
        root.req_obj("deployment"),
        repository,
        status=status,
        updated_at=updated_at,
        environment=status_node.opt_str("environment"),
    )
    url = status_node.opt_str("log_url") or status_node.opt_str("target_url") or status_node.opt_str("environment_url")
    event.deployments = [
        replace(record, url=url, finished_at=updated_at if status in _DEPLOYMENT_FINAL else None),
    ]


def _on_deployment_protection_rule(root: _Node, event: WebhookEvent, repository: RepositoryRecord) -> None:
    if root.opt_str("action") != "requested":
        event.ignored = f"deployment protection rule {root.opt_str('action')[:40]!r}: only requests are answered"
        return
    deployment = root.raw("deployment")
    sha = root.opt_str("sha") or (root.req_obj("deployment").req_str("sha") if isinstance(deployment, dict) else "")
    if not sha:
        raise PayloadError("deployment_protection_rule: neither sha nor deployment.sha")
    event.protection_rules = [
        ProtectionRuleRecord(
            environment=root.req_str("environment"),
            sha=sha,
            callback_url=root.req_str("deployment_callback_url"),
            ref=root.opt_str("ref"),
            deployment_id=(root.opt_int("deployment", "id") or 0) if isinstance(deployment, dict) else 0,
        )
    ]


_HANDLERS: dict[str, Callable[[_Node, WebhookEvent, RepositoryRecord], None]] = {
    "pull_request": _on_pull_request,
    "pull_request_review": _on_pull_request_review,
    "pull_request_review_comment": _on_pull_request_review_comment,
    "issue_comment": _on_issue_comment,
    "push": _on_push,
    "status": _on_status,
    "check_run": _on_check_run,
    "check_suite": _on_check_suite,
    "deployment": _on_deployment,
    "deployment_status": _on_deployment_status,
    "deployment_protection_rule": _on_deployment_protection_rule,
}


def parse_webhook(event: str, payload: object) -> WebhookEvent:
    """What one GitHub delivery means, as records.

    `event` is the `X-GitHub-Event` header; `payload` the decoded JSON body. Events Tandem does not act on come
    back with `ignored` set. A payload missing keys, with values of the wrong type, or with values no column can
    store (limits.py), raises PayloadError naming the key path.
    """
    result = _parse_webhook(event, payload)
    record_check(result)
    return result


def _parse_webhook(event: str, payload: object) -> WebhookEvent:
    if not isinstance(event, str) or not event:
        raise PayloadError(f"event: expected a non-empty string, got {event!r:.40}")
    root = _Node(payload)
    result = WebhookEvent(provider="github", event=event, action=root.opt_str("action"))
    if event == "ping":
        hooked = root.opt_obj("repository")  # absent for organisation and app hooks
        result.repository = None if hooked is None else _repository(hooked)
        result.sender = _opt_user(root.opt_obj("sender"))
        result.ignored = "ping"
        return result
    handler = _HANDLERS.get(event)
    if handler is None:
        result.ignored = f"unhandled event {event}"
        return result
    result.repository = repository = _repository(root.req_obj("repository"))
    result.sender = _opt_user(root.opt_obj("sender"))
    handler(root, result, repository)
    return result


# The events that speak of a GitHub App's installation rather than of a repository's contents.
INSTALLATION_EVENTS = frozenset({"installation", "installation_repositories"})
_PERMISSION_NAME = re.compile(r"^[a-z_]{1,100}$")


def parse_installation(data: object, path: str = "installation") -> InstallationRecord:
    """An installation object: `GET /repos/{owner}/{repo}/installation`, `GET /app/installations/{id}`, or the
    `installation` of an installation webhook."""
    node = _Node(data, path)
    installation_id = node.req_int("id")
    if installation_id <= 0:
        raise PayloadError(f"{node.key_path('id')}: expected a positive id, got {installation_id}")
    account = node.opt_obj("account")
    node.opt_obj("permissions")  # an object or nothing
    raw_permissions = node.raw("permissions") or {}
    suspended_by = node.opt_obj("suspended_by")
    return InstallationRecord(
        installation_id=installation_id,
        account_login=account.opt_str("login") if account is not None else "",
        account_type=(account.opt_str("type") if account is not None else "") or node.opt_str("target_type"),
        repository_selection=node.opt_str("repository_selection"),
        # Only names GitHub's permissions can have: the column is JSON, and nothing else is read from it.
        permissions={
            key: value
            for key, value in raw_permissions.items()
            if isinstance(key, str)
            and isinstance(value, str)
            and _PERMISSION_NAME.match(key)
            and _PERMISSION_NAME.match(value)
        },
        events=[event for event in node.opt_strs("events") if _PERMISSION_NAME.match(event)],
        suspended_at=node.opt_time("suspended_at"),
        suspended_by=suspended_by.opt_str("login") if suspended_by is not None else "",
    )


def parse_installation_event(event: str, payload: object) -> InstallationEvent:
    """An `installation` (created, deleted, suspend, unsuspend, new_permissions_accepted) or
    `installation_repositories` (added, removed) delivery."""
    if event not in INSTALLATION_EVENTS:
        raise PayloadError(f"event: {event[:40]!r} is not an installation event")
    root = _Node(payload)
    installation = parse_installation(root.raw("installation"), "installation")
    action = root.req_str("action")
    sender = root.opt_obj("sender")
    result = InstallationEvent(
        event=event,
        action=action,
        installation=installation,
        repositories=[_listed_repository(item) for item in root.opt_objs("repositories") or []],
        repositories_added=[_listed_repository(item) for item in root.opt_objs("repositories_added") or []],
        repositories_removed=[_listed_repository(item) for item in root.opt_objs("repositories_removed") or []],
        sender=sender.opt_str("login") if sender is not None else "",
    )
    record_check(result)
    return result


def _listed_repository(node: _Node) -> RepositoryRecord:
    """A repository as installation payloads list it: id, name, full_name, private; no default branch."""
    return RepositoryRecord(
        provider="github", external_id=str(node.req_int("id")), full_path=node.req_str("full_name"), default_branch=""
    )


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256` ("sha256=<hex HMAC of the raw body>") in constant time.

    An empty secret verifies nothing: an unconfigured connection must not accept every delivery.
    """
    if not secret or not header or not header.startswith("sha256="):
        return False
    return secret_matches(hmac_sha256_hex(secret, body), header.removeprefix("sha256=").strip().lower())
