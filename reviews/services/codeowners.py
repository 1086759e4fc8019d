"""CODEOWNERS read from the repository: GitHub's and GitLab's locations, in their order, on a pull request's base
branch, with conditional requests so that an unchanged file costs no quota. A CODEOWNERS pasted on the repository
in Tandem overrides the file."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db.models import Exists, OuterRef
from django.utils import timezone

from reviews.integrations.records import FileRead, PayloadError
from reviews.integrations.vcs import VcsError
from reviews.models import CodeownersFile, PullRequest, Repository
from reviews.policy import Policy as ParsedPolicy
from reviews.policy import asks_code_owners
from reviews.selectors.affected import open_pull_requests_of_repositories
from reviews.selectors.policy import effective_policy
from reviews.services.enqueue import pull_request_evaluations_enqueue
from reviews.services.sync import ClientFactory, vcs_client_for

logger = logging.getLogger(__name__)

# Where each provider looks for CODEOWNERS, in the order it looks (the first found is the one that applies).
CODEOWNERS_PATHS: dict[str, tuple[str, ...]] = {
    "github": (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"),
    "gitlab": ("CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"),
}
# How long a read is trusted before it is checked again (conditionally) when no push said it changed.
CODEOWNERS_MAX_AGE = dt.timedelta(minutes=10)


def codeowners_refresh(
    *,
    repository: Repository,
    branch: str,
    client_factory: ClientFactory = vcs_client_for,
    now: dt.datetime | None = None,
    force: bool = False,
    policy: ParsedPolicy | None = None,
) -> bool:
    """Read CODEOWNERS from `branch` unless the last read is recent. A failure is recorded on the row (the verdicts
    that need code owners wait, saying why). True when what Tandem knows of the file changed. `policy`: the
    repository's effective policy, when the caller has read it already."""
    if repository.codeowners.strip():
        return False  # pasted in Tandem: the override is what counts
    if not asks_code_owners(policy or effective_policy(repository=repository)[1]):
        return False  # no rule needs it: no quota spent on it
    now = now or timezone.now()
    row, _ = CodeownersFile.objects.get_or_create(repository=repository, branch=branch)
    fresh = row.fetched_at is not None and row.fetched_at > now - CODEOWNERS_MAX_AGE and not row.error
    if fresh and not force:
        return False
    before = (row.path, row.text, row.error, row.fetched_at is None)
    try:
        client = client_factory(repository)
    except VcsError as error:
        _failed(row, now, str(error))  # no credentials, or none GitHub accepts: the rules that need it wait
        return before != (row.path, row.text, row.error, False)
    try:
        known = FileRead(row.path, row.text, row.etag) if row.fetched_at is not None or row.etag else None
        read = client.first_file(repository.full_path, CODEOWNERS_PATHS[repository.provider], branch, known)
    except (VcsError, PayloadError) as error:
        logger.warning("could not read CODEOWNERS of %s@%s: %s", repository, branch, error)
        _failed(row, now, str(error))
    else:
        _stored(row, now, read)
    finally:
        client.close()
    return before != (row.path, row.text, row.error, False)


def _failed(row: CodeownersFile, now: dt.datetime, error: str) -> None:
    row.error = error[:500]
    row.fetched_at = now
    row.save(update_fields=["error", "fetched_at"])


def _stored(row: CodeownersFile, now: dt.datetime, read: FileRead) -> None:
    if not read.unchanged:
        row.path, row.text = read.path, read.text
    row.etag = read.etag
    row.error = ""
    row.fetched_at = now
    row.save(update_fields=["path", "text", "etag", "error", "fetched_at"])


def codeowners_touched(*, repository: Repository, paths: Iterable[str]) -> bool:
    """A push changed one of the CODEOWNERS locations: every branch's copy is read again before the next verdict,
    and the repository's open pull requests are evaluated again."""
    locations = {location for candidates in CODEOWNERS_PATHS.values() for location in candidates}
    if not locations & set(paths):
        return False
    CodeownersFile.objects.filter(repository=repository).update(fetched_at=None)
    pull_request_evaluations_enqueue(
        pull_request_ids=open_pull_requests_of_repositories(repository_ids=[repository.pk])
    )
    return True


def codeowners_refresh_due(*, now: dt.datetime | None = None) -> list[int]:
    """Beat: read again the copies that failed or grew old while pull requests wait on them; return the open pull
    requests whose code owners changed, for evaluation."""
    now = now or timezone.now()
    waiting = PullRequest.objects.filter(
        repository=OuterRef("repository"), base_ref=OuterRef("branch"), state=PullRequest.State.OPEN
    )
    due = (
        CodeownersFile.objects.select_related("repository__connection")
        .filter(Exists(waiting))
        .exclude(fetched_at__gt=now - CODEOWNERS_MAX_AGE, error="")
    )
    changed: set[int] = set()
    for row in due:
        if codeowners_refresh(repository=row.repository, branch=row.branch, now=now, force=True):
            changed.add(row.repository_id)
    return open_pull_requests_of_repositories(repository_ids=changed)
