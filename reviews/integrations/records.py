"""Provider-neutral plain records.

The GitHub and GitLab adapters turn webhook payloads and API objects into these records; the services in
`reviews.services` upsert them into rows. Nothing here imports Django, so the adapters stay testable as pure
functions and the services never see a provider's payload shape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Provider = Literal["github", "gitlab"]
PullRequestState = Literal["open", "merged", "closed"]
ReviewState = Literal["approved", "changes_requested", "commented", "dismissed"]
StatusState = Literal["success", "pending", "failure", "error"]
CommentKind = Literal["conversation", "diff", "review_body"]


def max_length(length: int) -> dict[str, int]:
    """Dataclass field metadata: the max_length of the column the field is stored in (see limits.py)."""
    return {"max_length": length}


def big_int() -> dict[str, bool]:
    """Dataclass field metadata: an id stored in a PositiveBigIntegerField (see limits.py)."""
    return {"big_int": True}


class PayloadError(ValueError):
    """A payload is missing keys or has values of the wrong type.

    Raised by the adapters; the webhook task marks the delivery failed with this message (no retry: the same
    payload would fail again) and writes no domain rows.
    """


@dataclass(frozen=True)
class UserRecord:
    provider: Provider
    login: str = field(metadata=max_length(255))  # GitHub login or GitLab username, as the provider spells it
    external_id: str = field(
        default="", metadata=max_length(64)
    )  # the provider's numeric user id, as a string; "" when unknown
    name: str = field(default="", metadata=max_length(200))
    email: str = field(default="", metadata=max_length(255))
    is_bot: bool = False


@dataclass(frozen=True)
class GitUserRecord:
    """A person as git records them: name and e-mail (commit author, committer, Co-authored-by trailer)."""

    name: str = field(metadata=max_length(200))
    email: str = field(metadata=max_length(255))


@dataclass(frozen=True)
class RepositoryRecord:
    provider: Provider
    external_id: str = field(metadata=max_length(64))  # GitHub repository id / GitLab project id, as a string
    full_path: str = field(metadata=max_length(255))  # "owner/name" or "group/subgroup/project"
    default_branch: str = field(default="main", metadata=max_length(255))
    web_url: str = field(default="", metadata=max_length(200))


@dataclass(frozen=True)
class ChangedFileRecord:
    path: str = field(metadata=max_length(1000))
    additions: int = 0
    deletions: int = 0
    status: str = field(default="modified", metadata=max_length(20))  # added / modified / removed / renamed
    previous_path: str = field(default="", metadata=max_length(1000))
    patch_id: str = ""  # see patch_id(); "" when the VCS sent no patch (binary, too large)


def patch_id(patch: str) -> str:
    """A fingerprint of one file's change that survives a rebase, like `git patch-id`.

    Only the added and removed lines count, whitespace-insensitively; hunk headers (whose line numbers move
    when the base moves) and context lines do not. Two pushes with the same fingerprints for every file are
    the same change: approvals given on the first may stand for the second.
    """
    import hashlib

    digest = hashlib.sha256()
    for line in patch.splitlines():
        if line.startswith(("+++", "---")) or not line.startswith(("+", "-")):
            continue
        digest.update(line[0].encode())
        digest.update("".join(line[1:].split()).encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class PullRequestRecord:
    repository: RepositoryRecord
    number: int  # GitHub number / GitLab iid
    external_id: str = field(metadata=max_length(64))  # GitHub PR id / GitLab MR id
    title: str = field(metadata=max_length(1000))
    author: UserRecord | None
    state: PullRequestState
    created_at: dt.datetime
    updated_at: dt.datetime
    body: str = ""
    draft: bool = False
    base_ref: str = field(default="", metadata=max_length(255))
    head_ref: str = field(default="", metadata=max_length(255))
    head_sha: str = field(default="", metadata=max_length(64))
    merge_commit_sha: str = field(default="", metadata=max_length(64))
    # None when the payload does not carry the figure (GitLab hooks, GitHub list calls): keep what is stored.
    additions: int | None = None
    deletions: int | None = None
    changed_files: int | None = None
    labels: tuple[str, ...] | None = None
    web_url: str = field(default="", metadata=max_length(500))
    merged_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    merged_by: UserRecord | None = None
    # Set when the event itself says the PR just became ready (GitHub ready_for_review, GitLab draft→ready).
    ready_at: dt.datetime | None = None
    # Set when the event says new commits were pushed (GitHub synchronize, GitLab update with oldrev).
    pushed_at: dt.datetime | None = None
    requested_reviewers: tuple[UserRecord, ...] | None = None


@dataclass(frozen=True)
class ReviewRecord:
    external_id: str = field(metadata=max_length(64))
    reviewer: UserRecord
    state: ReviewState
    submitted_at: dt.datetime
    commit_sha: str = field(default="", metadata=max_length(64))
    body: str = ""
    comment_count: int = 0


@dataclass(frozen=True)
class CommentRecord:
    external_id: str = field(metadata=max_length(64))
    author: UserRecord
    body: str
    created_at: dt.datetime
    kind: CommentKind = "conversation"
    is_system: bool = False
    path: str = field(default="", metadata=max_length(1000))
    review_external_id: str = ""  # GitHub line comments belong to a review


@dataclass(frozen=True)
class CommitRecord:
    sha: str = field(metadata=max_length(64))
    message: str
    author: GitUserRecord
    authored_at: dt.datetime
    committer: GitUserRecord | None = None
    committed_at: dt.datetime | None = None
    author_account: UserRecord | None = None  # the VCS account git's e-mail maps to, when the API says
    committer_account: UserRecord | None = None  # likewise for the committer (never GitHub's own web-flow)
    # None: the source does not say (a push payload lists no parents); () is a root commit.
    parents: tuple[str, ...] | None = None
    co_authors: tuple[GitUserRecord, ...] = ()  # parsed from Co-authored-by trailers
    pusher: UserRecord | None = None  # who pushed it, when a push webhook says (its sender)
    paths: tuple[str, ...] = ()  # a push webhook's files added, modified or removed by it


@dataclass(frozen=True)
class StatusRecord:
    sha: str = field(metadata=max_length(64))
    context: str = field(
        metadata=max_length(255)
    )  # GitHub status context / check run name; GitLab pipeline or job name
    state: StatusState
    updated_at: dt.datetime
    description: str = field(default="", metadata=max_length(1000))
    target_url: str = field(default="", metadata=max_length(1000))
    external_id: str = field(default="", metadata=max_length(64))
    source: str = field(default="status", metadata=max_length(20))  # status / check_run / check_suite / pipeline / job


@dataclass(frozen=True)
class DeploymentRecord:
    repository: RepositoryRecord
    external_id: str = field(metadata=max_length(200))
    environment: str = field(metadata=max_length(100))
    sha: str = field(metadata=max_length(64))
    status: str = field(metadata=max_length(20))  # pending / in_progress / success / failure / error / canceled
    created_at: dt.datetime
    updated_at: dt.datetime
    ref: str = field(default="", metadata=max_length(255))
    url: str = field(default="", metadata=max_length(1000))
    finished_at: dt.datetime | None = None


@dataclass(frozen=True)
class ProtectionRuleRecord:
    """GitHub asks a custom deployment protection rule (a GitHub App) whether a deployment may go ahead: answered
    at `callback_url` for `environment` (`deployment_protection_rule` event)."""

    environment: str = field(metadata=max_length(100))
    sha: str = field(metadata=max_length(64))
    callback_url: str = field(metadata=max_length(1000))
    ref: str = field(default="", metadata=max_length(255))
    # GitHub's deployment: a job run again keeps the run (and so the callback URL) but is a new deployment.
    deployment_id: int = 0


@dataclass
class WebhookEvent:
    """What one webhook delivery means, in provider-neutral records.

    `ignored` is set (with a reason) for events Tandem stores but does not act on. Reviews, comments, commits
    and statuses refer to `pull_request` when they belong to one; `pull_request_number` names it when the
    payload carries only the number (a review that arrives before its pull request).
    """

    provider: Provider
    event: str
    action: str = ""
    repository: RepositoryRecord | None = None
    pull_request: PullRequestRecord | None = None
    pull_request_number: int | None = None
    reviews: list[ReviewRecord] = field(default_factory=list)
    # Approvals GitLab withdrew (unapproved/unapproval): the reviewer's approval Review becomes dismissed.
    withdrawn_approvals: list[UserRecord] = field(default_factory=list)
    comments: list[CommentRecord] = field(default_factory=list)
    commits: list[CommitRecord] = field(default_factory=list)
    statuses: list[StatusRecord] = field(default_factory=list)
    deployments: list[DeploymentRecord] = field(default_factory=list)
    protection_rules: list[ProtectionRuleRecord] = field(default_factory=list)
    ref: str = field(default="", metadata=max_length(255))  # push: the branch pushed to
    sender: UserRecord | None = None
    ignored: str = ""


@dataclass(frozen=True)
class CompareRead:
    """What a compare (`base...head`) said: the commits reachable from head and not from base, oldest first.
    `etag` is the first page's, for a conditional request next time; `unchanged` says such a request found the
    comparison as it was (its commits are not sent again)."""

    commits: tuple[CommitRecord, ...] = ()
    etag: str = ""
    unchanged: bool = False


@dataclass(frozen=True)
class FileRead:
    """The first of several locations that holds a file, on one ref. `path` is "" when none does; `unchanged`
    says a conditional request found the file as it was (its text is not sent again)."""

    path: str
    text: str = ""
    etag: str = ""
    unchanged: bool = False


@dataclass(frozen=True)
class InstallationRecord:
    """A GitHub App's installation on an organisation or user account, as the API or a webhook shows it."""

    installation_id: int = field(metadata=big_int())
    account_login: str = field(default="", metadata=max_length(255))
    account_type: str = field(default="", metadata=max_length(20))  # Organization or User
    repository_selection: str = field(default="", metadata=max_length(20))  # all or selected
    permissions: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    suspended_at: dt.datetime | None = None
    suspended_by: str = field(default="", metadata=max_length(255))


@dataclass(frozen=True)
class InstallationEvent:
    """An `installation` or `installation_repositories` webhook: what happened to an installation, the repositories
    it covers (`installation`), or those added to it or removed from it (`installation_repositories`). Listed
    repositories carry no default branch: those payloads do not say."""

    event: str
    action: str
    installation: InstallationRecord
    repositories: list[RepositoryRecord] = field(default_factory=list)  # `installation`: those it covers
    repositories_added: list[RepositoryRecord] = field(default_factory=list)
    repositories_removed: list[RepositoryRecord] = field(default_factory=list)
    sender: str = field(default="", metadata=max_length(255))


@dataclass(frozen=True)
class InstallationTokenRecord:
    """An installation access token and when GitHub says it expires (an hour after it was minted)."""

    token: str
    expires_at: dt.datetime
    permissions: dict[str, str] = field(default_factory=dict)
