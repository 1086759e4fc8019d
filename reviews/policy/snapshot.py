"""A pull request at one head sha, as the policy engine sees it.

Plain, immutable and hashable records (tuples, frozensets, `FrozenDict`), built by the Django side from rows or
by the simulate API from JSON (`Snapshot.from_dict`). Nothing here imports Django.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, TypeVar

REVIEW_STATES = ("approved", "changes_requested", "commented", "dismissed")
STATUS_STATES = ("success", "pending", "failure", "error")
PAIRING_SOURCES = ("session", "co_author")
CODEOWNERS_SYNTAXES = ("github", "gitlab")
# The facts a verdict rests on. A snapshot names those it does not know for its head, each with why in words.
FACTS = ("files", "reviews", "commits", "checks", "codeowners")


class SnapshotError(ValueError):
    """A snapshot that cannot describe a pull request (bad JSON given to the simulate API, a naive datetime)."""


class FrozenDict(Mapping[str, str]):
    """A read-only, hashable str -> str mapping, so that a snapshot stays hashable."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = dict(items)
        for key, value in self._items.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise SnapshotError(f"expected text keys and values, got {key!r}: {value!r}")

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._items!r})"


@dataclass(frozen=True)
class PersonRef:
    """One person, with every name they go by (logins, usernames, e-mails) and the slugs of their teams."""

    id: str
    names: frozenset[str] = frozenset()
    is_bot: bool = False
    teams: frozenset[str] = frozenset()
    display_name: str = ""

    def __post_init__(self) -> None:
        _require_text(self.id, "person id")
        _set(self, "names", frozenset(name.strip().lower() for name in _texts(self.names, "names")))
        _set(self, "teams", frozenset(team.strip().lower() for team in _texts(self.teams, "teams")))

    @property
    def label(self) -> str:
        """How a trace names this person: the display name, else a login, else an e-mail, else the id."""
        handles = sorted(name for name in self.names if "@" not in name)
        return self.display_name or (handles[0] if handles else min(self.names, default=self.id))

    @classmethod
    def from_dict(cls, data: Any, where: str = "person") -> PersonRef:
        values = _fields(data, cls, where)
        return _build(cls, where, **values)


@dataclass(frozen=True)
class FileChange:
    path: str
    previous_path: str = ""

    def __post_init__(self) -> None:
        _require_text(self.path, "file path")

    @property
    def paths(self) -> tuple[str, ...]:
        """The path and, for a rename, the path it moved from: a file moved out of payments/ touches payments/."""
        return (self.path, self.previous_path) if self.previous_path else (self.path,)

    @classmethod
    def from_dict(cls, data: Any, where: str = "file") -> FileChange:
        return _build(cls, where, **_fields(data, cls, where))


@dataclass(frozen=True)
class CommitRef:
    """One commit of the pull request: who wrote, committed and pushed it, and its parents.

    `via_web` says GitHub itself committed it (committer web-flow), as it does for the "Update branch" button."""

    sha: str
    author: PersonRef | None = None
    co_authors: tuple[PersonRef, ...] = ()
    committed_at: dt.datetime | None = None
    committer: PersonRef | None = None
    pushed_by: PersonRef | None = None
    parents: tuple[str, ...] = ()
    via_web: bool = False

    def __post_init__(self) -> None:
        _set(self, "co_authors", tuple(self.co_authors))
        _set(self, "parents", tuple(_texts(self.parents, "parents")))
        if self.committed_at is not None:
            _require_aware(self.committed_at, "committed_at")

    @classmethod
    def from_dict(cls, data: Any, where: str = "commit") -> CommitRef:
        values = _fields(data, cls, where)
        values["author"] = _optional_person(values.get("author"), f"{where}.author")
        values["committer"] = _optional_person(values.get("committer"), f"{where}.committer")
        values["pushed_by"] = _optional_person(values.get("pushed_by"), f"{where}.pushed_by")
        values["co_authors"] = _list_of(PersonRef, values.get("co_authors", ()), f"{where}.co_authors")
        values["committed_at"] = _optional_datetime(values.get("committed_at"), f"{where}.committed_at")
        return _build(cls, where, **values)


@dataclass(frozen=True)
class ReviewRef:
    """One review as submitted. `commit_sha` is the sha it was given on; "" when the VCS did not say (GitLab
    approvals may carry none, some GitHub reviews too): then only its time tells it from the last push."""

    id: str
    reviewer: PersonRef
    state: str
    commit_sha: str
    submitted_at: dt.datetime

    def __post_init__(self) -> None:
        _require_text(self.id, "review id")
        _require_choice(self.state, REVIEW_STATES, "review state")
        _require_aware(self.submitted_at, "submitted_at")

    @classmethod
    def from_dict(cls, data: Any, where: str = "review") -> ReviewRef:
        values = _fields(data, cls, where)
        values["reviewer"] = PersonRef.from_dict(values.get("reviewer"), f"{where}.reviewer")
        values["submitted_at"] = _datetime(values.get("submitted_at"), f"{where}.submitted_at")
        return _build(cls, where, **values)


@dataclass(frozen=True)
class PairingCredit:
    """Someone who paired with the author on this pull request: from a session or a co-author trailer."""

    partner: PersonRef
    source: str
    detail: str = ""

    def __post_init__(self) -> None:
        _require_choice(self.source, PAIRING_SOURCES, "pairing source")

    @classmethod
    def from_dict(cls, data: Any, where: str = "pairing") -> PairingCredit:
        values = _fields(data, cls, where)
        values["partner"] = PersonRef.from_dict(values.get("partner"), f"{where}.partner")
        return _build(cls, where, **values)


@dataclass(frozen=True)
class RiskSignalRef:
    """A recent incident on code in this repository. No path prefixes: the whole repository."""

    path_prefixes: tuple[str, ...]
    service: str
    occurred_at: dt.datetime
    reference: str = ""

    def __post_init__(self) -> None:
        _set(self, "path_prefixes", tuple(_texts(self.path_prefixes, "path_prefixes")))
        _require_aware(self.occurred_at, "occurred_at")

    def touches(self, path: str) -> bool:
        prefixes = [prefix.strip("/") for prefix in self.path_prefixes]
        return not prefixes or any(_under(path, prefix) for prefix in prefixes)

    @classmethod
    def from_dict(cls, data: Any, where: str = "incident") -> RiskSignalRef:
        values = _fields(data, cls, where)
        values["occurred_at"] = _datetime(values.get("occurred_at"), f"{where}.occurred_at")
        return _build(cls, where, **values)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Everything a policy may look at, for one pull request at one head sha, at one moment (`now`)."""

    head_sha: str
    now: dt.datetime
    author: PersonRef | None = None
    base_ref: str = ""
    labels: tuple[str, ...] = ()
    draft: bool = False
    changed_lines: int | None = None
    files: tuple[FileChange, ...] = ()
    commits: tuple[CommitRef, ...] = ()
    reviews: tuple[ReviewRef, ...] = ()
    statuses: FrozenDict = FrozenDict()
    diff_ids: FrozenDict = FrozenDict()
    # Head sha -> why its fingerprint is not known yet (owed, fetched when needed): an approval it decides waits.
    diff_ids_pending: FrozenDict = FrozenDict()
    pairing: tuple[PairingCredit, ...] = ()
    incident_paths: tuple[RiskSignalRef, ...] = ()
    codeowners: str = ""
    codeowners_syntax: str = "github"
    # Where `codeowners` comes from, in words for the trace (".github/CODEOWNERS on main", an override in Tandem).
    codeowners_source: str = ""
    # Fact -> why it is not known for this head ("waiting for the list of changed files from GitHub").
    unknown: FrozenDict = FrozenDict()
    # When the head was pushed, None when Tandem does not know: a review with no sha given before it is stale.
    last_pushed_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self.now, "now")
        if self.last_pushed_at is not None:
            _require_aware(self.last_pushed_at, "last_pushed_at")
        for name in ("labels", "files", "commits", "reviews", "pairing", "incident_paths"):
            _set(self, name, tuple(getattr(self, name)))
        _set(self, "labels", tuple(_texts(self.labels, "labels")))
        _set(self, "statuses", FrozenDict(self.statuses))
        _set(self, "diff_ids", FrozenDict(self.diff_ids))
        _set(self, "diff_ids_pending", FrozenDict(self.diff_ids_pending))
        for sha, reason in self.diff_ids_pending.items():
            _require_text(reason, f"why the fingerprint of {sha} is not known")
        _set(self, "unknown", FrozenDict(self.unknown))
        for fact, reason in self.unknown.items():
            _require_choice(fact, FACTS, "unknown fact")
            _require_text(reason, f"why {fact} is unknown")
        for context, state in self.statuses.items():
            _require_choice(state, STATUS_STATES, f"state of status {context!r}")
        _require_choice(self.codeowners_syntax, CODEOWNERS_SYNTAXES, "codeowners_syntax")
        if self.changed_lines is not None and (not _is_int(self.changed_lines) or self.changed_lines < 0):
            raise SnapshotError(f"changed_lines must be a non-negative integer or null, got {self.changed_lines!r}")

    def to_dict(self) -> dict[str, Any]:
        jsonable: dict[str, Any] = to_jsonable(self)
        return jsonable

    @classmethod
    def from_dict(cls, data: Any) -> Snapshot:
        """The inverse of `to_dict`; raises SnapshotError naming the field that is wrong."""
        where = "snapshot"
        values = _fields(data, cls, where)
        values["now"] = _datetime(values.get("now"), f"{where}.now")
        values["last_pushed_at"] = _optional_datetime(values.get("last_pushed_at"), f"{where}.last_pushed_at")
        values["author"] = _optional_person(values.get("author"), f"{where}.author")
        values["files"] = _list_of(FileChange, values.get("files", ()), f"{where}.files")
        values["commits"] = _list_of(CommitRef, values.get("commits", ()), f"{where}.commits")
        values["reviews"] = _list_of(ReviewRef, values.get("reviews", ()), f"{where}.reviews")
        values["pairing"] = _list_of(PairingCredit, values.get("pairing", ()), f"{where}.pairing")
        values["incident_paths"] = _list_of(RiskSignalRef, values.get("incident_paths", ()), f"{where}.incident_paths")
        for name in ("statuses", "diff_ids", "diff_ids_pending", "unknown"):
            values[name] = _mapping(values.get(name, {}), f"{where}.{name}")
        return _build(cls, where, **values)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples, frozensets and datetimes as JSON-ready dicts, lists and ISO 8601 strings."""
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: to_jsonable(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(value[key]) for key in sorted(value)}
    if isinstance(value, frozenset | set):
        return sorted(to_jsonable(item) for item in value)
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _under(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def _set(instance: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise their own fields in __post_init__ this way.
    object.__setattr__(instance, name, value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _texts(values: Iterable[str], what: str) -> Iterable[str]:
    if isinstance(values, str):
        raise SnapshotError(f"{what} must be a list of strings, not a single string")
    items = tuple(values)
    for item in items:
        if not isinstance(item, str):
            raise SnapshotError(f"{what} must contain strings, got {item!r}")
    return items


def _require_text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise SnapshotError(f"{what} must be a non-empty string, got {value!r}")


def _require_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise SnapshotError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def _require_aware(value: object, what: str) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise SnapshotError(f"{what} must be a timezone-aware datetime, got {value!r}")


def _fields(data: Any, cls: type, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SnapshotError(f"{where}: expected an object, got {type(data).__name__}")
    known = {item.name for item in fields(cls)}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise SnapshotError(f"{where}: unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    return dict(data)


_Built = TypeVar("_Built")


def _build(cls: type[_Built], where: str, **values: Any) -> _Built:
    try:
        return cls(**values)
    except SnapshotError as error:
        raise SnapshotError(f"{where}: {error}") from None
    except TypeError as error:
        raise SnapshotError(f"{where}: {error}") from None


def _list_of(cls: Any, items: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(items, list | tuple):
        raise SnapshotError(f"{where}: expected a list, got {type(items).__name__}")
    return tuple(cls.from_dict(item, f"{where}[{index}]") for index, item in enumerate(items))


def _optional_person(data: Any, where: str) -> PersonRef | None:
    return None if data is None else PersonRef.from_dict(data, where)


def _mapping(data: Any, where: str) -> FrozenDict:
    if not isinstance(data, Mapping):
        raise SnapshotError(f"{where}: expected an object, got {type(data).__name__}")
    try:
        return FrozenDict(data)
    except SnapshotError as error:
        raise SnapshotError(f"{where}: {error}") from None


def _datetime(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: expected an ISO 8601 date and time, got {value!r}")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise SnapshotError(f"{where}: expected an ISO 8601 date and time, got {value!r}") from None


def _optional_datetime(value: Any, where: str) -> dt.datetime | None:
    return None if value is None else _datetime(value, where)
