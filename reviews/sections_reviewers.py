"""The review side's own sections on its pages (registered from ReviewsConfig.ready): suggested reviewers on the
pull request page, knowledge per area on the team page. A bounded number of queries each."""

from __future__ import annotations

import datetime as dt

from reviews.models import PullRequest, Team
from reviews.sections import Section
from reviews.selectors.familiarity import team_areas
from reviews.services.reviewers import reviewer_suggestion_current


def pull_request_reviewers_section(pull_request: PullRequest) -> Section | None:
    if pull_request.state != PullRequest.State.OPEN:
        return None
    return Section(
        "reviews/reviewer_suggestions.html", {"suggestion": reviewer_suggestion_current(pull_request=pull_request)}
    )


def team_areas_section(team: Team, since: dt.datetime, until: dt.datetime) -> Section | None:
    areas = team_areas(team_id=team.pk, since=since, until=until)
    if not areas:
        return None
    return Section("reviews/team_areas.html", {"areas": areas, "lonely": [area for area in areas if area.known_by_one]})
