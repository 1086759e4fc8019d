"""Notices to one person: a change they wrote or reviewed was traced to an incident."""

from __future__ import annotations

from django.db.models import QuerySet

from reviews.models import Person
from telemetry.models import Notification


def notifications_of(*, person: Person, unread_only: bool = False) -> QuerySet[Notification]:
    """A person's own notices, newest first, with what they are about (no query per row)."""
    notices = Notification.objects.filter(person=person)
    if unread_only:
        notices = notices.filter(read_at__isnull=True)
    return notices.select_related("incident", "pull_request__repository").order_by("-created_at", "-pk")


def notifications_unread_count(*, person: Person) -> int:
    return Notification.objects.filter(person=person, read_at__isnull=True).count()
