"""CODEOWNERS in GitHub syntax and in GitLab syntax (with sections), and the gitignore-style globs both use.

GitHub: the last matching pattern wins; a pattern with no owners leaves its files unowned.
GitLab: `[Section]`, `^[Optional section]`, `[Section][2]` (approvals needed) and default owners after the
header; every section applies on its own and, within a section, the last matching pattern wins.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import re2

from reviews.policy.snapshot import PersonRef

_SECTION_HEADER = re.compile(r"^(?P<optional>\^)?\[(?P<name>[^\]]+)\](?:\[(?P<count>\d+)\])?(?P<owners>.*)$")
_UNESCAPED_SPACE = re.compile(r"(?<!\\)\s+")


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is its author's problem, reported with its line, not server noise
    return options


# Globs, `re:` patterns and CODEOWNERS entries are written by people (a policy's editor, anyone who can push), so
# every one of them runs on RE2, in linear time: a glob such as `**/**/**/…/x` backtracks exponentially in `re`.
RE2_OPTIONS = _re2_options()


@dataclass(frozen=True)
class OwnerRequirement:
    """Who must approve a path: `approvals_needed` of `owners` (lower-case, no `@`), within one section."""

    section: str
    owners: frozenset[str]
    approvals_needed: int = 1
    optional: bool = False
    pattern: str = ""


@dataclass(frozen=True)
class _Entry:
    pattern: str
    regex: Any  # an RE2 pattern: the file is written by anyone who can push, and RE2 runs in linear time
    owners: frozenset[str]
    excludes: bool = False


@dataclass(frozen=True)
class _Section:
    name: str
    optional: bool = False
    approvals_needed: int = 1
    default_owners: frozenset[str] = frozenset()
    entries: tuple[_Entry, ...] = ()


@dataclass(frozen=True)
class CodeOwners:
    syntax: str
    sections: tuple[_Section, ...] = ()
    errors: tuple[str, ...] = ()

    def owners_for(self, path: str) -> list[OwnerRequirement]:
        """One requirement per section that owns the path; an empty list when nobody owns it."""
        path = path.lstrip("/")
        found = (_section_requirement(section, path) for section in self.sections)
        return [requirement for requirement in found if requirement is not None]

    def entries_for(self, path: str) -> list[str]:
        """The pattern of the entry that decides the path's owners, one per section that owns it (as `owners_for`
        reads it: the last matching entry wins; an exclusion or an entry without owners owns nothing)."""
        path = path.lstrip("/")
        patterns = []
        for section in self.sections:
            requirement = _section_requirement(section, path)
            if requirement is not None:
                patterns.append(requirement.pattern)
        return patterns


@functools.lru_cache(maxsize=64)
def parse_codeowners(text: str, syntax: str = "github") -> CodeOwners:
    """Read a CODEOWNERS file. Lines that cannot be read are skipped (as GitHub does) and listed in `errors`.

    Kept for the texts read lately (the result is immutable): every evaluation reads its change's CODEOWNERS, twice,
    and a batch of changes to one repository, a team page or a deploy check evaluates many with the same text;
    compiling every entry's pattern again each time cost most of an evaluation."""
    if syntax not in ("github", "gitlab"):
        raise ValueError(f"unknown CODEOWNERS syntax {syntax!r}; expected github or gitlab")
    sections: dict[str, _Section] = {"": _Section(name="")}
    current = ""
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _SECTION_HEADER.match(line) if syntax == "gitlab" else None
        if header:
            current = _open_section(sections, header)
            continue
        entry = _entry(line, allow_exclusions=syntax == "gitlab")
        if isinstance(entry, str):
            errors.append(f"line {number}: {entry}")
            continue
        section = sections[current]
        sections[current] = _Section(
            section.name, section.optional, section.approvals_needed, section.default_owners, (*section.entries, entry)
        )
    return CodeOwners(syntax=syntax, sections=tuple(sections.values()), errors=tuple(errors))


def is_owner(person: PersonRef, owners: frozenset[str]) -> bool:
    """`org/team` owners match the person's team slugs (by the part after the slash); others match their names."""
    for owner in owners:
        if "/" in owner:
            if owner.rsplit("/", 1)[1] in person.teams or owner in person.teams:
                return True
        elif owner in person.names:
            return True
    return False


def glob_to_regex(pattern: str) -> str:
    """A gitignore-style path pattern as a regular expression over a repository-relative path.

    `/docs/` and `docs/*` are anchored at the root (a leading or middle slash anchors, as in gitignore);
    `*.md` and `docs/` match at any depth; a pattern naming a directory covers everything under it, except
    `dir/*`, which covers only the files directly inside (GitHub's documented reading).
    """
    directory_only = pattern.endswith("/")
    body = pattern.strip("/")
    if not body:
        return r"^.*$"
    anchored = pattern.startswith("/") or "/" in body
    prefix = "^" if anchored else "^(?:.*/)?"
    if body.endswith("/*"):
        suffix = "$"
    elif directory_only:
        suffix = "/.*$"
    else:
        suffix = "(?:/.*)?$"
    return prefix + _translate(body) + suffix


def name_glob_to_regex(pattern: str) -> str:
    """A glob over a whole name such as a branch: `release/*` matches `release/1.2`, `**` crosses slashes."""
    return "^" + _translate(pattern) + "$"


def _translate(glob: str) -> str:
    parts: list[str] = []
    index = 0
    while index < len(glob):
        piece, index = _translate_one(glob, index)
        parts.append(piece)
    return "".join(parts)


def _translate_one(glob: str, index: int) -> tuple[str, int]:
    if glob.startswith("**/", index):
        return "(?:.*/)?", index + 3
    if glob.startswith("**", index):
        return ".*", index + 2
    char = glob[index]
    if char == "*":
        return "[^/]*", index + 1
    if char == "?":
        return "[^/]", index + 1
    if char == "\\" and index + 1 < len(glob):
        return re.escape(glob[index + 1]), index + 2
    if char == "[":
        end = glob.find("]", index + 2)
        if end != -1:
            inside = glob[index + 1 : end].replace("\\", "\\\\")
            if inside.startswith("!"):
                inside = "^" + inside[1:]
            return f"[{inside}]", end + 1
    return re.escape(char), index + 1


def _open_section(sections: dict[str, _Section], header: re.Match[str]) -> str:
    # GitLab combines sections that share a name, whatever their case.
    key = header["name"].strip().lower()
    if key not in sections:
        owners = _owners(_tokens(header["owners"]))
        sections[key] = _Section(
            name=header["name"].strip(),
            optional=bool(header["optional"]),
            approvals_needed=max(1, int(header["count"] or 1)),
            default_owners=owners if isinstance(owners, frozenset) else frozenset(),
        )
    return key


def _entry(line: str, *, allow_exclusions: bool) -> _Entry | str:
    """A pattern line, or why it cannot be read. GitLab reads `!pattern` as "these files need no owner"."""
    pattern, *owner_tokens = _tokens(line)
    excludes = allow_exclusions and pattern.startswith("!")
    pattern = pattern[1:] if excludes else pattern
    owners = _owners(owner_tokens)
    if isinstance(owners, str):
        return owners
    try:
        regex = re2.compile(glob_to_regex(pattern), RE2_OPTIONS)
    except (re2.error, UnicodeEncodeError) as error:  # RE2 reads UTF-8: a lone surrogate is not
        return f"cannot read the pattern {pattern!r}: {error}"
    return _Entry(pattern=pattern, regex=regex, owners=owners, excludes=excludes)


def _tokens(line: str) -> list[str]:
    tokens: list[str] = []
    for token in _UNESCAPED_SPACE.split(line.strip()):
        if token.startswith("#"):
            break
        if token:
            tokens.append(token.replace("\\ ", " ").replace("\\#", "#"))
    return tokens


def _owners(tokens: list[str]) -> frozenset[str] | str:
    owners: set[str] = set()
    for token in tokens:
        if token.startswith("@") and len(token) > 1:
            owners.add(token[1:].lower())
        elif "@" in token.strip("@"):
            owners.add(token.lower())
        else:
            return f"{token!r} is not an owner (expected @user, @org/team or an e-mail address)"
    return frozenset(owners)


def _section_requirement(section: _Section, path: str) -> OwnerRequirement | None:
    matching = [entry for entry in section.entries if entry.regex.match(path)]
    if not matching or any(entry.excludes for entry in matching):
        return None
    winner = matching[-1]
    owners = winner.owners or section.default_owners
    if not owners:
        return None
    return OwnerRequirement(
        section=section.name,
        owners=owners,
        approvals_needed=section.approvals_needed,
        optional=section.optional,
        pattern=winner.pattern,
    )
