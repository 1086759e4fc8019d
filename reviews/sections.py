"""Sections other apps add to the review side's pages, without reviews importing them.

Telemetry registers its DORA tiles and incidents here from its AppConfig.ready(); the page views render
whatever is registered, in order. A section is a callable returning the template to include and its context,
or None to stay out of the page. A team section gets the page's Scope: its period and filters (a section that
cannot honour a filter says so on the page).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reviews.models import PullRequest
from reviews.selectors.scope import Scope


@dataclass(frozen=True)
class TimelineEvent:
    """A moment in a pull request's life, for its page's timeline."""

    at: dt.datetime
    kind: str  # opened / ready / commit / review / approved / merged / deployed / incident ...
    words: str
    url: str = ""


@dataclass(frozen=True)
class Section:
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    timeline: tuple[TimelineEvent, ...] = ()  # what the section adds to a pull request's timeline


TeamSection = Callable[[Scope], Section | None]
PullRequestSection = Callable[[PullRequest], Section | None]

team_sections: list[TeamSection] = []
pull_request_sections: list[PullRequestSection] = []


def render_team_sections(scope: Scope) -> list[Section]:
    return [section for build in team_sections if (section := build(scope)) is not None]


def render_pull_request_sections(pull_request: PullRequest) -> list[Section]:
    return [section for build in pull_request_sections if (section := build(pull_request)) is not None]
