"""What every page may show of the review side: the teams the viewer can switch between, and which they lead."""

from __future__ import annotations

import functools
from collections.abc import Callable, Container
from typing import Any

from django.http import HttpRequest

from reviews.access import request_access, visible_teams
from reviews.models import Team


class _EveryTeam:
    def __contains__(self, team_id: object) -> bool:
        return True


def team_switcher(request: HttpRequest) -> dict[str, Callable[[], Any]]:
    """`switcher_teams`: the viewer's teams, not archived, by name; read only when a template shows them."""

    @functools.cache
    def teams() -> list[Team]:
        return list(visible_teams(request).filter(archived=False).order_by("name").only("slug", "name"))

    @functools.cache
    def led() -> Container[int]:
        """`{% if team.pk in led_team_ids %}`: the ids of the teams the viewer leads (all, for a superuser)."""
        led = request_access(request).led
        return _EveryTeam() if led is None else led

    return {"switcher_teams": teams, "led_team_ids": led}
