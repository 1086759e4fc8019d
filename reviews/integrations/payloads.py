"""Decoding untrusted JSON bodies (webhooks of every provider, the REST API) within documented limits.

`json.loads` alone accepts what later breaks Tandem: nesting deep enough to raise RecursionError, NaN and
Infinity (not JSON, and no column stores them), UTF-16 and UTF-32 bodies, numbers too large for any column.
`decode_json` refuses each with a `JsonRefused` that says what is wrong; the caller answers 400 (413 when the body
is too large). Nothing here imports Django: callers pass the limits from settings.
"""

from __future__ import annotations

import codecs
import json
import math
from itertools import accumulate
from typing import Any

# GitHub caps a webhook payload at 25 MB; nothing Tandem accepts is larger.
MAX_BODY_BYTES = 25 * 1024 * 1024
# Provider payloads nest about ten levels; a hundred leaves room and keeps the decoder far from Python's stack limit.
MAX_DEPTH = 100

_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_OPENING = frozenset(b"[{")


class JsonRefused(ValueError):
    """A body that is not acceptable JSON; `status` is the HTTP status to answer with (400, or 413: too large)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_json(body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The value a UTF-8 JSON body holds; raises JsonRefused with the reason for anything else."""
    if len(body) > max_bytes:
        raise JsonRefused(f"Body is {len(body)} bytes; the limit is {max_bytes}.", status=413)
    text = _utf8(body)
    depth = nesting_depth(body)
    if depth > max_depth:
        raise JsonRefused(f"Body nests {depth} levels deep; the limit is {max_depth}.")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused(f"Body nests too deeply; the limit is {max_depth} levels.") from None
    except ValueError as error:  # JSONDecodeError, and integers longer than Python converts
        raise JsonRefused(f"Body is not valid JSON: {error}") from None


def decode_json_object(body: bytes, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    payload = decode_json(body, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(payload, dict):
        raise JsonRefused("Body must be a JSON object.")
    return payload


def nesting_depth(body: bytes) -> int:
    """How deeply arrays and objects nest, counted without recursion (brackets inside strings do not count)."""
    # Drop escaped backslashes, then escaped quotes: every quote left opens or closes a string, so the even
    # pieces between quotes are what lies outside strings. All of it runs in C, about 10 ms per megabyte.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    return max(accumulate(1 if bracket in _OPENING else -1 for bracket in brackets), default=0)


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
