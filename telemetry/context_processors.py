"""What every page's navigation shows of production's side: how many of your notices are unread."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest

from reviews.access import own_person
from telemetry.selectors.notices import notifications_unread_count


def notices(request: HttpRequest) -> dict[str, Callable[[], int]]:
    """`unread_notices`, counted only when a template shows it (one query; none for the admin's pages)."""

    @functools.cache
    def unread() -> int:
        person = own_person(getattr(request, "user", None))
        return 0 if person is None else notifications_unread_count(person=person)

    return {"unread_notices": unread}
