"""How each pull request was reviewed and paired, decided once for every surface that reports it (METRICS.md).

The team page and the health API, DORA's review modes, suspect ranking and the evidence export read these facts;
the policy engine and the pull request page read the same definitions (`reviews.policy.engine.counted_approvals`
over the verdict's snapshots, `reviews.selectors.pairing.pairing_partners`). One definition each:

- review activity: a submitted review of any state, or a non-system comment, by someone other than the author
  and not a bot;
- an approval that counted: `counted_approvals`, what the verdict counted toward a rule that applies (under each
  rule's options and its limits: teams, people, code owners), given by the merge for a merged change;
- paired with a non-author: `pairing_partners`;
- a rubber stamp: `is_rubber_stamp`.

A fixed number of queries whatever the number of pull requests.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from django.conf import settings

from reviews.models import Comment, PullRequest, Review
from reviews.policy import ReviewRef, Snapshot, counted_approvals
from reviews.selectors.pairing import PairingPartner, pairing_partners
from reviews.selectors.policy import effective_policies, verdict_snapshots

RUBBER_STAMP_MIN_LINES = 50


@dataclass(frozen=True)
class CountedApproval:
    """An approval that counted under the pull request's policy."""

    reviewer_id: int
    submitted_at: dt.datetime
    rubber_stamp: bool
    after_last_push: dt.timedelta  # from the last push (or ready for review) to the approval


@dataclass(frozen=True)
class ReviewFacts:
    approvals: tuple[CountedApproval, ...] = ()  # oldest first, one per reviewer
    partners: tuple[PairingPartner, ...] = ()
    first_activity: dt.datetime | None = None
    comments: int = 0  # review bodies and comments by others than the author (bots left out)

    @property
    def paired(self) -> bool:
        return bool(self.partners)

    @property
    def first_approval(self) -> dt.datetime | None:
        return self.approvals[0].submitted_at if self.approvals else None

    @property
    def last_approval(self) -> dt.datetime | None:
        return max((a.submitted_at for a in self.approvals), default=None)

    @property
    def rubber_stamps(self) -> tuple[CountedApproval, ...]:
        return tuple(approval for approval in self.approvals if approval.rubber_stamp)


NO_FACTS = ReviewFacts()


def is_rubber_stamp(
    *, after_last_push: dt.timedelta, changed_lines: int | None, commented: bool, minutes_per_100_lines: float
) -> bool:
    """METRICS.md: an approval with no comment, given less than `minutes_per_100_lines` per 100 changed lines after
    the last push, on a pull request of over 50 changed lines. An approval given before the last push, or on a
    change of unknown size, is not known to be one."""
    if commented or changed_lines is None or changed_lines <= RUBBER_STAMP_MIN_LINES:
        return False
    limit = dt.timedelta(minutes=minutes_per_100_lines * changed_lines / 100)
    return dt.timedelta(0) <= after_last_push < limit


def pull_request_review_facts(*, pull_request_ids: Collection[int]) -> dict[int, ReviewFacts]:
    """Per pull request: its approvals that counted (each a rubber stamp or not), its pairing partners, its first
    review activity and how much others said. Pull requests with none of these are left out (`NO_FACTS`)."""
    ids = list(pull_request_ids)
    if not ids:  # an empty IN reads nothing, but building the query still costs
        return {}
    pull_requests = list(PullRequest.objects.filter(pk__in=ids).select_related("repository__connection"))
    if not pull_requests:
        return {}
    return review_facts_of(pull_requests=pull_requests, every_review=reviews_with_reviewer(pull_requests))


def reviews_with_reviewer(pull_requests: Collection[PullRequest]) -> list[Review]:
    """The reviews `review_facts_of` reads: every one with a known reviewer, oldest first."""
    return list(
        Review.objects.filter(pull_request__in=[pr.pk for pr in pull_requests], reviewer__isnull=False).order_by(
            "submitted_at", "pk"
        )
    )


def review_facts_of(*, pull_requests: list[PullRequest], every_review: list[Review]) -> dict[int, ReviewFacts]:
    """`pull_request_review_facts` of pull requests already read (their repositories' connections selected) with
    their `reviews_with_reviewer`."""
    if not pull_requests:
        return {}
    ids = [pr.pk for pr in pull_requests]
    partners = pairing_partners(pull_request_ids=ids)
    snapshots = verdict_snapshots(pull_requests=pull_requests, partners=partners, reviews=every_review)
    policies = effective_policies(repositories={pr.repository for pr in pull_requests})
    reviews = _reviews(pull_requests, every_review, snapshots)
    comments = _comments(pull_requests)
    facts = {}
    for pull_request in pull_requests:
        counted = _before_merge(
            pull_request, counted_approvals(snapshots[pull_request.pk], policies[pull_request.repository_id])
        )
        found = ReviewFacts(
            approvals=_approvals(pull_request, counted, reviews[pull_request.pk], comments[pull_request.pk]),
            partners=tuple(partners.get(pull_request.pk, ())),
            first_activity=_first_by_merge(
                pull_request,
                [review.submitted_at for review in reviews[pull_request.pk]]
                + [at for _, at in comments[pull_request.pk]],
            ),
            comments=sum(1 for review in reviews[pull_request.pk] if review.has_body) + len(comments[pull_request.pk]),
        )
        if found != NO_FACTS:
            facts[pull_request.pk] = found
    return facts


def _before_merge(pull_request: PullRequest, counted: tuple[ReviewRef, ...]) -> tuple[ReviewRef, ...]:
    """A merged change was reviewed by the approvals given by its merge: one given after it reviewed nothing that
    shipped (METRICS.md: "merged with at least one approval that counted")."""
    merged_at = pull_request.merged_at
    if merged_at is None:
        return counted
    return tuple(approval for approval in counted if approval.submitted_at <= merged_at)


def _first_by_merge(pull_request: PullRequest, moments: list[dt.datetime]) -> dt.datetime | None:
    """The first review activity on a change; on a merged one, by its merge: a comment after the merge picked
    nothing up (time to first review and pickup never run past the merge)."""
    merged_at = pull_request.merged_at
    return min((moment for moment in moments if merged_at is None or moment <= merged_at), default=None)


@dataclass(frozen=True)
class _Review:
    external_id: str
    reviewer_id: int
    submitted_at: dt.datetime
    has_body: bool
    line_comments: int


def _approvals(
    pull_request: PullRequest,
    counted: tuple[ReviewRef, ...],
    reviews: list[_Review],
    comments: list[tuple[int, dt.datetime]],
) -> tuple[CountedApproval, ...]:
    said = {review.external_id for review in reviews if review.has_body or review.line_comments}
    commenters = {author_id for author_id, _ in comments}
    last_push = pull_request.last_pushed_at or pull_request.ready_at or pull_request.created_at
    minutes = float(settings.RUBBER_STAMP_MINUTES_PER_100_LINES)
    approvals = []
    for approval in counted:
        reviewer_id = int(approval.reviewer.id)
        after = approval.submitted_at - last_push
        stamp = is_rubber_stamp(
            after_last_push=after,
            changed_lines=pull_request.changed_lines,
            commented=approval.id in said or reviewer_id in commenters,
            minutes_per_100_lines=minutes,
        )
        approvals.append(CountedApproval(reviewer_id, approval.submitted_at, stamp, after))
    return tuple(approvals)


def _reviews(
    pull_requests: list[PullRequest], every_review: list[Review], snapshots: dict[int, Snapshot]
) -> dict[int, list[_Review]]:
    """Reviews of any state by others than the author, bots left out (as the snapshots' people say)."""
    authors = {pr.pk: pr.author_id for pr in pull_requests}
    bots = {
        int(review.reviewer.id)
        for snapshot in snapshots.values()
        for review in snapshot.reviews
        if review.reviewer.is_bot
    }
    found: dict[int, list[_Review]] = defaultdict(list)
    for review in every_review:
        reviewer_id = review.reviewer_id
        if reviewer_id is None or reviewer_id in bots or reviewer_id == authors[review.pull_request_id]:
            continue
        said = bool(review.body.strip())
        found[review.pull_request_id].append(
            _Review(review.external_id, reviewer_id, review.submitted_at, said, review.comment_count)
        )
    return found


def _comments(pull_requests: list[PullRequest]) -> dict[int, list[tuple[int, dt.datetime]]]:
    """Non-system comments by others than the author, bots left out: (author, when)."""
    authors = {pr.pk: pr.author_id for pr in pull_requests}
    found: dict[int, list[tuple[int, dt.datetime]]] = defaultdict(list)
    rows = Comment.objects.filter(
        pull_request_id__in=list(authors), is_system=False, author__isnull=False, author__is_bot=False
    ).values_list("pull_request_id", "author_id", "created_at")
    for pull_request_id, author_id, created_at in rows:
        if author_id != authors[pull_request_id]:
            found[pull_request_id].append((author_id, created_at))
    return found
