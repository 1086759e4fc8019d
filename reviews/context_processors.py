"""What every page may show of the review side: the teams the viewer can switch between."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest

from reviews.access import visible_teams
from reviews.models import Team


def team_switcher(request: HttpRequest) -> dict[str, Callable[[], list[Team]]]:
    """`switcher_teams`: the viewer's teams, not archived, by name; read only when a template shows them."""

    @functools.cache
    def teams() -> list[Team]:
        return list(visible_teams(request).filter(archived=False).order_by("name").only("slug", "name"))

    return {"switcher_teams": teams}
