"""Decoding untrusted JSON bodies (webhooks of every provider, the REST API) within documented limits, and reading
them (`JsonReader`, the one typed reader of every integration).

`json.loads` alone accepts what later breaks Tandem: nesting deep enough to raise RecursionError, NaN and
Infinity (not JSON, and no column stores them), UTF-16 and UTF-32 bodies, numbers too large for any column.
`decode_json` refuses each with a `JsonRefused` that says what is wrong; the caller answers 400 (413 when the body
is too large). orjson decodes first (a webhook's acknowledgement waits for it); `json` decides whatever orjson
refuses or may have rounded, so the answer is `json`'s. Nothing here imports Django: callers pass the limits from
settings.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import orjson

from reviews.integrations.limits import digits_check, moment_check
from reviews.integrations.records import PayloadError

# GitHub caps a webhook payload at 25 MB; nothing Tandem accepts is larger.
MAX_BODY_BYTES = 25 * 1024 * 1024
# Provider payloads nest about ten levels; a hundred leaves room and keeps the decoder far from Python's stack limit.
MAX_DEPTH = 100

_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


class JsonRefused(ValueError):
    """A body that is not acceptable JSON; `status` is the HTTP status to answer with (400, or 413: too large)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_json(body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The value a UTF-8 JSON body holds; raises JsonRefused with the reason for anything else."""
    if len(body) > max_bytes:
        raise JsonRefused(f"Body is {len(body)} bytes; the limit is {max_bytes}.", status=413)
    try:
        # orjson is strict UTF-8 JSON without NaN, a BOM or a NUL byte, two to three times as fast as `json`. What it
        # refuses, and a value it may have rounded, is decoded again by `json`: its answer and its reasons are
        # the reference (it keeps integers of any length and lone surrogates, which orjson refuses or rounds).
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _decoded_by_json(body, max_depth=max_depth)
    depth, rounded = _depth_and_rounding(value)
    if rounded:
        return _decoded_by_json(body, max_depth=max_depth)
    if depth > max_depth:
        raise JsonRefused(f"Body nests {depth} levels deep; the limit is {max_depth}.")
    return value


def _decoded_by_json(body: bytes, *, max_depth: int) -> Any:
    text = _utf8(body)
    try:
        # The decoder itself stops nesting far short of the stack's end (RecursionError); the limit is checked after.
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused(f"Body nests too deeply; the limit is {max_depth} levels.") from None
    except ValueError as error:  # JSONDecodeError, and integers longer than Python converts
        raise JsonRefused(f"Body is not valid JSON: {error}") from None
    # Measured on the decoded value, in a tenth of the time counting the brackets outside strings in the text took.
    depth = value_depth(value)
    if depth > max_depth:
        raise JsonRefused(f"Body nests {depth} levels deep; the limit is {max_depth}.")
    return value


def decode_json_object(body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    payload = decode_json(body, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(payload, dict):
        raise JsonRefused("Body must be a JSON object.")
    return payload


def value_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a value `json.loads` made (`[[1]]`: 2), one level at a time."""
    depth, level = 0, [value] if type(value) in _CONTAINERS else []
    while level:
        depth += 1
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            below += [item for item in items if type(item) in _CONTAINERS]
        level = below
    return depth


_CONTAINERS = frozenset({dict, list})
# orjson reads an integer beyond 64 bits as a float (at least 2**63 in size); `json` keeps it exact.
_ROUNDED_FROM = 2.0**63


def _depth_and_rounding(value: Any) -> tuple[int, bool]:
    """`value_depth` of a value orjson made, and whether it holds a float orjson may have rounded from an integer,
    in one walk (which costs what `value_depth` alone did)."""
    if type(value) not in _CONTAINERS:
        return 0, type(value) is float and not -_ROUNDED_FROM < value < _ROUNDED_FROM
    depth, level, rounded = 0, [value], False
    while level:
        depth += 1
        below: list[Any] = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                kind = type(item)
                if kind is dict or kind is list:
                    below.append(item)
                elif kind is float and not -_ROUNDED_FROM < item < _ROUNDED_FROM:
                    rounded = True
        level = below
    return depth, rounded


def _utf8(body: bytes) -> str:
    if body.startswith(_BOMS) or b"\x00" in body:
        raise JsonRefused("Body must be JSON encoded as UTF-8 without a byte-order mark (UTF-16 and UTF-32 are not).")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonRefused(f"Body is not valid UTF-8 (byte {error.start}).") from None


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"Body holds {name}, which is not a JSON number.")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JsonRefused(f"Body holds the number {literal[:40]}, too large to store.")
    return value


# --- reading a decoded payload -------------------------------------------------------------------------------------


def json_type(value: object) -> str:
    """A value's JSON type, as an error names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


_MISSING: Any = object()


class JsonReader:
    """Typed access to one object of a decoded payload (a webhook, an API response), the one reader every
    integration uses (GitHub, GitLab, PagerDuty, Opsgenie). Every getter names the key path in the error it raises
    ("pull_request.number: expected an integer, got string"), so no KeyError, TypeError or ValueError escapes.

    Getters take one or more keys and walk the objects between: `reader.req_int("pull_request", "number")`.
    `req_*` getters refuse a missing key and null; `opt_*` getters answer None ("", False, []) for both. A value of
    the wrong type is an error either way. A provider's reader says how it spells times (`_time`) and which error
    it raises (`error`).
    """

    __slots__ = ("_data", "path")
    error: ClassVar[type[PayloadError]] = PayloadError

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise self.error(f"{path or 'payload'}: expected an object, got {json_type(data)}")
        self._data: Mapping[str, Any] = data
        self.path = path

    def key_path(self, *keys: str) -> str:
        joined = ".".join(keys)
        return f"{self.path}.{joined}" if self.path else joined

    def _child(self, data: object, path: str) -> Self:
        return type(self)(data, path)

    def _lookup(self, keys: tuple[str, ...], *, required: bool) -> tuple[Any, str]:
        reader = self
        for key in keys[:-1]:
            child = reader.req_obj(key) if required else reader.opt_obj(key)
            if child is None:
                return _MISSING, self.key_path(*keys)
            reader = child
        return reader._data.get(keys[-1], _MISSING), reader.key_path(keys[-1])

    def _req(self, keys: tuple[str, ...], expected: str, check: Callable[[Any], bool]) -> Any:
        value, path = self._lookup(keys, required=True)
        if value is _MISSING:
            raise self.error(f"{path}: missing")
        if not check(value):
            raise self.error(f"{path}: expected {expected}, got {json_type(value)}")
        return value

    def _opt(self, keys: tuple[str, ...], expected: str, check: Callable[[Any], bool]) -> Any:
        value, path = self._lookup(keys, required=False)
        if value is _MISSING or value is None:
            return None
        if not check(value):
            raise self.error(f"{path}: expected {expected}, got {json_type(value)}")
        return value

    def has(self, *keys: str) -> bool:
        """Whether the key holds a value (not missing, not null)."""
        value, _ = self._lookup(keys, required=False)
        return value is not _MISSING and value is not None

    def raw(self, *keys: str) -> Any:
        """The value as decoded, unchecked; None when missing."""
        value, _ = self._lookup(keys, required=False)
        return None if value is _MISSING else value

    def req_int(self, *keys: str) -> int:
        value: int = self._req(keys, "an integer", _is_int)
        return value

    def opt_int(self, *keys: str) -> int | None:
        value: int | None = self._opt(keys, "an integer", _is_int)
        return value

    def req_str(self, *keys: str) -> str:
        value: str = self._req(keys, "a string", _is_str)
        return value

    def opt_str(self, *keys: str) -> str:
        """The string, or "" when the key is missing or null."""
        value: str | None = self._opt(keys, "a string", _is_str)
        return value or ""

    def req_id(self, *keys: str) -> str:
        """An id sent as a number (or as a string of digits), as records keep it: a string."""
        value: int | str = self._req(keys, "an id", _is_id)
        return digits_check(str(value), self.key_path(*keys), error=self.error)

    def opt_id(self, *keys: str) -> str:
        return self.req_id(*keys) if self.has(*keys) else ""

    def opt_bool(self, *keys: str) -> bool:
        """The boolean, or False when the key is missing or null."""
        value: bool | None = self._opt(keys, "a boolean", _is_bool)
        return bool(value)

    def opt_list(self, *keys: str) -> list[Any] | None:
        """An array as decoded, or None when the key is missing or null."""
        value: list[Any] | None = self._opt(keys, "an array", _is_list)
        return value

    def req_list(self, *keys: str) -> list[Any]:
        """A required array, as decoded."""
        value: list[Any] = self._req(keys, "an array", _is_list)
        return value

    def opt_strs(self, *keys: str) -> list[str]:
        """The strings of an array, or [] when the key is missing or null."""
        return [item for item in self.opt_list(*keys) or [] if isinstance(item, str)]

    def req_obj(self, *keys: str) -> Self:
        value, path = self._lookup(keys, required=True)
        if value is _MISSING:
            raise self.error(f"{path}: missing")
        return self._child(value, path)

    def opt_obj(self, *keys: str) -> Self | None:
        value, path = self._lookup(keys, required=False)
        if value is _MISSING or value is None:
            return None
        return self._child(value, path)

    def req_objs(self, *keys: str) -> list[Self]:
        """A required array of objects."""
        items: list[Any] = self._req(keys, "an array", _is_list)
        return self._objects(keys, items)

    def opt_objs(self, *keys: str) -> list[Self] | None:
        """An array of objects, or None when the key is missing or null."""
        items = self.opt_list(*keys)
        return None if items is None else self._objects(keys, items)

    def _objects(self, keys: tuple[str, ...], items: list[Any]) -> list[Self]:
        path = self.key_path(*keys)
        return [self._child(item, f"{path}[{index}]") for index, item in enumerate(items)]

    def req_time(self, *keys: str) -> dt.datetime:
        value, path = self._lookup(keys, required=True)
        if value is _MISSING:
            raise self.error(f"{path}: missing")
        return self._time(value, path)

    def opt_time(self, *keys: str) -> dt.datetime | None:
        value, path = self._lookup(keys, required=False)
        if value is _MISSING or value is None:
            return None
        return self._time(value, path)

    def _time(self, value: Any, path: str) -> dt.datetime:
        """An ISO 8601 date and time with its UTC offset, as an aware UTC datetime; providers that spell times
        otherwise say how."""
        if not isinstance(value, str):
            raise self.error(f"{path}: expected a date-time, got {json_type(value)}")
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise self.error(f"{path}: expected a date-time, got {value[:40]!r}") from None
        return moment_check(moment, path, error=self.error).astimezone(dt.UTC)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_id(value: Any) -> bool:
    return _is_int(value) or isinstance(value, str)
