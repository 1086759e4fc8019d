"""The review side's own sections on its pages (registered from ReviewsConfig.ready): suggested reviewers on the
pull request page, knowledge per area (the bus factor) on the team page. A bounded number of queries each."""

from __future__ import annotations

from reviews.models import PullRequest
from reviews.sections import Section
from reviews.selectors.knowledge import KNOWLEDGE_DEFINITION, team_knowledge
from reviews.selectors.scope import Scope
from reviews.services.reviewers import reviewer_suggestion_current

# The team page lists this many areas known by one person (most changes first); the rest are a link away.
LONELY_AREAS_SHOWN = 10


def pull_request_reviewers_section(pull_request: PullRequest) -> Section | None:
    if pull_request.state != PullRequest.State.OPEN:
        return None
    return Section(
        "reviews/reviewer_suggestions.html", {"suggestion": reviewer_suggestion_current(pull_request=pull_request)}
    )


def team_knowledge_section(scope: Scope) -> Section | None:
    knowledge = team_knowledge(scope=scope)
    if not knowledge.areas:
        return None
    lonely = knowledge.lonely
    return Section(
        "reviews/team_knowledge.html",
        {
            "knowledge": knowledge,
            "lonely": lonely[:LONELY_AREAS_SHOWN],
            "lonely_count": len(lonely),
            "more": max(len(lonely) - LONELY_AREAS_SHOWN, 0),
            "all_url": f"/api/v1/teams/{scope.team.slug}/knowledge?{scope.query(known_by_one='true')}",
            "definition": KNOWLEDGE_DEFINITION.replace("depth levels", f"{knowledge.depth} levels"),
        },
    )
