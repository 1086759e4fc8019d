"""Small builders for policy tests: people, reviews and snapshots with sensible defaults."""

from __future__ import annotations

import datetime as dt
import textwrap
from typing import Any

from reviews.policy import (
    CommitRef,
    FileChange,
    PairingCredit,
    PersonRef,
    Policy,
    ReviewRef,
    Snapshot,
    parse_policy,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
HEAD = "head111"
OLD = "old0000"


def person(login: str, *, teams: tuple[str, ...] = (), bot: bool = False, email: str = "") -> PersonRef:
    names = {login, email} if email else {login}
    return PersonRef(id=f"id-{login}", names=frozenset(names), is_bot=bot, teams=frozenset(teams))


ADA = person("ada", email="ada@example.com")  # the author, unless a test says otherwise
BOB = person("bob", teams=("payments",))
CY = person("cy", teams=("web",))
DEE = person("dee", teams=("leads",))
BOT = person("renovate[bot]", bot=True)


def review(
    reviewer: PersonRef,
    state: str = "approved",
    *,
    sha: str = HEAD,
    minute: int = 0,
    review_id: str = "",
) -> ReviewRef:
    return ReviewRef(
        id=review_id or f"{reviewer.id}-{state}-{minute}",
        reviewer=reviewer,
        state=state,
        commit_sha=sha,
        submitted_at=NOW - dt.timedelta(hours=1) + dt.timedelta(minutes=minute),
    )


def commit(author: PersonRef | None, *co_authors: PersonRef, sha: str = HEAD) -> CommitRef:
    return CommitRef(sha=sha, author=author, co_authors=co_authors, committed_at=NOW - dt.timedelta(hours=2))


def paired(partner: PersonRef, source: str = "co_author") -> PairingCredit:
    return PairingCredit(partner=partner, source=source, detail=f"{source} on {HEAD[:7]}")


def snapshot(**overrides: Any) -> Snapshot:
    values: dict[str, Any] = {
        "head_sha": HEAD,
        "now": NOW,
        "author": ADA,
        "base_ref": "main",
        "files": (FileChange("src/app.py"),),
        "commits": (commit(ADA),),
        "changed_lines": 40,
    }
    values.update(overrides)
    return Snapshot(**values)


def files(*paths: str) -> tuple[FileChange, ...]:
    return tuple(FileChange(path) for path in paths)


def policy(text: str) -> Policy:
    return parse_policy(textwrap.dedent(text))


def one_rule(require: str = "{approvals: 1}", *, when: str = "", options: str = "", extra: str = "") -> Policy:
    """A policy with a single rule named "rule", written inline: `one_rule("{approvals: 2}", when="{draft: false}")`."""
    lines = ["rules:", "  - name: rule", f"    require: {require}"]
    if when:
        lines.append(f"    if: {when}")
    if options:
        lines.append(f"    options: {options}")
    return parse_policy("\n".join(lines) + "\n" + textwrap.dedent(extra))
