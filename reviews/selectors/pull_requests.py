"""What a pull request's page shows."""

from __future__ import annotations

from reviews.models import PolicyViolation, PullRequest
from reviews.selectors.pairing import pairing_partners_for_pull_request


def pull_request_page(*, pull_request: PullRequest) -> dict[str, object]:
    evaluation = pull_request.evaluations.order_by("-evaluated_at", "-pk").first()
    return {
        "pull_request": pull_request,
        "reviews": pull_request.reviews.select_related("reviewer").order_by("submitted_at"),
        "comments": pull_request.comments.filter(is_system=False).count(),
        "files": pull_request.files.order_by("path"),
        "commits": pull_request.commits.select_related("author").prefetch_related("co_authors").order_by("authored_at"),
        "partners": pairing_partners_for_pull_request(pull_request=pull_request),
        "evaluation": evaluation,
        "trace": evaluation.trace if evaluation else None,
        "overrides": pull_request.overrides.select_related("overridden_by").order_by("-created_at"),
        "violation": PolicyViolation.objects.filter(pull_request=pull_request).first(),
    }
