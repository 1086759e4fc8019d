"""Lookups shared by production's API views: a team by its slug, as the caller may see it (`reviews.access`)."""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from reviews.access import visible_team_ids
from reviews.models import Team
from telemetry.selectors.visible import teams_visible


def visible_team(request: Request, slug: str) -> Team:
    """The team named by `slug` if the caller sees it; otherwise 404, as if it did not exist (another team's lead
    or token learns nothing of it)."""
    team = teams_visible(team_ids=visible_team_ids(request)).filter(slug=slug).first()
    if team is None:
        raise NotFound("No such team.")
    return team
