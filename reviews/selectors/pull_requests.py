"""What a pull request's page shows: its verdict, reviews and files, its timeline, and the figures the team page
counts for it (from `reviews.selectors.health`, the same functions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from reviews.models import Commit, PolicyViolation, PullRequest, Review
from reviews.sections import TimelineEvent
from reviews.selectors.health import PullRequestFlow, coverage_of, pull_request_flow, size_bucket
from reviews.selectors.pairing import pairing_partners_for_pull_request


def pull_request_page(*, pull_request: PullRequest, more_events: Iterable[TimelineEvent] = ()) -> dict[str, object]:
    evaluation = pull_request.evaluations.order_by("-evaluated_at", "-pk").first()
    reviews = list(pull_request.reviews.select_related("reviewer").order_by("submitted_at", "pk"))
    commits = list(pull_request.commits.select_related("author", "pushed_by").order_by("authored_at"))
    figures = pull_request_figures(pull_request=pull_request)
    return {
        "pull_request": pull_request,
        "reviews": reviews,
        "comments": pull_request.comments.filter(is_system=False).count(),
        "files": pull_request.files.order_by("path"),
        "commits": commits,
        "partners": pairing_partners_for_pull_request(pull_request=pull_request),
        "evaluation": evaluation,
        "trace": evaluation.trace if evaluation else None,
        "overrides": pull_request.overrides.select_related("overridden_by").order_by("-created_at"),
        "violation": PolicyViolation.objects.filter(pull_request=pull_request).first(),
        "figures": figures,
        "timeline": pull_request_timeline(
            pull_request=pull_request, reviews=reviews, commits=commits, figures=figures, more=more_events
        ),
    }


@dataclass(frozen=True)
class RubberStamp:
    reviewer: str
    minutes_after_last_push: float
    changed_lines: int | None


@dataclass(frozen=True)
class PullRequestFigures:
    """The figures the team page aggregates, for this one merged pull request."""

    flow: PullRequestFlow
    size: str | None  # xs / s / m / l / xl
    coverage: str  # reviewed / paired only / neither
    first_approval_at: dt.datetime | None
    rubber_stamps: tuple[RubberStamp, ...]

    def hours(self, name: str) -> float | None:
        duration = getattr(self.flow, name)
        return round(duration.total_seconds() / 3600, 2) if duration is not None else None

    @property
    def durations(self) -> list[tuple[str, float | None]]:
        return [
            (label, self.hours(name))
            for name, label in (
                ("time_to_first_review", "Time to first review"),
                ("pickup_time", "Pickup time"),
                ("review_time", "Review time"),
                ("time_to_approve", "Time to approve"),
                ("merge_time", "Merge time"),
                ("cycle_time", "Cycle time"),
            )
        ]


def pull_request_figures(*, pull_request: PullRequest) -> PullRequestFigures | None:
    """None until it is merged (and for a bot's): the team page counts merged pull requests only."""
    found = pull_request_flow(pull_request=pull_request)
    if found is None:
        return None
    flow, facts = found
    coverage = next(name for name, count in coverage_of([flow]).items() if count)
    names = {review.reviewer_id: str(review.reviewer) for review in pull_request.reviews.select_related("reviewer")}
    stamps = tuple(
        RubberStamp(
            names.get(stamp.reviewer_id, "?"), round(stamp.after_last_push.total_seconds() / 60, 1), flow.changed_lines
        )
        for stamp in facts.rubber_stamps
    )
    return PullRequestFigures(
        flow=flow,
        size=size_bucket(flow.changed_lines),
        coverage=coverage.replace("_", " "),
        first_approval_at=facts.first_approval,
        rubber_stamps=stamps,
    )


def pull_request_timeline(
    *,
    pull_request: PullRequest,
    reviews: Iterable[Review],
    commits: Iterable[Commit],
    figures: PullRequestFigures | None,
    more: Iterable[TimelineEvent] = (),
) -> list[TimelineEvent]:
    """Opened, ready, each push (commit), each review, the first approval that counted, merge or close, and what
    other apps add (deployments, incidents), oldest first."""
    events = [TimelineEvent(pull_request.created_at, "opened", f"Opened by {pull_request.author or 'someone'}")]
    if pull_request.ready_at and pull_request.ready_at != pull_request.created_at:
        events.append(TimelineEvent(pull_request.ready_at, "ready", "Ready for review"))
    for commit in commits:
        who = commit.pushed_by or commit.author or "someone"
        first_line = commit.message.splitlines()[0] if commit.message else ""
        events.append(
            TimelineEvent(
                commit.committed_at or commit.authored_at, "commit", f"{commit.sha[:10]} by {who}: {first_line}"
            )
        )
    for review in reviews:
        events.append(
            TimelineEvent(
                review.submitted_at, "review", f"{review.reviewer or 'someone'}: {review.get_state_display()}"
            )
        )
    if figures is not None and figures.first_approval_at is not None:
        events.append(TimelineEvent(figures.first_approval_at, "approved", "First approval that counted"))
    if pull_request.merged_at:
        by = f" by {pull_request.merged_by}" if pull_request.merged_by_id else ""
        events.append(TimelineEvent(pull_request.merged_at, "merged", f"Merged{by}"))
    elif pull_request.closed_at:
        events.append(TimelineEvent(pull_request.closed_at, "closed", "Closed without merging"))
    events.extend(more)
    order = {"opened": 0, "ready": 1, "commit": 2, "review": 3, "approved": 4, "merged": 5}
    return sorted(events, key=lambda event: (event.at, order.get(event.kind, 9)))
