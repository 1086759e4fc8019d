"""Sync: walk a repository's pull requests through the VCS API, incrementally, with the same upserts webhooks
use. Backfills history and repairs what webhooks missed.

The watermark (`Repository.synced_until`) only moves when a run completes, so an interrupted run (rate limit,
outage, crash) is resumed from where the last complete one ended; the upserts make the repeat harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from reviews.integrations.records import (
    ChangedFileRecord,
    PayloadError,
    PullRequestRecord,
    RepositoryRecord,
    UserRecord,
)
from reviews.integrations.vcs import Details, VcsClient, VcsError, VcsRateLimited
from reviews.models import Connection, PullRequest, Repository, Review, SyncRun
from reviews.prepared import PreparedUpdates
from reviews.services.credentials import (
    connection_has_credentials,
    connection_token,
    vcs_client_for,
    vcs_client_for_path,
)
from reviews.services.enqueue import pull_request_evaluations_enqueue
from reviews.services.figures import pull_request_figures_owed_mark
from reviews.services.pairing import pairing_sessions_infer
from reviews.services.people import accounts_preloaded
from reviews.services.pull_requests import (
    changed_files_replace,
    comment_upsert,
    commit_upsert,
    pull_request_commits_add,
    pull_request_upsert,
    repository_upsert,
    review_upsert,
)

logger = logging.getLogger(__name__)

# Builds the client for a repository: `client_factory(repository, etags=...)` (credentials.vcs_client_for).
ClientFactory = Callable[..., VcsClient]

__all__ = ["ClientFactory", "connection_token", "vcs_client_for"]  # where the other services import them from


def repository_sync(
    *,
    repository: Repository,
    since: dt.datetime | None = None,
    full: bool = False,
    on_pull_request: Callable[[PullRequestRecord], object] | None = None,
    client_factory: ClientFactory = vcs_client_for,
    graphql: bool | None = None,
) -> SyncRun:
    """Sync one repository. `full` ignores the watermark (and ETags); `since` replaces the watermark. `graphql`
    (default: settings.SYNC_GRAPHQL) reads the details of many pull requests to a call; false reads each by REST.

    Raises VcsRateLimited (after recording it on the run) so that a task can retry after the wait.
    """
    watermark = None if full else (since or repository.synced_until)
    conditional = not full and since is None
    graphql = settings.SYNC_GRAPHQL if graphql is None else graphql
    run = SyncRun.objects.create(repository=repository, full=full, since=watermark)
    try:
        client = client_factory(repository, etags=dict(repository.sync_etags) if conditional else {})
    except VcsError as error:
        # No credentials, or none GitHub accepts: the run says why (the admin shows it), and nothing moves.
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), error=str(error)
        )
        raise
    record = repository_record(repository)
    client.know_repository(record)
    newest = watermark

    def wanted(listed: PullRequestRecord) -> bool:
        if watermark and listed.updated_at <= watermark:
            return False  # GitLab's updated_after is inclusive: this one was stored by the run that set the mark
        # A resumed backfill passes over what the interrupted run stored, for no API call.
        return full or not _already_stored(repository, listed)

    try:
        for listed_at, details in _changed_details(client, record, watermark, wanted, graphql=graphql):
            stored = pull_request_sync_apply(repository=repository, details=details)
            if stored.state == PullRequest.State.OPEN:
                # What the sync stored may be what the webhooks missed: the verdict is posted again if it changed.
                # On the background worker's queue: a backfill stores thousands, never in front of a webhook's pass.
                pull_request_evaluations_enqueue(pull_request_ids=[stored.pk], in_background=True)
            else:  # a review, comment or commit after the merge changes its figures
                pull_request_figures_owed_mark(pull_requests=[stored.pk])
            run.pull_requests_synced += 1
            _stop_before_the_budget_runs_out(client)
            newest = max(newest, listed_at) if newest else listed_at
            if on_pull_request is not None:
                on_pull_request(details.pull_request)
    except VcsRateLimited as error:
        _end_run(run, client, SyncRun.Status.RATE_LIMITED, newest, error=str(error))
        raise
    except Exception as error:
        _end_run(run, client, SyncRun.Status.FAILED, newest, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        client.close()
    _end_run(run, client, SyncRun.Status.COMPLETED, newest)
    fields = ["synced_until"]
    repository.synced_until = newest
    if conditional:
        repository.sync_etags = client.etags
        fields.append("sync_etags")
    repository.save(update_fields=fields)
    return run


# Pull requests a listing gave whose details are asked for together (the clients split them into GraphQL calls).
DETAILS_BATCH = 50


def _changed_details(
    client: VcsClient,
    record: RepositoryRecord,
    watermark: dt.datetime | None,
    wanted: Callable[[PullRequestRecord], bool],
    *,
    graphql: bool,
) -> Iterator[tuple[dt.datetime, Details]]:
    """(when the listing said it was updated, its details) for each pull request `wanted`, newest first.

    A backfill reads pages of pull requests with their details through GraphQL. An incremental run lists what
    changed since the watermark (GitHub: a conditional request, free when nothing did; GitLab: updated_after) and
    reads the details of what it listed, many to a GraphQL call. Only the listing's time moves the watermark: a
    pull request changed after its listing is listed again next time.
    """
    if graphql and watermark is None:
        for details in client.pull_requests_with_details(record.full_path, record, wanted):
            yield details.pull_request.updated_at, details
        return
    listed = (pull for pull in client.pull_requests_since(record.full_path, watermark) if wanted(pull))
    if not graphql:
        for pull in listed:
            yield pull.updated_at, client.details(record.full_path, pull.number, pull)
        return
    for chunk in _chunks(listed, DETAILS_BATCH):
        for pull, details in zip(chunk, client.details_many(record.full_path, chunk, record), strict=True):
            yield pull.updated_at, details


def _chunks(items: Iterable[PullRequestRecord], size: int) -> Iterator[list[PullRequestRecord]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def repository_record(repository: Repository) -> RepositoryRecord:
    """The repository as Tandem stored it, for the calls that would otherwise ask the VCS for it again."""
    return RepositoryRecord(
        provider="github" if repository.connection.provider == "github" else "gitlab",
        external_id=repository.external_id,
        full_path=repository.full_path,
        default_branch=repository.default_branch,
        web_url=repository.web_url,
    )


# Seconds before each new try at a head's missing facts; the last one repeats while they stay missing.
FACTS_RETRY_SECONDS = (15, 60, 300, 900, 1800)


def pull_request_facts_fetch(*, pull_request: PullRequest, client_factory: ClientFactory = vcs_client_for) -> bool:
    """Fetch the head's files, commits and reviews when they are missing. A failure is recorded on the row (why,
    and when to try again) rather than raised: the verdict waits for the facts and says why (no credentials, an
    installation token GitHub would not mint, an installation suspended). True when stored."""
    try:
        return pull_request_refresh(pull_request=pull_request, client_factory=client_factory)
    except VcsError as error:
        logger.warning("could not fetch the facts of %s: %s", pull_request, error)
        _facts_missing(pull_request, str(error))
        return False
    except PayloadError as error:
        # The provider answered something Tandem cannot read: the facts stay missing, with the reason and a backoff,
        # exactly like an answer that never came (the verdict says "not yet", never "yes").
        logger.warning("unreadable facts of %s: %s", pull_request, error)
        _facts_missing(pull_request, f"The provider's answer could not be read: {error}")
        return False


def _facts_missing(pull_request: PullRequest, reason: str) -> None:
    _retry_later(pull_request, "facts_error", reason)


def _retry_later(pull_request: PullRequest, error_field: str, reason: str) -> None:
    """Record why a fetch failed in `error_field` and when to try again, on the facts' backoff."""
    attempts = pull_request.facts_attempts + 1
    delay = FACTS_RETRY_SECONDS[min(attempts, len(FACTS_RETRY_SECONDS)) - 1]
    values = {
        error_field: reason[:500],
        "facts_attempts": attempts,
        "facts_retry_at": timezone.now() + dt.timedelta(seconds=delay),
    }
    PullRequest.objects.filter(pk=pull_request.pk).update(**values)
    for field, value in values.items():
        setattr(pull_request, field, value)


def pull_requests_facts_due(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Claim the open pull requests whose head's facts, or a fingerprint their verdict needs, are missing and whose
    backoff has run out.

    Claiming moves their next try one step on, so a beat that fires again before the work is done does not
    queue them twice."""
    now = now or timezone.now()
    due = (
        PullRequest.objects.filter(state=PullRequest.State.OPEN)
        .exclude(head_sha="")
        .filter(~Q(details_head_sha=F("head_sha")) | ~Q(fingerprint_error=""))
        .filter(Q(facts_retry_at__isnull=True) | Q(facts_retry_at__lte=now))
        .order_by("facts_retry_at", "pk")
    )
    ids = list(due.values_list("pk", flat=True)[:limit])
    claimed = PullRequest.objects.filter(pk__in=ids).filter(Q(facts_retry_at__isnull=True) | Q(facts_retry_at__lte=now))
    claimed.update(facts_retry_at=now + dt.timedelta(seconds=FACTS_RETRY_SECONDS[0]))
    return ids


def pull_request_refresh(*, pull_request: PullRequest, client_factory: ClientFactory = vcs_client_for) -> bool:
    """Fetch one pull request's details when a push left them behind: its files and diff id belong to a head.

    Reviews, comments and labels arrive with their own webhooks, so only a new head costs API calls. False when
    there is nothing to do; VcsError propagates (credentials.NoAccess when Tandem cannot call for it).
    """
    if pull_request.details_head_sha == pull_request.head_sha:
        return False
    client = client_factory(pull_request.repository)
    try:
        details = client.details(pull_request.repository.full_path, pull_request.number)
    finally:
        client.close()
    pull_request_sync_apply(repository=pull_request.repository, details=details)
    return True


def _stop_before_the_budget_runs_out(client: VcsClient) -> None:
    """Leave the last calls of the rate-limit budget to webhooks' work (statuses, refreshes): stop here and
    resume when the budget resets, rather than run into the wall mid-way."""
    remaining, reset = client.rate_limit()
    if remaining is not None and remaining < settings.SYNC_RATE_LIMIT_RESERVE:
        wait = (reset - timezone.now()).total_seconds() if reset else 60.0
        raise VcsRateLimited(max(wait, 1.0), f"{remaining} API calls left; pausing until the budget resets")
    points, points_reset = client.graphql_rate_limit()
    if points is not None and points < settings.SYNC_GRAPHQL_POINTS_RESERVE:
        wait = (points_reset - timezone.now()).total_seconds() if points_reset else 60.0
        raise VcsRateLimited(max(wait, 1.0), f"{points} GraphQL points left; pausing until the budget resets")


def _accounts_of(details: Details) -> list[UserRecord | None]:
    """Every provider account the details name: read in one query (`accounts_preloaded`)."""
    pull = details.pull_request
    accounts: list[UserRecord | None] = [pull.author, pull.merged_by, *(pull.requested_reviewers or ())]
    accounts += [review.reviewer for review in details.reviews]
    accounts += [comment.author for comment in details.comments]
    for commit in details.commits:
        accounts += [commit.author_account, commit.committer_account, commit.pusher]
    return accounts


def _already_stored(repository: Repository, listed: PullRequestRecord) -> bool:
    return PullRequest.objects.filter(
        repository=repository, number=listed.number, details_synced_at__gte=listed.updated_at
    ).exists()


def _end_run(run: SyncRun, client: VcsClient, status: str, newest: dt.datetime | None, *, error: str = "") -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.api_calls = client.api_calls
    run.newest_update_seen = newest
    run.error = error
    run.save()


_FACTS_STORED = PreparedUpdates(PullRequest)  # by the fingerprint's fields, which vary


def pull_request_sync_apply(*, repository: Repository, details: Details) -> PullRequest:
    """Store one pull request as the API shows it: the API's lists of files and approvals are the whole truth."""
    with transaction.atomic(), accounts_preloaded(connection=repository.connection, accounts=_accounts_of(details)):
        pull_request, _ = pull_request_upsert(repository=repository, record=details.pull_request)
        if not details.files_not_ready:
            changed_files_replace(pull_request=pull_request, files=details.files)
        commits = [commit_upsert(repository=repository, record=commit) for commit in details.commits]
        pull_request_commits_add(pull_request=pull_request, commits=commits)
        pairing_sessions_infer(repository=repository, commits=commits)
        for review in details.reviews:
            review_upsert(pull_request=pull_request, record=review)
        _withdrawn_approvals_dismiss(repository=repository, pull_request=pull_request, details=details)
        for comment in details.comments:
            comment_upsert(pull_request=pull_request, record=comment)
        if details.files_not_ready:
            # Reviews and commits are stored, but the head's facts are not all known: fetch again later.
            _facts_missing(pull_request, details.files_not_ready)
            return pull_request
        fields: dict[str, object] = {
            "details_synced_at": details.pull_request.updated_at,
            "details_head_sha": details.pull_request.head_sha,
            "files_incomplete": details.files_incomplete[:255],
            "commits_incomplete": details.commits_incomplete[:255],
            "facts_error": "",
            "facts_attempts": 0,
            "facts_retry_at": None,
        }
        fields.update(_fingerprint_fields(pull_request, details))
        _FACTS_STORED.run(pull_request.pk, **fields)
        for field, value in fields.items():
            setattr(pull_request, field, value)
    return pull_request


def _fingerprint_fields(pull_request: PullRequest, details: Details) -> dict[str, object]:
    """The head's fingerprint, or the mark that it is owed.

    A fingerprint serves a later push of an open pull request (an approval kept across a rebase); a closed or merged
    one has no later push. Files that came without patches (GitHub's GraphQL) leave the open head's fingerprint
    owed, with what fetching it takes (the base GitHub showed, the file count to check the answer against), for
    `fingerprints_fetch` to fetch when a verdict needs it: a backfill makes no call per pull request for it."""
    head = details.pull_request.head_sha
    if details.pull_request.state != "open" or not head or details.files_incomplete:
        return {}
    fingerprint = "" if details.patches_deferred else diff_fingerprint(details.files)
    owed = {sha: value for sha, value in pull_request.diff_ids_owed.items() if sha != head}
    fields: dict[str, object] = {}
    if fingerprint:
        pull_request.diff_ids = {**pull_request.diff_ids, head: fingerprint}
        fields["diff_ids"] = pull_request.diff_ids
    elif details.patches_deferred and head not in pull_request.diff_ids:
        owed[head] = {"base": details.base_sha or details.pull_request.base_ref, "files": len(details.files)}
    if owed != pull_request.diff_ids_owed:
        pull_request.diff_ids_owed = owed
        fields["diff_ids_owed"] = owed
    return fields


def fingerprints_wanted(*, pull_request: PullRequest) -> list[str]:
    """The owed fingerprints a verdict needs now, oldest need first: those of the heads an approval or an override
    was given on, and of the head itself, once a push has moved the head away from such a sha (until then the
    approval is of the head, and no fingerprint is read). Two queries; none when nothing is owed."""
    owed = pull_request.diff_ids_owed
    if not owed or pull_request.state != PullRequest.State.OPEN or not pull_request.head_sha:
        return []
    approved = Review.objects.filter(pull_request=pull_request, state=Review.State.APPROVED).exclude(commit_sha="")
    given_on = set(approved.values_list("commit_sha", flat=True))
    given_on.update(
        pull_request.overrides.filter(withdrawal__isnull=True).exclude(head_sha="").values_list("head_sha", flat=True)
    )
    given_on.discard(pull_request.head_sha)
    if not given_on:
        return []
    return [sha for sha in owed if sha in given_on or sha == pull_request.head_sha]


def fingerprints_fetch(*, pull_request: PullRequest, client_factory: ClientFactory = vcs_client_for) -> int:
    """Fetch the owed fingerprints a verdict needs (`fingerprints_wanted`), one compare call each. Returns how many
    calls were made.

    Fail closed: while one is owed, the approval given on it does not count ("not known yet whether the push since
    was a rebase"). A failed fetch is recorded on the row (why, and when to try again on the facts' backoff, which
    `pull_requests_facts_due` claims), never raised. An answer that cannot give the fingerprint (more files than
    the compare lists, a file without a patch) settles it as unknowable: the approval is stale, as it is when the
    pull request's own files cannot give one."""
    if not pull_request.diff_ids_owed and not pull_request.fingerprint_error:
        return 0  # nothing owed: no query, no call (the common case of a verdict pass)
    # What the facts' fetch just stored (a new head's fingerprint) went through another instance of the row.
    pull_request.refresh_from_db(fields=_FINGERPRINT_FIELDS)
    wanted = fingerprints_wanted(pull_request=pull_request)
    if not wanted:
        if pull_request.fingerprint_error:
            _fingerprint_settled(pull_request, {})
        return 0
    repository = pull_request.repository
    found: dict[str, str] = {}
    calls = 0
    try:
        client = client_factory(repository)
        try:
            for sha in wanted:
                owed = pull_request.diff_ids_owed[sha]
                files = client.compare_files(repository.full_path, str(owed.get("base") or ""), sha)
                calls += 1
                complete = len(files) == owed.get("files")
                found[sha] = diff_fingerprint(files) if complete else ""
        finally:
            client.close()
    except (VcsError, PayloadError) as error:
        logger.warning("could not fetch the fingerprint of %s: %s", pull_request, error)
        _fingerprint_settled(pull_request, found)
        _fingerprint_failed(pull_request, str(error))
        return calls
    _fingerprint_settled(pull_request, found)
    return calls


_FINGERPRINT_FIELDS = [
    "state",
    "head_sha",
    "details_head_sha",
    "diff_ids",
    "diff_ids_owed",
    "fingerprint_error",
    "facts_attempts",
    "facts_retry_at",
]


def _fingerprint_settled(pull_request: PullRequest, found: dict[str, str]) -> None:
    """Store what was fetched ("": unknowable, no longer owed) and clear the failure, over the row as it is now (a
    webhook's upsert may have stored a fingerprint meanwhile)."""
    with transaction.atomic():
        current = PullRequest.objects.select_for_update().get(pk=pull_request.pk)
        owed = {sha: value for sha, value in current.diff_ids_owed.items() if sha not in found}
        diff_ids = {**current.diff_ids, **{sha: fingerprint for sha, fingerprint in found.items() if fingerprint}}
        values: dict[str, object] = {"diff_ids_owed": owed, "diff_ids": diff_ids, "fingerprint_error": ""}
        if current.fingerprint_error and current.details_head_sha == current.head_sha:
            values.update(facts_attempts=0, facts_retry_at=None)
        PullRequest.objects.filter(pk=pull_request.pk).update(**values)
    for field, value in values.items():
        setattr(pull_request, field, value)


def _fingerprint_failed(pull_request: PullRequest, reason: str) -> None:
    _retry_later(pull_request, "fingerprint_error", reason)


def _withdrawn_approvals_dismiss(*, repository: Repository, pull_request: PullRequest, details: Details) -> None:
    """GitLab lists the approvals standing now: one it no longer lists was withdrawn while no webhook reached us.

    Only an approval older than the merge request as the API showed it: a list that lags behind a webhook's
    approval must not take it away. GitHub lists every review, a dismissed one as DISMISSED, so an absent one
    is one the API has not caught up with."""
    if repository.connection.provider != "gitlab":
        return
    listed = {review.external_id for review in details.reviews}
    Review.objects.filter(
        pull_request=pull_request, state=Review.State.APPROVED, submitted_at__lte=details.pull_request.updated_at
    ).exclude(external_id__in=listed).update(state=Review.State.DISMISSED)


def diff_fingerprint(files: Sequence[ChangedFileRecord]) -> str:
    """The whole diff's fingerprint, from each file's patch id; "" when any file came without a patch."""
    if not files or any(not file.patch_id for file in files):
        return ""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.path):
        digest.update(f"{file.path}\0{file.previous_path}\0{file.patch_id}\n".encode())
    return digest.hexdigest()


def repositories_due_for_sync(*, provider: str) -> list[int]:
    """Active repositories of this provider whose connection has credentials to sync with, and nothing known in
    the way (a GitHub App installation suspended or not covering them: `Repository.access_error`)."""
    connections = [c.pk for c in Connection.objects.filter(provider=provider) if connection_has_credentials(c)]
    queryset = Repository.objects.filter(is_active=True, connection_id__in=connections, access_error="")
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def repository_for_sync(*, provider: str, full_path: str, connection: Connection | None = None) -> Repository:
    """The repository a sync command names, looked up through the API and created when Tandem does not know it."""
    known = Repository.objects.filter(connection__provider=provider, full_path=full_path)
    if connection is not None:
        known = known.filter(connection=connection)
    repository = known.select_related("connection").first()
    if repository is not None:
        return repository
    connection = connection or default_connection(provider=provider)
    client, installation = vcs_client_for_path(connection, full_path)
    try:
        record = client.repository(full_path)
    finally:
        client.close()
    repository = repository_upsert(connection=connection, record=record)
    if installation is not None and repository.app_installation_id is None:
        Repository.objects.filter(pk=repository.pk).update(app_installation=installation)
        repository.app_installation = installation
    return repository


def default_connection(*, provider: str) -> Connection:
    base_url = settings.GITHUB_API_URL if provider == "github" else settings.GITLAB_URL
    connection, _ = Connection.objects.get_or_create(
        provider=provider, base_url=base_url.rstrip("/"), defaults={"name": f"{provider} ({base_url})"}
    )
    return connection
