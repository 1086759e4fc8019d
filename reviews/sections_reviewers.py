"""The review side's own sections on its pages (registered from ReviewsConfig.ready): suggested reviewers on the
pull request page, knowledge per area on the team page. A bounded number of queries each."""

from __future__ import annotations

from reviews.models import PullRequest
from reviews.sections import Section
from reviews.selectors.familiarity import team_areas
from reviews.selectors.scope import Scope
from reviews.services.reviewers import reviewer_suggestion_current


def pull_request_reviewers_section(pull_request: PullRequest) -> Section | None:
    if pull_request.state != PullRequest.State.OPEN:
        return None
    return Section(
        "reviews/reviewer_suggestions.html", {"suggestion": reviewer_suggestion_current(pull_request=pull_request)}
    )


def team_areas_section(scope: Scope) -> Section | None:
    areas = team_areas(team_id=scope.team.pk, since=scope.since, until=scope.until)
    if not areas:
        return None
    return Section("reviews/team_areas.html", {"areas": areas, "lonely": [area for area in areas if area.known_by_one]})
