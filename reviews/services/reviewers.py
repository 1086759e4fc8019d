"""Reviewer suggestions that spread knowledge: for a pull request's head, the people who know the areas it changes
(code owners first when the policy needs them), weighed against their current load, and someone new to the area to
review alongside one who knows it. Never the author or a contributor (`contributors()`, the one definition), never a
bot, never someone away. Worked out in a task and stored with the head sha; requested on GitHub/GitLab when the
policy says `reviewers: {request: N}`.

The scoring is deterministic: ties are broken by name, then id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from reviews.integrations.vcs import VcsError, VcsUnavailable
from reviews.models import (
    Identity,
    Membership,
    Person,
    PullRequest,
    Review,
    ReviewerSuggestion,
)
from reviews.policy import OwnerRequirement, code_owners_wanted, is_owner
from reviews.prepared import PreparedRead
from reviews.selectors.familiarity import (
    FAMILIARITY_WINDOW,
    AreaWork,
    area_familiarity,
    area_label,
    change_areas,
)
from reviews.selectors.policy import (
    POLICY_RELATED,
    effective_policy,
    person_refs,
    pull_request_snapshot,
    unknown_facts,
)
from reviews.services.policies import snapshot_contributors
from reviews.services.sync import ClientFactory, vcs_client_for

logger = logging.getLogger(__name__)

MAX_SUGGESTIONS = 3
# Familiarity saturates: the tenth change in an area tells less than the first. score = weight / (weight + this).
FAMILIARITY_SATURATION = 3.0
# What current load takes off the score: each open review request, and each review given in the last week.
LOAD_PER_OPEN_REQUEST = 0.15
LOAD_PER_REVIEW_THIS_WEEK = 0.15
LOAD_WEEK = dt.timedelta(days=7)

OWNER, FAMILIAR, NEWCOMER, AVAILABLE = "code_owner", "familiar", "new_to_area", "available"


@dataclass
class Candidate:
    person_id: int
    name: str
    work: dict[str, AreaWork] = field(default_factory=dict)
    open_requests: int = 0
    reviews_this_week: int = 0
    owns: tuple[OwnerRequirement, ...] = ()

    @property
    def familiarity(self) -> float:
        return sum(work.weight for work in self.work.values())

    @property
    def score(self) -> float:
        known = self.familiarity / (self.familiarity + FAMILIARITY_SATURATION)
        load = LOAD_PER_OPEN_REQUEST * self.open_requests + LOAD_PER_REVIEW_THIS_WEEK * self.reviews_this_week
        return round(known - load, 6)

    def order(self) -> tuple[float, str, int]:
        return (-self.score, self.name, self.person_id)


@dataclass(frozen=True)
class Suggestion:
    person_id: int
    name: str
    kind: str
    score: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "kind": self.kind,
            "score": self.score,
            "reasons": list(self.reasons),
        }


# The task's reads, compiled once per process (`reviews.prepared`): the pull request with what `effective_policy` and
# `unknown_facts` read of its repository, and the suggestion stored for a head.
_SUGGESTING_READ = PreparedRead(
    lambda pk: PullRequest.objects.select_related("repository__connection", "repository__team", *POLICY_RELATED).filter(
        pk=pk
    ),
    pk=int,
)
_STORED = PreparedRead(
    lambda pull_request, head_sha: ReviewerSuggestion.objects.filter(pull_request_id=pull_request, head_sha=head_sha)[
        :1
    ],
    pull_request=int,
    head_sha=str,
)


def reviewer_suggestion_pass(*, pull_request_id: int, client_factory: ClientFactory = vcs_client_for) -> str:
    """Suggest reviewers for the pull request's current head (once per head) and, when the policy asks, request them
    (`reviewer_requests_make`). A head that a push superseded before this ran is not worked out: the current one is.
    Returns what happened."""
    pull_request = _SUGGESTING_READ.first(pk=pull_request_id)
    if pull_request is None:
        return "gone"
    suggestion = _STORED.first(pull_request=pull_request.pk, head_sha=pull_request.head_sha)
    if suggestion is None:
        suggestion = reviewer_suggestions_compute(pull_request=pull_request)
    if suggestion is None:
        return "nothing to suggest yet"
    _, policy = effective_policy(repository=pull_request.repository)  # no query: selected with the pull request
    if policy.reviewers.request == 0:
        return "not asked"  # what `reviewer_requests_make` would answer, without locking the row to say it
    return reviewer_requests_make(suggestion=suggestion, client_factory=client_factory)


def reviewer_suggestions_compute(
    *, pull_request: PullRequest, now: dt.datetime | None = None
) -> ReviewerSuggestion | None:
    """Work out and store the suggestions for the pull request's current head; None when there is nothing to suggest
    for yet (closed, no head, or its files or commits are not known: who contributed decides who is left out)."""
    now = now or timezone.now()
    if pull_request.state != PullRequest.State.OPEN or not pull_request.head_sha:
        return None
    unknown = unknown_facts(pull_request=pull_request)
    if "files" in unknown or "commits" in unknown:
        return None
    _, policy = effective_policy(repository=pull_request.repository)
    snapshot = pull_request_snapshot(pull_request=pull_request, now=now)
    areas = change_areas(path for change in snapshot.files for path in change.paths)
    suggestions = suggestions_rank(
        pull_request=pull_request,
        areas=areas,
        excluded=set(snapshot_contributors(snapshot, policy).people),
        owners_wanted=code_owners_wanted(snapshot, policy),
        now=now,
    )
    row = ReviewerSuggestion(
        pull_request=pull_request,
        head_sha=pull_request.head_sha,
        computed_at=now,
        areas=areas,
        suggestions=[suggestion.to_dict() for suggestion in suggestions],
    )
    # One statement (INSERT … ON CONFLICT DO UPDATE) where `update_or_create` made six. A head worked out again keeps
    # what was requested for it: `reviewer_requests_make` reads that under the row's lock, never from this object.
    ReviewerSuggestion.objects.bulk_create(
        [row],
        update_conflicts=True,
        unique_fields=["pull_request", "head_sha"],
        update_fields=["computed_at", "areas", "suggestions"],
    )
    return row


def suggestions_rank(
    *,
    pull_request: PullRequest,
    areas: Sequence[str],
    excluded: set[int],
    owners_wanted: Sequence[OwnerRequirement] = (),
    now: dt.datetime,
) -> list[Suggestion]:
    """The ranked suggestions: a bounded number of queries whatever the history's size (familiarity by aggregate,
    candidates and their load in one query each)."""
    repository = pull_request.repository
    familiarity = area_familiarity(
        repository_ids=[repository.pk],
        areas=areas,
        since=now - FAMILIARITY_WINDOW,
        until=now,
        exclude_pull_request_id=pull_request.pk,
    )
    candidates = _candidates(repository.team_id, set(familiarity), excluded, now)
    for candidate in candidates.values():
        candidate.work = familiarity.get(candidate.person_id, {})
    candidates_load(candidates, now)
    if owners_wanted:
        refs = person_refs(candidates)
        for candidate in candidates.values():
            candidate.owns = tuple(req for req in owners_wanted if is_owner(refs[candidate.person_id], req.owners))
    return _pick(list(candidates.values()), owners_wanted)


def _candidates(team_id: int | None, familiar: set[int], excluded: set[int], now: dt.datetime) -> dict[int, Candidate]:
    """The repository's team and everyone who worked in the areas lately: no bot, nobody away, nobody who wrote it."""
    reach = Q(pk__in=familiar)
    if team_id is not None:
        reach |= Q(pk__in=Membership.objects.filter(team_id=team_id).values("person_id"))
    rows = (
        Person.objects.filter(reach, is_bot=False)
        .exclude(pk__in=excluded)
        .exclude(away_until__gte=now.date())
        .values_list("pk", "display_name")
    )
    return {pk: Candidate(pk, name) for pk, name in rows}


def candidates_load(candidates: dict[int, Candidate], now: dt.datetime) -> None:
    """Each candidate's current load: open review requests, and reviews given in the last week. Two queries."""
    ids = list(candidates)
    requests = (
        PullRequest.requested_reviewers.through.objects.filter(
            person_id__in=ids, pullrequest__state=PullRequest.State.OPEN
        )
        .values_list("person_id")
        .annotate(count=Count("pullrequest_id"))
    )
    for person_id, count in requests:
        candidates[person_id].open_requests = count
    reviews = (
        Review.objects.filter(reviewer_id__in=ids, submitted_at__gte=now - LOAD_WEEK, submitted_at__lte=now)
        .values_list("reviewer_id")
        .annotate(count=Count("pull_request_id", distinct=True))
    )
    for person_id, count in reviews:
        candidates[person_id].reviews_this_week = count


def _pick(candidates: list[Candidate], owners_wanted: Sequence[OwnerRequirement]) -> list[Suggestion]:
    ranked = sorted(candidates, key=Candidate.order)
    picked: list[tuple[Candidate, str]] = []

    def take(candidate: Candidate, kind: str) -> None:
        if all(candidate is not chosen for chosen, _ in picked):
            picked.append((candidate, kind))

    # Code owners first, as many of each requirement as it needs.
    for requirement in owners_wanted:
        owners = [c for c in ranked if requirement in c.owns]
        have = sum(1 for chosen, _ in picked if requirement in chosen.owns)
        for owner in owners[: max(requirement.approvals_needed - have, 0)]:
            take(owner, OWNER)
    # Someone who knows the areas.
    familiar = [c for c in ranked if c.familiarity > 0]
    if familiar and not any(chosen.familiarity > 0 for chosen, _ in picked):
        take(familiar[0], FAMILIAR)
    # Someone new to the areas, the least loaded, to review alongside one who knows them.
    newcomers = sorted((c for c in ranked if not c.work), key=least_loaded)
    if newcomers and any(chosen.familiarity > 0 for chosen, _ in picked):
        take(newcomers[0], NEWCOMER)
    for candidate in ranked:
        if len(picked) >= MAX_SUGGESTIONS:
            break
        take(candidate, FAMILIAR if candidate.familiarity > 0 else AVAILABLE)
    mentor = next((chosen for chosen, _ in picked if chosen.familiarity > 0), None)
    return [
        Suggestion(candidate.person_id, candidate.name, kind, candidate.score, _reasons(candidate, kind, mentor))
        for candidate, kind in picked[: max(MAX_SUGGESTIONS, len(owners_wanted))]
    ]


def least_loaded(candidate: Candidate) -> tuple[int, int, float, str, int]:
    """The order in which newcomers to an area are asked: the least loaded first, then by score, name and id."""
    return (candidate.open_requests, candidate.reviews_this_week, *candidate.order())


def _reasons(candidate: Candidate, kind: str, mentor: Candidate | None) -> tuple[str, ...]:
    reasons = []
    for requirement in candidate.owns:
        reasons.append(f"code owner of {requirement.pattern.lstrip('/') or '/'} (the policy needs one)")
    if candidate.work:
        days = FAMILIARITY_WINDOW.days
        for area, work in sorted(candidate.work.items(), key=lambda item: (-item[1].total, item[0]))[:2]:
            reasons.append(f"knows {area_label(area)}: {_count(work.total, 'change')} in {days} days ({_kinds(work)})")
    elif kind == NEWCOMER and mentor is not None:
        reasons.append(f"new to this area, pairs with {mentor.name} who knows it")
    else:
        reasons.append("new to this area")
    reasons.append(
        f"{_count(candidate.open_requests, 'open review')}" if candidate.open_requests else "no open reviews"
    )
    if candidate.reviews_this_week:
        reasons.append(f"{_count(candidate.reviews_this_week, 'review')} this week")
    return tuple(reasons)


def _kinds(work: AreaWork) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(work.changes.items()) if count)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# --- requests on GitHub / GitLab ------------------------------------------------------------------------------------


def reviewer_suggestion_current(*, pull_request: PullRequest) -> ReviewerSuggestion | None:
    return ReviewerSuggestion.objects.filter(pull_request=pull_request, head_sha=pull_request.head_sha).first()


def reviewer_requests_make(
    *, suggestion: ReviewerSuggestion, client_factory: ClientFactory = vcs_client_for, now: dt.datetime | None = None
) -> str:
    """Request the top suggestions on the VCS until `reviewers.request` people are requested or have reviewed.
    Idempotent: a suggestion is requested once (its row, locked meanwhile, says so), and nobody already requested or
    who has reviewed is requested again. A VCS that is unavailable raises VcsUnavailable, for the task to retry."""
    error: VcsError | None = None
    with transaction.atomic():
        locked = ReviewerSuggestion.objects.select_for_update().filter(pk=suggestion.pk).first()
        if locked is None:
            return "gone"
        try:
            outcome = _request(locked, client_factory, now)
        except VcsError as failure:
            error = failure
    if error is not None:
        ReviewerSuggestion.objects.filter(pk=suggestion.pk).update(request_error=str(error)[:1000])
        if isinstance(error, VcsUnavailable):
            raise error
        logger.warning("could not request reviewers for suggestion %s: %s", suggestion.pk, error)
        return "failed"
    suggestion.refresh_from_db()
    return outcome


def _request(suggestion: ReviewerSuggestion, client_factory: ClientFactory, now: dt.datetime | None) -> str:
    pull_request = PullRequest.objects.select_related("repository__connection").get(pk=suggestion.pull_request_id)
    repository = pull_request.repository
    _, policy = effective_policy(repository=repository)
    if policy.reviewers.request == 0:
        return "not asked"
    if suggestion.requested_at is not None:
        return "already requested"
    if (
        pull_request.state != PullRequest.State.OPEN
        or pull_request.head_sha != suggestion.head_sha
        or pull_request.draft
    ):
        return "not now"
    involved = set(pull_request.requested_reviewers.values_list("pk", flat=True)) | set(
        Review.objects.filter(pull_request=pull_request, reviewer__isnull=False).values_list("reviewer_id", flat=True)
    )
    wanted = policy.reviewers.request - len(involved)
    chosen = [item["person_id"] for item in suggestion.suggestions if item["person_id"] not in involved]
    accounts = _accounts(repository.connection_id, repository.provider, chosen)
    chosen = [person_id for person_id in chosen if person_id in accounts][: max(wanted, 0)]
    if chosen:
        client = client_factory(repository)
        try:
            client.request_reviewers(repository.full_path, pull_request.number, [accounts[pk] for pk in chosen])
        finally:
            client.close()
    ReviewerSuggestion.objects.filter(pk=suggestion.pk).update(
        requested=chosen, requested_at=now or timezone.now(), request_error=""
    )
    return f"requested {len(chosen)}" if chosen else "nobody to request"


def _accounts(connection_id: int, provider: str, person_ids: list[int]) -> dict[int, str]:
    """Each person's account on the connection: a GitHub login, or a GitLab user id."""
    kind = Identity.Kind.GITHUB if provider == "github" else Identity.Kind.GITLAB
    found: dict[int, str] = {}
    rows = Identity.objects.filter(person_id__in=person_ids, kind=kind, connection_id=connection_id).order_by("pk")
    for person_id, value, external_id in rows.values_list("person_id", "value", "external_id"):
        account = value if provider == "github" else external_id
        if account and person_id is not None:
            found.setdefault(person_id, account)
    return found
