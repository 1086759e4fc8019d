"""Reads for review policies: which policy applies, and a pull request's snapshot for the pure engine."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.db.models import Q, prefetch_related_objects
from django.utils import timezone

from reviews.integrations.github import WEB_COMMITTER_EMAIL
from reviews.models import (
    ChangedFile,
    CodeownersFile,
    Commit,
    CommitStatus,
    Identity,
    Person,
    Policy,
    PullRequest,
    Repository,
    Review,
    RiskSignal,
    Team,
)
from reviews.policy import (
    DEFAULT_POLICY,
    CommitRef,
    FileChange,
    FrozenDict,
    PairingCredit,
    PersonRef,
    ReviewRef,
    RiskSignalRef,
    Snapshot,
    parse_policy,
)
from reviews.policy import Policy as ParsedPolicy
from reviews.prepared import PreparedRead
from reviews.selectors.pairing import PairingPartner, pairing_partners_of

RISK_HISTORY = dt.timedelta(days=365)


def effective_policies(*, repositories: Iterable[Repository]) -> dict[int, ParsedPolicy]:
    """`effective_policy` of many repositories, parsed: one query, and each document parsed once."""
    teams = {repository.pk: repository.team_id for repository in repositories}
    rows = list(
        Policy.objects.filter(Q(repository_id__in=list(teams)) | Q(team_id__in={t for t in teams.values() if t}))
    )
    own = {row.repository_id: row.document for row in rows if row.repository_id is not None}
    of_team = {row.team_id: row.document for row in rows if row.team_id is not None}
    policies = {}
    for repository_id, team_id in teams.items():
        document = own.get(repository_id) or (of_team.get(team_id) if team_id is not None else None)
        if document is None:
            policies[repository_id] = DEFAULT_POLICY
        else:
            policies[repository_id] = _parsed(document)
    return policies


def effective_policy(*, repository: Repository) -> tuple[Policy | None, ParsedPolicy]:
    """The repository's own policy, else its team's, else the built-in default (one non-author approval). No query
    for what the caller selected with the repository (`POLICY_RELATED`)."""
    known, row = _selected(Repository.policy.related, repository)
    if not known:
        row = Policy.objects.filter(repository=repository).first()
    if row is None and repository.team_id is not None:
        known, row = _selected(Team.policy.related, repository.team) if _team_selected(repository) else (False, None)
        if not known:
            row = Policy.objects.filter(team_id=repository.team_id).first()
    if row is None:
        return None, DEFAULT_POLICY
    return row, _parsed(row.document)


# What to `select_related` from a pull request so that `effective_policy` of its repository makes no query.
POLICY_RELATED = ("repository__policy", "repository__team__policy")


def _team_selected(repository: Repository) -> bool:
    return bool(Repository.team.is_cached(repository))


def _selected(relation: Any, owner: Repository | Team | None) -> tuple[bool, Policy | None]:
    """(whether the owner's policy was selected with it, that policy or None)."""
    if owner is None or not relation.is_cached(owner):
        return False, None
    return True, relation.get_cached_value(owner)


@functools.lru_cache(maxsize=256)
def _parsed(document: str) -> ParsedPolicy:
    """A stored document, parsed once per process: every event evaluates under a policy, which changes rarely. Keyed
    by the text itself, so an edited policy is never read stale; the parsed policy is immutable (frozen)."""
    # Stored documents were validated on save, so this parses.
    return parse_policy(document)


def person_refs(person_ids: Iterable[int | None]) -> dict[int, PersonRef]:
    """PersonRefs for many people in one query: each person with their names (identities) and team slugs, a row
    per name and team (a person has a few of each)."""
    ids = {pk for pk in person_ids if pk is not None}
    if not ids:
        return {}
    found: dict[int, tuple[str, bool]] = {}
    names: dict[int, set[str]] = defaultdict(set)
    teams: dict[int, set[str]] = defaultdict(set)
    for pk, display_name, is_bot, name, slug in _PEOPLE.all(people=sorted(ids)):
        found[pk] = (display_name, is_bot)
        if name is not None:
            names[pk].add(name.lower())
        if slug is not None:
            teams[pk].add(slug)
    return {
        pk: PersonRef(
            id=str(pk),
            names=frozenset(names[pk]),
            is_bot=is_bot,
            teams=frozenset(teams[pk]),
            display_name=display_name,
        )
        for pk, (display_name, is_bot) in found.items()
    }


def _identity_ref(identity: Identity, people: dict[int, PersonRef]) -> PersonRef:
    if identity.person_id is not None and identity.person_id in people:
        return people[identity.person_id]
    # Unresolved (a co-author e-mail no lead has attached yet): a stable stand-in.
    return PersonRef(id=f"identity:{identity.pk}", names=frozenset({identity.value}), display_name=identity.value)


def _committer_ref(commit: Commit, people: dict[int, PersonRef]) -> PersonRef | None:
    identity = commit.committer_identity
    if identity is None or identity.value == WEB_COMMITTER_EMAIL:
        return None  # GitHub's own committer is nobody's contribution
    if identity.person_id is None and identity.pk == commit.author_identity_id:
        return None  # the author, still unresolved: the author's stand-in already says so
    return _identity_ref(identity, people)


# The verdict's reads, compiled once per process (`reviews.prepared`): a pass reads one pull request's.
_REVIEWS = PreparedRead(
    lambda pull_requests: Review.objects.filter(pull_request_id__in=pull_requests, reviewer__isnull=False).order_by(
        "submitted_at", "pk"
    ),
    pull_requests=list[int],
)
_COMMIT_LINKS = PreparedRead(
    lambda pull_requests: PullRequest.commits.through.objects.filter(pullrequest_id__in=pull_requests).select_related(
        "commit__committer_identity", "commit__author_identity"
    ),
    pull_requests=list[int],
)
_PEOPLE = PreparedRead(
    lambda people: (
        Person.objects.filter(pk__in=people)
        .order_by()
        .values_list("pk", "display_name", "is_bot", "identities__value", "memberships__team__slug")
    ),
    people=list[int],
)
_FILES = PreparedRead(
    lambda pull_requests: (
        ChangedFile.objects.filter(pull_request_id__in=pull_requests)
        .order_by("pull_request_id", "path")
        .values_list("pull_request_id", "path", "previous_path")
    ),
    pull_requests=list[int],
)
_STATUSES = PreparedRead(
    lambda repositories, shas: CommitStatus.objects.filter(repository_id__in=repositories, sha__in=shas).values_list(
        "repository_id", "sha", "context", "state"
    ),
    repositories=list[int],
    shas=list[str],
)
_CODEOWNERS = PreparedRead(
    lambda repositories, branches: CodeownersFile.objects.filter(repository_id__in=repositories, branch__in=branches),
    repositories=list[int],
    branches=list[str],
)


def review_snapshots(
    *,
    pull_requests: Sequence[PullRequest],
    now: dt.datetime | None = None,
    partners: dict[int, list[PairingPartner]] | None = None,
    reviews: Iterable[Review] | None = None,
) -> dict[int, Snapshot]:
    """What the verdict and every figure read of how these pull requests were written and reviewed: author,
    commits, reviews and pairing credits (`pairing_partners`; both read here unless given), head and diff
    fingerprints, and which of these facts are not known yet (`unknown_facts`). Files, checks, CODEOWNERS and
    incidents are the verdict's alone (`verdict_snapshots`). A fixed number of queries, however many pull
    requests (select their repositories' connections)."""
    now = now or timezone.now()
    ids = [pull_request.pk for pull_request in pull_requests]
    if reviews is None:
        reviews = _REVIEWS.all(pull_requests=ids)
    reviews_of: dict[int, list[Review]] = defaultdict(list)
    for review in reviews:
        reviews_of[review.pull_request_id].append(review)
    commits: dict[int, list[Commit]] = defaultdict(list)
    links = _COMMIT_LINKS.all(pull_requests=ids)
    for link in links:
        commits[link.pullrequest_id].append(link.commit)
    prefetch_related_objects([link.commit for link in links], "co_authors")
    if partners is None:
        partners = pairing_partners_of(pull_requests=pull_requests, commits=commits)
    every_commit = [commit for listed in commits.values() for commit in listed]
    people = person_refs(
        [pull_request.author_id for pull_request in pull_requests]
        + [review.reviewer_id for listed in reviews_of.values() for review in listed]
        + [c.author_id for c in every_commit]
        + [c.committer_identity.person_id for c in every_commit if c.committer_identity]
        + [c.pushed_by_id for c in every_commit]
        + [i.person_id for c in every_commit for i in c.co_authors.all()]
        + [p.person.pk for listed in partners.values() for p in listed]
    )
    return {
        pull_request.pk: Snapshot(
            head_sha=pull_request.head_sha,
            now=now,
            author=people.get(pull_request.author_id) if pull_request.author_id else None,
            base_ref=pull_request.base_ref,
            labels=tuple(pull_request.labels),
            draft=pull_request.draft,
            changed_lines=pull_request.changed_lines,
            commits=tuple(
                _commit_ref(commit, people)
                for commit in sorted(commits[pull_request.pk], key=lambda c: (c.authored_at, c.sha))
            ),
            reviews=tuple(
                ReviewRef(
                    id=review.external_id,
                    reviewer=people[review.reviewer_id or 0],
                    state=review.state,
                    commit_sha=review.commit_sha,
                    submitted_at=review.submitted_at,
                )
                for review in reviews_of[pull_request.pk]
            ),
            diff_ids=FrozenDict(pull_request.diff_ids),
            diff_ids_pending=FrozenDict(fingerprints_pending(pull_request=pull_request)),
            pairing=tuple(
                PairingCredit(partner=people[p.person.pk], source=p.source, detail=p.detail)
                for p in partners.get(pull_request.pk, [])
            ),
            unknown=FrozenDict(unknown_facts(pull_request=pull_request)),
            last_pushed_at=_head_pushed_at(pull_request, commits[pull_request.pk]),
        )
        for pull_request in pull_requests
    }


def _head_pushed_at(pull_request: PullRequest, commits: list[Commit]) -> dt.datetime | None:
    """When the head was pushed, as the last push Tandem saw says (GitHub's synchronize, GitLab's update with new
    commits or its "added commits" note). None when no push was seen, or when the head was committed after it: a
    later push was missed, and when that was is not known."""
    pushed_at = pull_request.last_pushed_at
    head = next((commit for commit in commits if commit.sha == pull_request.head_sha), None)
    if pushed_at is None or head is None:
        return pushed_at
    return None if (head.committed_at or head.authored_at) > pushed_at else pushed_at


def _commit_ref(commit: Commit, people: dict[int, PersonRef]) -> CommitRef:
    return CommitRef(
        sha=commit.sha,
        author=people.get(commit.author_id) if commit.author_id else None,
        co_authors=tuple(_identity_ref(identity, people) for identity in commit.co_authors.all()),
        committed_at=commit.committed_at or commit.authored_at,
        committer=_committer_ref(commit, people),
        pushed_by=people.get(commit.pushed_by_id) if commit.pushed_by_id else None,
        parents=tuple(commit.parents),
        via_web=commit.committer_identity is not None and commit.committer_identity.value == WEB_COMMITTER_EMAIL,
    )


def pull_request_snapshot(*, pull_request: PullRequest, now: dt.datetime | None = None) -> Snapshot:
    """The pull request at its head sha, as the policy engine sees it (`verdict_snapshots`)."""
    return verdict_snapshots(pull_requests=[pull_request], now=now)[pull_request.pk]


def verdict_snapshots(
    *,
    pull_requests: Sequence[PullRequest],
    now: dt.datetime | None = None,
    partners: dict[int, list[PairingPartner]] | None = None,
    reviews: Iterable[Review] | None = None,
) -> dict[int, Snapshot]:
    """What the verdict reads of each pull request at its head sha: its `review_snapshots` entry, with the files,
    checks, CODEOWNERS and recent incidents that decide which rules apply and whose approvals satisfy them. A fixed
    number of queries, however many pull requests (select their repositories' connections)."""
    now = now or timezone.now()
    ids = [pull_request.pk for pull_request in pull_requests]
    repository_ids = {pull_request.repository_id for pull_request in pull_requests}
    files: dict[int, list[FileChange]] = defaultdict(list)
    for pull_request_id, path, previous in _FILES.all(pull_requests=ids):
        files[pull_request_id].append(FileChange(path, previous))
    statuses: dict[tuple[int, str], dict[str, str]] = defaultdict(dict)
    heads = sorted({pull_request.head_sha for pull_request in pull_requests})
    for repository_id, sha, context, state in _STATUSES.all(repositories=sorted(repository_ids), shas=heads):
        statuses[(repository_id, sha)][context] = state
    incidents: dict[int, list[RiskSignalRef]] = defaultdict(list)
    signals = RiskSignal.objects.filter(repository_id__in=repository_ids, occurred_at__gte=now - RISK_HISTORY)
    for signal in signals.order_by("occurred_at", "pk"):
        incidents[signal.repository_id].append(
            RiskSignalRef(
                path_prefixes=tuple(signal.path_prefixes),
                service=signal.service_name,
                occurred_at=signal.occurred_at,
                reference=signal.reference,
            )
        )
    branches = sorted({pull_request.base_ref for pull_request in pull_requests})
    codeowners_files = {
        (row.repository_id, row.branch): row
        for row in _CODEOWNERS.all(repositories=sorted(repository_ids), branches=branches)
    }
    snapshots = review_snapshots(pull_requests=pull_requests, now=now, partners=partners, reviews=reviews)
    found = {}
    for pull_request in pull_requests:
        repository = pull_request.repository
        snapshot = snapshots[pull_request.pk]
        codeowners = _codeowners(pull_request, codeowners_files.get((repository.pk, pull_request.base_ref)))
        found[pull_request.pk] = replace(
            snapshot,
            files=tuple(files[pull_request.pk]),
            statuses=FrozenDict(statuses[(repository.pk, pull_request.head_sha)]),
            incident_paths=tuple(incidents[repository.pk]),
            codeowners=codeowners.text,
            codeowners_syntax="gitlab" if repository.connection.provider == "gitlab" else "github",
            codeowners_source=codeowners.source,
            unknown=FrozenDict({**snapshot.unknown, **codeowners.unknown}),
        )
    return found


@dataclass(frozen=True)
class _Codeowners:
    text: str
    source: str
    unknown: dict[str, str]


def _codeowners(pull_request: PullRequest, row: CodeownersFile | None) -> _Codeowners:
    """The CODEOWNERS that applies to the pull request: pasted in Tandem, else the file on its base branch (`row`)."""
    repository = pull_request.repository
    if repository.codeowners.strip():
        return _Codeowners(repository.codeowners, "pasted in Tandem, overriding the repository's file", {})
    provider = "GitLab" if repository.connection.provider == "gitlab" else "GitHub"
    if row is None or row.fetched_at is None:
        return _Codeowners("", "", {"codeowners": f"waiting for CODEOWNERS from {provider}"})
    if row.error:
        why = f"could not read CODEOWNERS from {provider} (last try: {row.error})"
        return _Codeowners("", "", {"codeowners": why})
    if not row.path:
        return _Codeowners("", f"no CODEOWNERS on {pull_request.base_ref}", {})
    return _Codeowners(row.text, f"{row.path} on {pull_request.base_ref}", {})


def fingerprints_pending(*, pull_request: PullRequest) -> dict[str, str]:
    """The heads whose fingerprint is owed (their files came without patches: `sync.fingerprints_fetch` fetches it
    when a verdict needs it), each with why it is not known, in words a status can show."""
    if not pull_request.diff_ids_owed:
        return {}
    provider = "GitLab" if pull_request.repository.connection.provider == "gitlab" else "GitHub"
    why = f" (last try: {pull_request.fingerprint_error})" if pull_request.fingerprint_error else ""
    return {
        str(sha): f"waiting for the diff of {str(sha)[:7]} from {provider} to tell a rebase from a change{why}"
        for sha in pull_request.diff_ids_owed
    }


def unknown_facts(*, pull_request: PullRequest) -> dict[str, str]:
    """The facts Tandem does not know for the pull request's head, each with why, in words a status can show.

    Files, commits and reviews are known for a head once the VCS's lists were fetched for it whole; a webhook
    alone never says which files a push changed."""
    provider = "GitLab" if pull_request.repository.connection.provider == "gitlab" else "GitHub"
    unknown: dict[str, str] = {}
    if pull_request.details_head_sha != pull_request.head_sha:
        why = f" (last try: {pull_request.facts_error})" if pull_request.facts_error else ""
        unknown["files"] = f"waiting for the list of changed files from {provider}{why}"
        unknown["commits"] = f"waiting for the commits from {provider}"
        if pull_request.details_synced_at is None:
            unknown["reviews"] = f"waiting for the reviews from {provider}"
        return unknown
    if pull_request.files_incomplete:
        unknown["files"] = f"{pull_request.files_incomplete}: too large to check, split it or override"
    if pull_request.commits_incomplete:
        unknown["commits"] = f"{pull_request.commits_incomplete}: contributors unknown, split it or override"
    return unknown
