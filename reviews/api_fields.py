"""Serializer fields shared by the REST API of both apps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from rest_framework import serializers


class MomentField(serializers.DateTimeField):
    """An ISO 8601 date-time, or a date (its midnight, in the server's time zone)."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                day = dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
            else:
                return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())
        return super().to_internal_value(value)
