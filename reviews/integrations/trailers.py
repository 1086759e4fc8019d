"""Parse `Co-authored-by:` trailers from commit messages (git's trailer convention, as GitHub reads it)."""

from __future__ import annotations

import re

from reviews.integrations.records import GitUserRecord

_TRAILER = re.compile(r"^\s*co-authored-by\s*:\s*(?P<name>.*?)\s*<\s*(?P<email>[^<>\s]+@[^<>\s]+)\s*>\s*$", re.I)
_ANY_TRAILER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*\s*:\s*\S")


def co_authors(message: str) -> tuple[GitUserRecord, ...]:
    """The co-authors named in the message's trailer block, in order, without duplicates.

    Trailers are only read from the last paragraph, and only when every non-empty line of it looks like a
    trailer ("Key: value"), as `git interpret-trailers` does. A "Co-authored-by:" line in the middle of the
    body is prose, not a trailer.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip().replace("\r\n", "\n")) if p.strip()]
    if len(paragraphs) < 2:
        return ()
    lines = [line for line in paragraphs[-1].splitlines() if line.strip()]
    if not all(_ANY_TRAILER.match(line) for line in lines):
        return ()
    found: dict[str, GitUserRecord] = {}
    for line in lines:
        match = _TRAILER.match(line)
        if match:
            email = match["email"].lower()
            found.setdefault(email, GitUserRecord(name=match["name"], email=email))
    return tuple(found.values())
