"""A person marks their own notices read."""

from __future__ import annotations

from collections.abc import Collection

from django.utils import timezone

from reviews.models import Person
from telemetry.models import Notification


def notifications_mark_read(*, person: Person, ids: Collection[int] | None = None) -> int:
    """Mark the person's unread notices read (those of `ids`, or all). Others' ids are ignored; notices read
    already keep the time they were first read. Returns how many were marked."""
    notices = Notification.objects.filter(person=person, read_at__isnull=True)
    if ids is not None:
        notices = notices.filter(pk__in=list(ids))
    return notices.update(read_at=timezone.now())
