"""What a value from a payload must be for Tandem to store it, checked when the payload is parsed.

A value the database would refuse (an over-long string, a NUL character, a lone surrogate, a negative or huge
count, a year-1 timestamp) must fail the parse with a PayloadError that names it: the delivery is then a
permanent failure with its reason, never a database error on every retry. The adapters know no model, so each
record field that lands in a bounded column says its limit in its dataclass metadata (`records.max_length`); a test
holds those limits equal to the models' (tests/hardening/test_payload_limits.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

from reviews.integrations.records import PayloadError

# Counts and numbers land in PositiveIntegerField columns: 0 to 2**31 - 1 on every database Tandem runs on.
INT_MIN, INT_MAX = 0, 2**31 - 1
# Ids a record marks `records.big_int()` land in PositiveBigIntegerField columns.
BIG_INT_MAX = 2**63 - 1
# Anything outside is a mistake or an attack; background tasks then never meet year 1 or year 9999.
YEAR_MIN, YEAR_MAX = 2000, 2100
# PostgreSQL accepts UTC offsets up to ±15:59.
OFFSET_MAX = dt.timedelta(hours=15, minutes=59)


def moment_check(moment: dt.datetime, path: str, *, error: type[PayloadError] = PayloadError) -> dt.datetime:
    """The moment, when it has a UTC offset within ±15:59 and falls in 2000–2100; raises `error` otherwise."""
    offset = moment.utcoffset()
    if offset is None:
        raise error(f"{path}: the time has no UTC offset")
    if abs(offset) > OFFSET_MAX:
        raise error(f"{path}: UTC offset {offset} is beyond ±15:59")
    if not YEAR_MIN <= moment.year <= YEAR_MAX:
        raise error(f"{path}: year {moment.year} is outside {YEAR_MIN}–{YEAR_MAX}")
    return moment


def digits_check(value: str, path: str, *, error: type[PayloadError] = PayloadError) -> str:
    """An id sent as a string of ASCII digits ("²" and "٣" are digits to Python, not to a database)."""
    if not (value.isascii() and value.isdigit()):
        raise error(f"{path}: expected an id of digits 0-9, got {value[:40]!r}")
    return value


def record_check(value: object, path: str = "", *, error: type[PayloadError] = PayloadError) -> None:
    """Walk a record (dataclasses, tuples and lists of them) and raise `error` for the first value that cannot
    be stored: see the module docstring."""
    _check(value, path, None, error)


def _check(value: object, path: str, length: int | None, error: type[PayloadError], *, big: bool = False) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name, limit, field_big in _fields_of(type(value)):
            child = f"{path}.{name}" if path else name
            _check(getattr(value, name), child, limit, error, big=field_big)
    elif isinstance(value, str):
        _text_check(value, path, length, error)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        top = BIG_INT_MAX if big else INT_MAX
        if not INT_MIN <= value <= top:
            raise error(f"{path}: {value if abs(value) < 10**15 else 'a number'} is outside {INT_MIN}–{top}")
    elif isinstance(value, dt.datetime):
        moment_check(value, path, error=error)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", length, error)


@functools.cache
def _fields_of(record_class: type) -> tuple[tuple[str, int | None, bool], ...]:
    """A record class's fields with their limits (name, max_length, big_int): read once per class, not per value."""
    return tuple(
        (field.name, field.metadata.get("max_length"), bool(field.metadata.get("big_int")))
        for field in dataclasses.fields(record_class)
    )


def _text_check(value: str, path: str, length: int | None, error: type[PayloadError]) -> None:
    if "\x00" in value:
        raise error(f"{path}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as problem:
        raise error(f"{path}: contains a lone surrogate (U+{ord(value[problem.start]):04X})") from None
    if length is not None and len(value) > length:
        raise error(f"{path}: {len(value)} characters, at most {length}")
