"""Which override is in force: the one definition the verdict and the compliance figures share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reviews.models import Override, PullRequest
from reviews.prepared import PreparedRead


def override_covers(*, given_on: str, head_sha: str, diff_ids: dict[str, Any]) -> bool:
    """An override covers the head it was given on and a pure rebase of it (same diff fingerprint); a push that
    changes the patch ends it. Without both fingerprints nothing proves it was a rebase."""
    if given_on == head_sha:
        return True
    before, now = diff_ids.get(given_on), diff_ids.get(head_sha)
    return bool(before) and before == now


_LATEST_STANDING = PreparedRead(
    lambda pull_request: (
        Override.objects.filter(pull_request_id=pull_request, withdrawal__isnull=True)
        .select_related("overridden_by")
        .order_by("-created_at", "-pk")[:1]
    ),
    pull_request=int,
)


def override_in_force(*, pull_request: PullRequest) -> tuple[Override | None, Override | None]:
    """(the override covering the current head, the latest one a later push ended)."""
    latest = _LATEST_STANDING.first(pull_request=pull_request.pk)
    if latest is None:
        return None, None
    if override_covers(given_on=latest.head_sha, head_sha=pull_request.head_sha, diff_ids=pull_request.diff_ids):
        return latest, None
    return None, latest


def pull_requests_overridden(*, pull_request_ids: Iterable[int]) -> set[int]:
    """Of these pull requests, those whose latest standing override covers their head: one query."""
    rows = (
        Override.objects.filter(pull_request_id__in=pull_request_ids, withdrawal__isnull=True)
        .order_by("pull_request_id", "-created_at", "-pk")
        .values_list("pull_request_id", "head_sha", "pull_request__head_sha", "pull_request__diff_ids")
    )
    seen: set[int] = set()
    covered: set[int] = set()
    for pull_request_id, given_on, head_sha, diff_ids in rows:
        if pull_request_id in seen:
            continue  # only the latest override of each pull request stands
        seen.add(pull_request_id)
        if override_covers(given_on=given_on, head_sha=head_sha, diff_ids=diff_ids or {}):
            covered.add(pull_request_id)
    return covered
