"""A signed-in person's own work: their open pull requests, and what waits on their review."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.models import Exists, OuterRef, QuerySet

from reviews.models import Identity, Membership, Person, PolicyEvaluation, PullRequest, Review


def my_open_pull_requests(*, person: Person) -> QuerySet[PullRequest]:
    return (
        PullRequest.objects.filter(author=person, state=PullRequest.State.OPEN)
        .select_related("repository")
        .order_by("-updated_at")
    )


def waiting_on(*, person: Person) -> list[PullRequest]:
    """Open, ready pull requests by others that this person has not reviewed, where their review was requested or
    the latest verdict still needs a code owner they are (named by one of their logins). Two queries."""
    reviewed = Review.objects.filter(pull_request=OuterRef("pk"), reviewer=person)
    teams = Membership.objects.filter(person=person).values("team_id")
    candidates = (
        PullRequest.objects.filter(state=PullRequest.State.OPEN, draft=False, repository__team_id__in=teams)
        .exclude(author=person)
        .exclude(Exists(reviewed))
        .annotate(requested=Exists(PullRequest.requested_reviewers.through.objects.filter(
            pullrequest_id=OuterRef("pk"), person_id=person.pk)))
        .annotate(verdict_trace=PolicyEvaluation.objects.filter(pull_request=OuterRef("pk"))
                  .order_by("-evaluated_at", "-pk").values("trace")[:1])
        .select_related("repository", "author")
        .order_by("ready_at")
    )  # fmt: skip
    logins = list(
        Identity.objects.filter(person=person).exclude(kind=Identity.Kind.EMAIL).values_list("value", flat=True)
    )
    waiting: list[PullRequest] = []
    for pull_request in candidates:
        if pull_request.requested:
            pull_request.why_waiting = "review requested"  # type: ignore[attr-defined]
        elif _needs_owner(pull_request.verdict_trace, logins):
            pull_request.why_waiting = "needs a code owner: you"  # type: ignore[attr-defined]
        else:
            continue
        waiting.append(pull_request)
    return waiting


def _needs_owner(trace: object, logins: Iterable[str]) -> bool:
    """Whether a verdict's trace says a code owner is still needed and names one of these logins."""
    if not isinstance(trace, dict):
        return False
    text = " ".join(_reasons(trace.get("rules") or []))
    if "code owner" not in text:
        return False
    return any(re.search(rf"(?<![\w/-]){re.escape(login)}(?![\w-])", text, re.IGNORECASE) for login in logins)


def _reasons(rules: list[object]) -> list[str]:
    found: list[str] = []
    for rule in rules:
        if isinstance(rule, dict) and rule.get("state") != "satisfied":
            found.append(str(rule.get("reason", "")))
            found.extend(_reasons(rule.get("children") or []))
    return found
