"""Parse `Co-authored-by:` trailers from commit messages (git's trailer convention, as GitHub reads it)."""

from __future__ import annotations

import re

from reviews.integrations.records import GitUserRecord

_TRAILER = re.compile(r"^\s*co-authored-by\s*:\s*(?P<name>.*?)\s*<\s*(?P<email>[^<>\s]+@[^<>\s]+)\s*>\s*$", re.I)
_ANY_TRAILER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*\s*:\s*\S")


def co_authors(message: str) -> tuple[GitUserRecord, ...]:
    """The co-authors named in the message's trailer block, in order, without duplicates.

    Trailers are read from the last paragraph only, as `git interpret-trailers` does: a paragraph counts as
    the trailer block when at least a quarter of its lines are "Key: value" trailers (so `Fixes #12` may sit
    among them) and one of them is a Co-authored-by; indented lines continue the trailer above them. A
    "Co-authored-by:" line in the middle of the body is prose, not a trailer.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip().replace("\r\n", "\n")) if p.strip()]
    if len(paragraphs) < 2:
        return ()
    lines = _unfolded(paragraphs[-1].splitlines())
    trailers = [line for line in lines if _ANY_TRAILER.match(line)]
    if not trailers or len(trailers) * 4 < len(lines):
        return ()
    found: dict[str, GitUserRecord] = {}
    for line in trailers:
        match = _TRAILER.match(line)
        if match:
            email = match["email"].lower()
            found.setdefault(email, GitUserRecord(name=match["name"], email=email))
    return tuple(found.values())


def _unfolded(lines: list[str]) -> list[str]:
    """Join continuation lines (starting with whitespace) onto the line before them."""
    joined: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if line[:1].isspace() and joined:
            joined[-1] = f"{joined[-1].rstrip()} {line.strip()}"
        else:
            joined.append(line)
    return joined
