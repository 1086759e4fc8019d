"""Serializer fields, filters and the paginator shared by the REST API of both apps.

Every time, date, id and page number the API accepts is bounded here, so a value no column or background task can
handle (year 1, year 9999, an offset of +20:00, an id of 2**70 or "²", page 10**24) is a 400 naming the field,
never a 500 later.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django.core.paginator import Paginator
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from reviews.integrations.limits import OFFSET_MAX, YEAR_MAX, YEAR_MIN

# Row ids are 64-bit (BigAutoField) on every database Tandem runs on.
ID_MAX = 2**63 - 1
_RANGE = f"Must be between the years {YEAR_MIN} and {YEAR_MAX}."


def id_from_text(text: str) -> int | None:
    """A Tandem id written as ASCII digits within range; None for anything else ("²" is a digit to Python)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(ID_MAX)):
        return None
    value = int(text)
    return value if 1 <= value <= ID_MAX else None


class IdField(serializers.IntegerField):
    """A Tandem row id: 1 to 2**63 - 1."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)


class IdFilter(django_filters.NumberFilter):
    """A query parameter naming a row id; out of range is a 400 naming the parameter, not a database overflow."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(*args, **kwargs)


class DayField(serializers.DateField):
    """An ISO 8601 date between YEAR_MIN and YEAR_MAX."""

    def to_internal_value(self, value: Any) -> dt.date:
        day: dt.date = super().to_internal_value(value)
        if not YEAR_MIN <= day.year <= YEAR_MAX:
            raise serializers.ValidationError(_RANGE)
        return day


class MomentField(serializers.DateTimeField):
    """An ISO 8601 date-time, or a date (its midnight, in the server's time zone), between YEAR_MIN and YEAR_MAX,
    with a UTC offset within ±15:59."""

    default_error_messages = {"offset": "The UTC offset must be within ±15:59.", "range": _RANGE}

    def to_internal_value(self, value: Any) -> dt.datetime:
        moment = self._parse(value)
        offset = moment.utcoffset()
        if offset is not None and abs(offset) > OFFSET_MAX:
            self.fail("offset")
        if not YEAR_MIN <= moment.year <= YEAR_MAX:
            self.fail("range")
        return moment

    def _parse(self, value: Any) -> dt.datetime:
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                day = dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
            else:
                if not YEAR_MIN <= day.year <= YEAR_MAX:
                    self.fail("range")
                return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())
        if isinstance(value, str):
            # Checked before DRF converts to the server's zone: +20:00 would be converted silently.
            try:
                given = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                given = None
            if given is not None:
                if not YEAR_MIN <= given.year <= YEAR_MAX:
                    self.fail("range")
                offset = given.utcoffset()
                if offset is not None and abs(offset) > OFFSET_MAX:
                    self.fail("offset")
        moment: dt.datetime = super().to_internal_value(value)
        return moment


def _moment_within_bounds(moment: dt.datetime | None) -> None:
    from django.core.exceptions import ValidationError

    if moment is None:
        return
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > OFFSET_MAX:
        raise ValidationError(MomentField.default_error_messages["offset"])
    if not YEAR_MIN <= moment.year <= YEAR_MAX:
        raise ValidationError(_RANGE)


class _BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    default_validators = [_moment_within_bounds]


class MomentFilter(django_filters.IsoDateTimeFilter):
    """A query parameter naming a moment, held to MomentField's bounds: out of range is a 400 naming the parameter,
    never a database error (PostgreSQL refuses offsets beyond ±15:59 and year 0)."""

    field_class = _BoundedIsoDateTimeField


class Pages(PageNumberPagination):
    """`?page=` and `?page_size=` (1 to `max_page_size`); `page_size` a page unless asked. A page that is not a
    page (0, "x", 10**24, past the last) or a size out of range is a 400 naming the parameter, never clamped."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        text = request.query_params.get(self.page_size_query_param or "")
        if text is None:
            return self.page_size
        size = id_from_text(text)
        if size is None or size > self.max_page_size:
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return size

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            pages = Paginator(queryset, self.get_page_size(request)).num_pages
            raise ValidationError(
                {self.page_query_param: [f"No such page: pages are numbered 1 to {pages}."]}
            ) from None
