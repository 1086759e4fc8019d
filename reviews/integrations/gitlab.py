"""Turn GitLab webhook payloads into provider-neutral records.

`parse_webhook(event, payload)` takes the `X-Gitlab-Event` header and the decoded JSON body. It accepts both the
current payload shapes (GitLab 16/17, with `event_type`, `draft`, `reviewers`, note `action`) and the older ones
(2017-era payloads without `event_type`, `work_in_progress` instead of `draft`, users without ids). Anything
malformed raises `PayloadError` naming the key path (`object_attributes.iid: expected an integer, got string`);
no KeyError/TypeError/ValueError escapes.

Decisions worth knowing:

- Merge request author: hooks carry only `author_id`; the author is known only when the acting `user` is that id
  (or, in old payloads without ids, when the action is `open`). Otherwise `author` is None: keep what is stored.
- Timestamps: GitLab mixes "2025-08-05 21:48:25 UTC", "2017-12-10T17:01:11Z", "2021-02-23T02:41:37.886Z",
  "2013-12-03T17:23:34+00:00" and "2021-04-28 21:50:00 +0200"; all become aware UTC datetimes.
- Bots: a user is a bot when the payload says `bot: true`, or the username says so (`reviews.integrations.bots`:
  project/group access token users, service accounts, `ghost`, support-bot, ...).
- Statuses: the pipeline is reported as context `gitlab-ci/pipeline` (a child pipeline, source `parent_pipeline`,
  as `gitlab-ci/pipeline/<name or "child">` so it cannot overwrite its parent), each job under its job name (the
  name GitLab's commit-status API shows). created/waiting_for_resource/preparing/pending/running/scheduled/manual
  are pending; success is success; failed is failure, except a job allowed to fail, which GitLab itself counts
  as passed; canceled/canceling/skipped are error: the check did not prove anything, yet the code did not fail.
  External ids are `pipeline:<id>` and `job:<id>` so the two id spaces cannot collide.
- Deployments: GitLab's deployment hook has no ref and only `status_changed_at`; the sha comes from
  `commit_url` (its last segment), created_at and updated_at are the status change time. `approved`/`rejected`
  (protected-environment approvals) are ignored: the lifecycle events that follow carry the status.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

from reviews.integrations.bots import is_bot
from reviews.integrations.limits import moment_check, record_check
from reviews.integrations.payloads import JsonReader, json_type
from reviews.integrations.records import (
    CommentRecord,
    CommitRecord,
    DeploymentRecord,
    GitUserRecord,
    PayloadError,
    PullRequestRecord,
    PullRequestState,
    RepositoryRecord,
    ReviewRecord,
    StatusRecord,
    StatusState,
    UserRecord,
    WebhookEvent,
)
from reviews.integrations.signing import secret_matches
from reviews.integrations.trailers import co_authors

__all__ = [
    "PIPELINE_CONTEXT",
    "PayloadReader",
    "approval_external_id",
    "clean_email",
    "is_draft",
    "merge_request_state",
    "parse_timestamp",
    "parse_webhook",
    "pipeline_state",
    "user_record",
    "verify_token",
]

PIPELINE_CONTEXT = "gitlab-ci/pipeline"

_NULL_SHA = "0" * 40
_REDACTED = "[redacted]"

_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d+))?)?"
    r"\s*(?P<tz>Z|UTC|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)

_DRAFT_TITLE = re.compile(r"^\s*(?:\[draft\]|\(draft\)|draft:|draft\s+-|\[wip\]|wip:)", re.IGNORECASE)

_MR_STATES: dict[str, PullRequestState] = {
    "opened": "open",
    "reopened": "open",
    "locked": "open",  # transitional: the merge is in progress
    "merged": "merged",
    "closed": "closed",
}
_MR_STATE_IDS: dict[int, PullRequestState] = {1: "open", 2: "closed", 3: "merged", 4: "open"}

_PENDING_CI = {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled", "manual"}
_UNPROVEN_CI = {"canceled", "canceling", "skipped"}

_DEPLOYMENT_STATUSES = {
    "created": "pending",
    "blocked": "pending",
    "running": "in_progress",
    "success": "success",
    "failed": "failure",
    "canceled": "canceled",
}
_DEPLOYMENT_FINAL = {"success", "failure", "canceled"}

# X-Gitlab-Event header → object_kind it announces. Service and system hooks are told apart by object_kind.
_HEADER_KINDS = {
    "Merge Request Hook": "merge_request",
    "Note Hook": "note",
    "Confidential Note Hook": "note",
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Pipeline Hook": "pipeline",
    "Job Hook": "build",
    "Build Hook": "build",
    "Deployment Hook": "deployment",
    "Release Hook": "release",
    "Issue Hook": "issue",
    "Confidential Issue Hook": "issue",
    "Wiki Page Hook": "wiki_page",
    "Emoji Hook": "emoji",
    "Feature Flag Hook": "feature_flag",
    "Milestone Hook": "milestone",
}
_GENERIC_HEADERS = {"Service Hook", "System Hook"}


def parse_webhook(event: str, payload: dict[str, Any]) -> WebhookEvent:
    """What one GitLab webhook delivery means. `event` is the `X-Gitlab-Event` header. Values no column can store
    (limits.py) raise PayloadError too."""
    result = _parse_webhook(event, payload)
    record_check(result)
    return result


def _parse_webhook(event: str, payload: dict[str, Any]) -> WebhookEvent:
    root = PayloadReader(payload, "")
    kind = root.opt_str("object_kind") or root.opt_str("event_name")
    if event in _GENERIC_HEADERS:
        if not kind:
            raise PayloadError("object_kind: missing (and no event_name either)")
    elif event in _HEADER_KINDS:
        expected = _HEADER_KINDS[event]
        if kind and kind != expected:
            raise PayloadError(f"object_kind: {kind!r} does not match the {event!r} header")
        kind = expected
    else:
        return WebhookEvent(provider="gitlab", event=kind or event, ignored=f"unsupported X-Gitlab-Event {event!r}")

    handler = _HANDLERS.get(kind)
    if handler is None:
        return WebhookEvent(
            provider="gitlab",
            event=kind,
            action=_best_effort_action(root),
            repository=_best_effort_repository(root),
            ignored=f"{kind} events are not used by Tandem",
        )
    return handler(root)


def verify_token(expected: str, header: str | None) -> bool:
    """Whether the `X-Gitlab-Token` header carries the configured secret (constant-time comparison).

    GitLab sends the secret itself, not a signature. An unset secret verifies nothing: False.
    """
    return secret_matches(expected, header)


def parse_timestamp(value: str, path: str = "timestamp") -> dt.datetime:
    """Parse any of the timestamp spellings GitLab uses into an aware UTC datetime. Raises ValueError, or
    PayloadError naming `path` for a time outside what Tandem stores (limits.moment_check)."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise ValueError(f"not a timestamp: {value!r}")
    date = dt.date.fromisoformat(match["date"])
    micro = int((match["frac"] or "0")[:6].ljust(6, "0"))
    clock = (int(match["h"]), int(match["m"]), int(match["s"] or 0), micro)
    moment = dt.datetime(date.year, date.month, date.day, *clock, tzinfo=_zone(match["tz"]))
    # Bounds first: converting year 1 or 9999 to UTC can overflow.
    return moment_check(moment, path).astimezone(dt.UTC)


def pipeline_state(status: str, *, allow_failure: bool = False) -> StatusState:
    """Map a GitLab pipeline or job status onto Tandem's four states (see the module docstring)."""
    if status in _PENDING_CI:
        return "pending"
    if status == "success":
        return "success"
    if status == "failed":
        return "success" if allow_failure else "failure"
    return "error"  # canceled, canceling, skipped, and any status this code does not know yet


# --- event handlers ---------------------------------------------------------------------------------------------


def _merge_request_event(root: PayloadReader) -> WebhookEvent:
    attrs = root.req_obj("object_attributes")
    action = attrs.opt_str("action")
    repository = _repository(root)
    actor = _opt_user(root, "user")
    updated_at = attrs.req_time("updated_at")

    author = None
    if actor is not None:
        if actor.external_id and actor.external_id == attrs.opt_id("author_id"):
            author = actor
        elif not actor.external_id and action == "open":
            author = actor  # old payloads have no user ids; whoever opens a merge request is its author
    if author is None and attrs.opt_id("author_id"):
        # Only the id: the services resolve it to a person Tandem already knows, or keep what is stored.
        author = UserRecord(provider="gitlab", login="", external_id=attrs.opt_id("author_id"))

    last_commit = attrs.opt_obj("last_commit")
    pull_request = PullRequestRecord(
        repository=repository,
        number=attrs.req_int("iid"),
        external_id=attrs.req_id("id"),
        title=attrs.req_str("title"),
        author=author,
        state=merge_request_state(attrs),
        created_at=attrs.req_time("created_at"),
        updated_at=updated_at,
        body=attrs.opt_str("description"),
        draft=is_draft(attrs),
        base_ref=attrs.req_str("target_branch"),
        head_ref=attrs.req_str("source_branch"),
        head_sha=last_commit.req_str("id") if last_commit else "",
        merge_commit_sha=attrs.opt_str("merge_commit_sha"),
        labels=_labels(root, attrs),
        web_url=attrs.opt_str("url"),
        merged_at=updated_at if action == "merge" else None,
        closed_at=updated_at if action == "close" else None,
        merged_by=actor if action == "merge" else None,
        ready_at=updated_at if _became_ready(root) else None,
        pushed_at=updated_at if action == "update" and attrs.opt_str("oldrev") else None,
        requested_reviewers=_requested_reviewers(root, attrs),
    )
    event = WebhookEvent(
        provider="gitlab",
        event="merge_request",
        action=action,
        repository=repository,
        pull_request=pull_request,
        sender=actor,
    )
    if action in ("approved", "approval", "unapproved", "unapproval"):
        if actor is None:
            raise PayloadError(f"user: missing on a merge request {action} event")
        if action in ("approved", "approval"):
            event.reviews.append(
                ReviewRecord(
                    external_id=approval_external_id(actor),
                    reviewer=actor,
                    state="approved",
                    submitted_at=updated_at,
                    commit_sha=pull_request.head_sha,
                )
            )
        else:
            event.withdrawn_approvals.append(actor)
    return event


def _note_event(root: PayloadReader) -> WebhookEvent:
    attrs = root.req_obj("object_attributes")
    noteable_type = attrs.req_str("noteable_type")
    # The `action` key arrived in GitLab 16.11 together with edit events: before that, every note hook was a create.
    action = attrs.opt_str("action") or "create"
    repository = _repository(root)
    if noteable_type != "MergeRequest":
        return WebhookEvent(
            provider="gitlab",
            event="note",
            action=action,
            repository=repository,
            sender=_sender(root),
            ignored=f"note on a {noteable_type}, not on a merge request",
        )
    author = user_record(root.req_obj("user"))
    position = attrs.opt_obj("position")
    path = (position.opt_str("new_path") or position.opt_str("old_path")) if position else ""
    comment = CommentRecord(
        external_id=attrs.req_id("id"),
        author=author,
        body=attrs.opt_str("note"),
        created_at=attrs.req_time("created_at"),
        kind="diff" if attrs.opt_str("type") == "DiffNote" or position else "conversation",
        is_system=attrs.opt_bool("system"),
        path=path,
    )
    return WebhookEvent(
        provider="gitlab",
        event="note",
        action=action,
        repository=repository,
        pull_request=_embedded_merge_request(root.req_obj("merge_request"), repository),
        comments=[comment],
        sender=author,
    )


def _push_event(root: PayloadReader) -> WebhookEvent:
    ref = root.req_str("ref")
    repository = _repository(root)
    sender = _push_user(root)
    if not ref.startswith("refs/heads/"):
        return WebhookEvent(
            provider="gitlab",
            event="push",
            repository=repository,
            ref=ref,
            sender=sender,
            ignored=f"push to {ref}, not to a branch",
        )
    action = ""
    commits: list[CommitRecord] = []
    if root.opt_str("after") == _NULL_SHA:
        action = "deleted"  # a deleted branch brings no commits, whatever the payload lists
    else:
        if root.opt_str("before") == _NULL_SHA:
            action = "created"
        commits = [replace(_push_commit(commit), pusher=sender) for commit in root.req_objs("commits")]
    return WebhookEvent(
        provider="gitlab",
        event="push",
        action=action,
        repository=repository,
        commits=commits,
        ref=ref.removeprefix("refs/heads/"),
        sender=sender,
    )


def _pipeline_event(root: PayloadReader) -> WebhookEvent:
    attrs = root.req_obj("object_attributes")
    repository = _repository(root)
    pipeline_id = attrs.req_int("id")
    sha = attrs.req_str("sha")
    status = attrs.req_str("status")
    builds = root.opt_objs("builds") or []

    moments = [attrs.req_time("created_at"), attrs.opt_time("finished_at")]
    for build in builds:
        moments += [build.opt_time("created_at"), build.opt_time("started_at"), build.opt_time("finished_at")]
    statuses = [
        StatusRecord(
            sha=sha,
            context=_pipeline_context(attrs),
            state=pipeline_state(status),
            updated_at=max(moment for moment in moments if moment is not None),
            description=f"Pipeline #{pipeline_id} {status}",
            target_url=attrs.opt_str("url") or _join_url(repository.web_url, f"-/pipelines/{pipeline_id}"),
            external_id=f"pipeline:{pipeline_id}",
            source="pipeline",
        )
    ]
    for build in builds:
        statuses.append(_build_status(build, sha=sha, web_url=repository.web_url))

    merge_request = root.opt_obj("merge_request")
    return WebhookEvent(
        provider="gitlab",
        event="pipeline",
        action=status,
        repository=repository,
        pull_request_number=merge_request.req_int("iid") if merge_request else None,
        statuses=statuses,
        ref=attrs.opt_str("ref"),
        sender=_sender(root),
    )


def _job_event(root: PayloadReader) -> WebhookEvent:
    repository = _repository(root)
    status = root.req_str("build_status")
    job_id = root.req_int("build_id")
    stage = root.opt_str("build_stage")
    reason = root.opt_str("build_failure_reason") if status == "failed" else ""
    updated_at = (
        root.opt_time("build_finished_at") or root.opt_time("build_started_at") or root.req_time("build_created_at")
    )
    status_record = StatusRecord(
        sha=root.req_str("sha"),
        context=root.req_str("build_name"),
        state=pipeline_state(status, allow_failure=root.opt_bool("build_allow_failure")),
        updated_at=updated_at,
        description=_job_description(stage, status, reason),
        target_url=_join_url(repository.web_url, f"-/jobs/{job_id}"),
        external_id=f"job:{job_id}",
        source="job",
    )
    return WebhookEvent(
        provider="gitlab",
        event="build",
        action=status,
        repository=repository,
        statuses=[status_record],
        ref=root.opt_str("ref"),
        sender=_sender(root),
    )


def _deployment_event(root: PayloadReader) -> WebhookEvent:
    repository = _repository(root)
    raw_status = root.req_str("status")
    sender = _sender(root)
    if raw_status in ("approved", "rejected"):
        return WebhookEvent(
            provider="gitlab",
            event="deployment",
            action=raw_status,
            repository=repository,
            sender=sender,
            ignored=f"deployment {raw_status} by an approver; the lifecycle events carry the status",
        )
    status = _DEPLOYMENT_STATUSES.get(raw_status, "error")
    changed_at = root.req_time("status_changed_at")
    sha = _sha_from_commit_url(root.opt_str("commit_url")) or root.opt_str("short_sha")
    if not sha:
        raise PayloadError("commit_url: missing, and no short_sha either")
    deployment = DeploymentRecord(
        repository=repository,
        external_id=root.req_id("deployment_id"),
        environment=root.req_str("environment"),
        sha=sha,
        status=status,
        created_at=changed_at,
        updated_at=changed_at,
        url=root.opt_str("deployable_url") or root.opt_str("environment_external_url"),
        finished_at=changed_at if status in _DEPLOYMENT_FINAL else None,
    )
    return WebhookEvent(
        provider="gitlab",
        event="deployment",
        action=raw_status,
        repository=repository,
        deployments=[deployment],
        sender=sender,
    )


_HANDLERS: dict[str, Callable[[PayloadReader], WebhookEvent]] = {
    "merge_request": _merge_request_event,
    "note": _note_event,
    "push": _push_event,
    "pipeline": _pipeline_event,
    "build": _job_event,
    "deployment": _deployment_event,
}


# --- pieces -----------------------------------------------------------------------------------------------------


def approval_external_id(user: UserRecord) -> str:
    """The one Review a GitLab approval maps to: webhooks and the API agree on it, so upserts meet."""
    return f"approval:{user.external_id or user.login}"


def _repository(root: PayloadReader) -> RepositoryRecord:
    project = root.opt_obj("project")
    if project is not None and project.opt_str("path_with_namespace"):
        external_id = project.opt_id("id") or root.opt_id("project_id")
        if not external_id:
            raise PayloadError("project.id: missing, and no project_id either")
        return RepositoryRecord(
            provider="gitlab",
            external_id=external_id,
            full_path=project.req_str("path_with_namespace"),
            default_branch=project.opt_str("default_branch"),
            web_url=project.opt_str("web_url") or project.opt_str("homepage"),
        )
    # Job hooks before GitLab 16.3 have no project object: project_id and the repository's homepage instead.
    repository = root.opt_obj("repository")
    homepage = repository.opt_str("homepage") if repository else ""
    external_id = root.opt_id("project_id")
    if not homepage or not external_id:
        raise PayloadError("project: missing (and no project_id with repository.homepage either)")
    return RepositoryRecord(
        provider="gitlab",
        external_id=external_id,
        full_path=urlparse(homepage).path.strip("/"),
        default_branch="",
        web_url=homepage,
    )


def _best_effort_repository(root: PayloadReader) -> RepositoryRecord | None:
    try:
        return _repository(root)
    except PayloadError:
        return None  # an ignored event must not fail over a repository Tandem does not need


def _best_effort_action(root: PayloadReader) -> str:
    try:
        attrs = root.opt_obj("object_attributes")
        return (attrs.opt_str("action") if attrs else "") or root.opt_str("action")
    except PayloadError:
        return ""


def user_record(user: PayloadReader) -> UserRecord:
    username = user.req_str("username")
    return UserRecord(
        provider="gitlab",
        login=username,
        external_id=user.opt_id("id"),
        name=user.opt_str("name"),
        email=clean_email(user.opt_str("email")),
        is_bot=is_bot(username, marked=user.opt_bool("bot")),
    )


def _opt_user(root: PayloadReader, key: str) -> UserRecord | None:
    user = root.opt_obj(key)
    return user_record(user) if user is not None else None


def _sender(root: PayloadReader) -> UserRecord | None:
    """Who triggered an event Tandem does not attribute to anyone: None when the payload cannot say.

    Job hooks, for one, send the user without a username.
    """
    user = root.opt_obj("user")
    if user is None or not user.opt_str("username"):
        return None
    return user_record(user)


def _push_user(root: PayloadReader) -> UserRecord | None:
    username = root.opt_str("user_username")
    if not username:
        return None  # system hook pushes and old payloads name the pusher only by display name
    return UserRecord(
        provider="gitlab",
        login=username,
        external_id=root.opt_id("user_id"),
        name=root.opt_str("user_name"),
        email=clean_email(root.opt_str("user_email")),
        is_bot=is_bot(username),
    )


def _push_commit(commit: PayloadReader) -> CommitRecord:
    author = commit.req_obj("author")
    message = commit.opt_str("message")
    return CommitRecord(
        sha=commit.req_str("id"),
        message=message,
        author=GitUserRecord(name=author.opt_str("name"), email=clean_email(author.opt_str("email"))),
        authored_at=commit.req_time("timestamp"),
        co_authors=co_authors(message),
        paths=tuple(path for key in ("added", "modified", "removed") for path in commit.opt_strs(key)),
    )


def _embedded_merge_request(mr: PayloadReader, repository: RepositoryRecord) -> PullRequestRecord:
    """The merge request a note hook embeds: fewer fields than a merge request hook, so more is left unknown."""
    last_commit = mr.opt_obj("last_commit")
    labels = mr.opt_objs_or_texts("labels")
    return PullRequestRecord(
        repository=repository,
        number=mr.req_int("iid"),
        external_id=mr.req_id("id"),
        title=mr.req_str("title"),
        author=None,
        state=merge_request_state(mr),
        created_at=mr.req_time("created_at"),
        updated_at=mr.req_time("updated_at"),
        body=mr.opt_str("description"),
        draft=is_draft(mr),
        base_ref=mr.req_str("target_branch"),
        head_ref=mr.req_str("source_branch"),
        head_sha=last_commit.req_str("id") if last_commit else "",
        merge_commit_sha=mr.opt_str("merge_commit_sha"),
        labels=tuple(labels) if labels is not None else None,
        web_url=mr.opt_str("url"),
    )


def merge_request_state(attrs: PayloadReader) -> PullRequestState:
    state = attrs.opt_str("state")
    if state:
        if state not in _MR_STATES:
            raise PayloadError(f"{attrs.key_path('state')}: unknown merge request state {state!r}")
        return _MR_STATES[state]
    state_id = attrs.opt_int("state_id")
    if state_id not in _MR_STATE_IDS:
        raise PayloadError(f"{attrs.key_path('state')}: missing")
    return _MR_STATE_IDS[state_id]


def is_draft(attrs: PayloadReader) -> bool:
    if attrs.has("draft"):
        return attrs.opt_bool("draft")
    return attrs.opt_bool("work_in_progress")


def _labels(root: PayloadReader, attrs: PayloadReader) -> tuple[str, ...] | None:
    labels = root.opt_objs_or_texts("labels")
    if labels is None:
        labels = attrs.opt_objs_or_texts("labels")
    return tuple(labels) if labels is not None else None


def _requested_reviewers(root: PayloadReader, attrs: PayloadReader) -> tuple[UserRecord, ...] | None:
    reviewers = root.opt_objs("reviewers")
    if reviewers is not None:
        return tuple(user_record(reviewer) for reviewer in reviewers)
    # GitLab leaves `reviewers` out when there are none; `reviewer_ids` tells an empty list from an old payload.
    reviewer_ids = attrs.opt_list("reviewer_ids")
    if reviewer_ids is not None and not reviewer_ids:
        return ()
    return None


def _became_ready(root: PayloadReader) -> bool:
    changes = root.opt_obj("changes")
    if changes is None:
        return False
    for key in ("draft", "work_in_progress"):
        change = changes.opt_obj(key)
        if change is not None:
            return change.raw("previous") is True and change.raw("current") is False
    title = changes.opt_obj("title")
    if title is None:
        return False
    previous, current = title.raw("previous"), title.raw("current")
    return (
        isinstance(previous, str)
        and isinstance(current, str)
        and bool(_DRAFT_TITLE.match(previous))
        and not _DRAFT_TITLE.match(current)
    )


def _pipeline_context(attrs: PayloadReader) -> str:
    if attrs.opt_str("source") == "parent_pipeline":
        return f"{PIPELINE_CONTEXT}/{attrs.opt_str('name') or 'child'}"
    return PIPELINE_CONTEXT


def _build_status(build: PayloadReader, *, sha: str, web_url: str) -> StatusRecord:
    job_id = build.req_int("id")
    status = build.req_str("status")
    updated_at = build.opt_time("finished_at") or build.opt_time("started_at") or build.req_time("created_at")
    reason = build.opt_str("failure_reason") if status == "failed" else ""
    return StatusRecord(
        sha=sha,
        context=build.req_str("name"),
        state=pipeline_state(status, allow_failure=build.opt_bool("allow_failure")),
        updated_at=updated_at,
        description=_job_description(build.opt_str("stage"), status, reason),
        target_url=_join_url(web_url, f"-/jobs/{job_id}"),
        external_id=f"job:{job_id}",
        source="job",
    )


def _job_description(stage: str, status: str, reason: str) -> str:
    text = f"{stage}: {status}" if stage else status
    return f"{text} ({reason})" if reason else text


def _sha_from_commit_url(url: str) -> str:
    last = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1] if url else ""
    return last if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", last) else ""


def _join_url(base: str, suffix: str) -> str:
    return f"{base.rstrip('/')}/{suffix}" if base else ""


def clean_email(email: str) -> str:
    return "" if email.strip().lower() == _REDACTED else email


def _zone(tz: str | None) -> dt.tzinfo:
    if tz is None or tz.upper() in ("Z", "UTC"):
        return dt.UTC  # GitLab's naive timestamps are UTC
    digits = tz[1:].replace(":", "")
    offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return dt.timezone(-offset if tz[0] == "-" else offset)


class PayloadReader(JsonReader):
    """An object of a GitLab payload or API response (`reviews.integrations.payloads.JsonReader`): its times come in
    any of GitLab's spellings (`parse_timestamp`)."""

    __slots__ = ()

    def _time(self, value: Any, path: str) -> dt.datetime:
        if not isinstance(value, str):
            raise PayloadError(f"{path}: expected a string, got {json_type(value)}")
        try:
            return parse_timestamp(value, path)
        except PayloadError:
            raise
        except ValueError:
            raise PayloadError(f"{path}: not a timestamp: {value[:40]!r}") from None

    def opt_objs_or_texts(self, key: str) -> list[str] | None:
        """Label titles: GitLab sends label objects in hooks and plain names in the REST API."""
        items = self.opt_list(key)
        if items is None:
            return None
        return [
            item if isinstance(item, str) else self._child(item, f"{self.key_path(key)}[{index}]").req_str("title")
            for index, item in enumerate(items)
        ]
