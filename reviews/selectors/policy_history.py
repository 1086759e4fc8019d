"""A policy's version history: each version with its author (a person, or a token and the lead who created it),
its reason, and the diff from the version before it."""

from __future__ import annotations

import difflib
from typing import Any

from reviews.models import PolicyVersion, Repository, Team


def _author(version: PolicyVersion) -> dict[str, Any]:
    token = version.token
    return {
        "user": version.author.get_username() if version.author else None,
        "token": {"name": token.name, "prefix": token.prefix} if token else None,
    }


def policy_version_diff(previous: str, document: str, *, number: int) -> str:
    lines = difflib.unified_diff(
        previous.splitlines(keepends=True),
        document.splitlines(keepends=True),
        fromfile=f"version {number - 1}" if previous else "nothing",
        tofile=f"version {number}",
    )
    return "".join(lines)


def policy_history(*, team: Team | None, repository: Repository | None) -> list[dict[str, Any]]:
    """Newest first. Policies change rarely, so the whole history is read at once."""
    versions = list(
        PolicyVersion.objects.filter(policy__team=team, policy__repository=repository)
        .select_related("author", "token", "restored_from")
        .order_by("number")
    )
    history, previous = [], ""
    for version in versions:
        history.append(
            {
                "number": version.number,
                "created_at": version.created_at,
                "author": _author(version),
                "reason": version.reason,
                "restored_from": version.restored_from.number if version.restored_from else None,
                "document": version.document,
                "diff": policy_version_diff(previous, version.document, number=version.number),
            }
        )
        previous = version.document
    return history[::-1]
