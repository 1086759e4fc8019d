"""Which open pull requests a change concerns: a fact behind their verdict changed with no event on them; and which
merged ones, whose stored review figures (`PullRequestFigures`) the same change makes owed.

One place for these reads, so every service that changes such a fact asks the same question the same way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Q, QuerySet

from reviews.models import Identity, PairingSession, Policy, PullRequest, Repository, RiskSignal
from reviews.policy import incident_windows
from reviews.policy.document import MAX_WINDOW_DAYS
from reviews.selectors.policy import effective_policy


def _open() -> QuerySet[PullRequest]:
    return PullRequest.objects.filter(state=PullRequest.State.OPEN, repository__is_active=True).exclude(head_sha="")


def _ids(queryset: QuerySet[PullRequest]) -> list[int]:
    return sorted(set(queryset.values_list("pk", flat=True)))


def open_pull_requests_under_policy(*, policy: Policy) -> list[int]:
    """A repository's policy governs its pull requests; a team's, those of its repositories with none of their own."""
    if policy.repository_id:
        return _ids(_open().filter(repository_id=policy.repository_id))
    if policy.team_id is None:
        return []
    return _ids(_open().filter(repository__team_id=policy.team_id, repository__policy__isnull=True))


def open_pull_requests_of_repositories(*, repository_ids: Iterable[int]) -> list[int]:
    """Its CODEOWNERS or its incidents changed: every open pull request of the repository."""
    return _ids(_open().filter(repository_id__in=list(repository_ids)))


def open_pull_requests_involving(*, person_id: int) -> list[int]:
    """A person's teams or names changed: the pull requests they wrote, reviewed, committed, pushed or co-authored."""
    return _ids(
        _open().filter(
            Q(author_id=person_id)
            | Q(reviews__reviewer_id=person_id)
            | Q(commits__author_id=person_id)
            | Q(commits__pushed_by_id=person_id)
            | Q(commits__committer_identity__person_id=person_id)
            | Q(commits__co_authors__person_id=person_id)
        )
    )


def open_pull_requests_of_identity(*, identity: Identity) -> list[int]:
    """An identity was linked to a person: the pull requests whose commits name it, and the person's own."""
    by_identity = _ids(
        _open().filter(
            Q(commits__author_identity=identity)
            | Q(commits__committer_identity=identity)
            | Q(commits__co_authors=identity)
        )
    )
    by_person = open_pull_requests_involving(person_id=identity.person_id) if identity.person_id else []
    return sorted(set(by_identity) | set(by_person))


def open_pull_requests_of_pairing(*, session: PairingSession) -> list[int]:
    """Pairing can count as review: the participants' open pull requests (in the session's repository, if any)."""
    queryset = _open().filter(author__participations__session=session)
    if session.repository_id is not None:
        queryset = queryset.filter(repository_id=session.repository_id)
    return _ids(queryset)


def open_pull_requests_with_closing_risk_windows(*, since: dt.datetime, until: dt.datetime) -> list[int]:
    """Pull requests of repositories where an incident left one of their policy's windows between `since` and
    `until`: the bar it raised, or the rule it applied, no longer holds."""
    # No policy reads incidents through a longer window than the document allows.
    oldest = since - dt.timedelta(days=MAX_WINDOW_DAYS)
    signals = RiskSignal.objects.filter(occurred_at__gte=oldest, occurred_at__lt=until)
    by_repository: dict[int, list[dt.datetime]] = {}
    for repository_id, occurred_at in signals.values_list("repository_id", "occurred_at"):
        by_repository.setdefault(repository_id, []).append(occurred_at)
    closing = []
    for repository in Repository.objects.filter(pk__in=list(by_repository)).select_related("team"):
        _, policy = effective_policy(repository=repository)
        windows = [dt.timedelta(days=days) for days in incident_windows(policy)]
        if any(since < at + window <= until for at in by_repository[repository.pk] for window in windows):
            closing.append(repository.pk)
    return open_pull_requests_of_repositories(repository_ids=closing)


# Merged pull requests whose stored figures a change makes owed: querysets, stamped in one UPDATE however many.


def _merged() -> QuerySet[PullRequest]:
    return PullRequest.objects.filter(state=PullRequest.State.MERGED)


def merged_pull_requests_under_policy(*, policy: Policy) -> QuerySet[PullRequest]:
    """`open_pull_requests_under_policy`, merged: which approvals counted is decided under the current policy."""
    if policy.repository_id:
        return _merged().filter(repository_id=policy.repository_id)
    if policy.team_id is None:
        return PullRequest.objects.none()
    return _merged().filter(repository__team_id=policy.team_id, repository__policy__isnull=True)


def merged_pull_requests_involving(*, person_id: int) -> QuerySet[PullRequest]:
    """`open_pull_requests_involving`, merged."""
    return _merged().filter(
        pk__in=PullRequest.objects.filter(
            Q(author_id=person_id)
            | Q(reviews__reviewer_id=person_id)
            | Q(commits__author_id=person_id)
            | Q(commits__pushed_by_id=person_id)
            | Q(commits__committer_identity__person_id=person_id)
            | Q(commits__co_authors__person_id=person_id)
        ).values("pk")
    )


def merged_pull_requests_of_identity(*, identity: Identity) -> QuerySet[PullRequest]:
    """`open_pull_requests_of_identity`, merged."""
    by_identity = Q(commits__author_identity=identity) | Q(commits__committer_identity=identity)
    by_identity |= Q(commits__co_authors=identity)
    queryset = _merged().filter(pk__in=PullRequest.objects.filter(by_identity).values("pk"))
    if identity.person_id:
        queryset = queryset | merged_pull_requests_involving(person_id=identity.person_id)
    return queryset


def merged_pull_requests_of_pairing(
    *, session: PairingSession, since: dt.datetime | None = None
) -> QuerySet[PullRequest]:
    """Merged pull requests the session (as it was from `since`, or is) may have paired on: by its participants (in
    its repository, if any), merged after it began (pairing counts while a change is written, before its merge)."""
    began = min(session.started_at, since) if since else session.started_at
    queryset = _merged().filter(author__participations__session=session, merged_at__gte=began)
    if session.repository_id is not None:
        queryset = queryset.filter(repository_id=session.repository_id)
    return queryset
