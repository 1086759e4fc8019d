"""Reads for review policies: which policy applies, and a pull request's snapshot for the pure engine."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from django.db.models import Q
from django.utils import timezone

from reviews.integrations.github import WEB_COMMITTER_EMAIL
from reviews.models import (
    ChangedFile,
    CodeownersFile,
    Commit,
    CommitStatus,
    Identity,
    Membership,
    Person,
    Policy,
    PullRequest,
    Repository,
    Review,
    RiskSignal,
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
from reviews.selectors.pairing import PairingPartner, pairing_partners

RISK_HISTORY = dt.timedelta(days=365)


def effective_policies(*, repositories: Iterable[Repository]) -> dict[int, ParsedPolicy]:
    """`effective_policy` of many repositories, parsed: one query, and each document parsed once."""
    teams = {repository.pk: repository.team_id for repository in repositories}
    rows = list(
        Policy.objects.filter(Q(repository_id__in=list(teams)) | Q(team_id__in={t for t in teams.values() if t}))
    )
    own = {row.repository_id: row.document for row in rows if row.repository_id is not None}
    of_team = {row.team_id: row.document for row in rows if row.team_id is not None}
    parsed: dict[str, ParsedPolicy] = {}
    policies = {}
    for repository_id, team_id in teams.items():
        document = own.get(repository_id) or (of_team.get(team_id) if team_id is not None else None)
        if document is None:
            policies[repository_id] = DEFAULT_POLICY
        else:
            if document not in parsed:
                # Stored documents were validated on save, so this parses.
                parsed[document] = parse_policy(document)
            policies[repository_id] = parsed[document]
    return policies


def effective_policy(*, repository: Repository) -> tuple[Policy | None, ParsedPolicy]:
    """The repository's own policy, else its team's, else the built-in default (one non-author approval)."""
    row = Policy.objects.filter(repository=repository).first()
    if row is None and repository.team_id is not None:
        row = Policy.objects.filter(team_id=repository.team_id).first()
    if row is None:
        return None, DEFAULT_POLICY
    return row, stored_policy_parsed(row.document)


@lru_cache(maxsize=128)
def stored_policy_parsed(document: str) -> ParsedPolicy:
    """A stored document, parsed once per process: parsing the YAML was a third of an evaluation's time, and the
    parsed policy is immutable (frozen dataclasses and tuples), so one copy serves every evaluation under it.
    Stored documents were validated on save, so this parses."""
    return parse_policy(document)


def person_refs(person_ids: Iterable[int | None]) -> dict[int, PersonRef]:
    """PersonRefs for many people in three queries: their names (identities) and team slugs."""
    ids = {pk for pk in person_ids if pk is not None}
    names: dict[int, set[str]] = defaultdict(set)
    for person_id, value in Identity.objects.filter(person_id__in=ids).values_list("person_id", "value"):
        names[person_id].add(value.lower())
    teams: dict[int, set[str]] = defaultdict(set)
    for person_id, slug in Membership.objects.filter(person_id__in=ids).values_list("person_id", "team__slug"):
        teams[person_id].add(slug)
    return {
        pk: PersonRef(
            id=str(pk),
            names=frozenset(names[pk]),
            is_bot=is_bot,
            teams=frozenset(teams[pk]),
            display_name=display_name,
        )
        for pk, display_name, is_bot in Person.objects.filter(pk__in=ids).values_list("pk", "display_name", "is_bot")
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
    incidents are the verdict's alone (`pull_request_snapshot`). A fixed number of queries, however many pull
    requests (select their repositories' connections)."""
    now = now or timezone.now()
    ids = [pull_request.pk for pull_request in pull_requests]
    if reviews is None:
        reviews = Review.objects.filter(pull_request_id__in=ids, reviewer__isnull=False).order_by("submitted_at", "pk")
    reviews_of: dict[int, list[Review]] = defaultdict(list)
    for review in reviews:
        reviews_of[review.pull_request_id].append(review)
    commits: dict[int, list[Commit]] = defaultdict(list)
    links = PullRequest.commits.through.objects.filter(pullrequest_id__in=ids).select_related(
        "commit__committer_identity"
    )
    for link in links.prefetch_related("commit__co_authors"):
        commits[link.pullrequest_id].append(link.commit)
    if partners is None:
        partners = pairing_partners(pull_request_ids=ids)
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
            pairing=tuple(
                PairingCredit(partner=people[p.person.pk], source=p.source, detail=p.detail)
                for p in partners.get(pull_request.pk, [])
            ),
            unknown=FrozenDict(unknown_facts(pull_request=pull_request)),
        )
        for pull_request in pull_requests
    }


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
    """The pull request at its head sha, as the policy engine sees it: its `review_snapshots` entry, with the files,
    checks, CODEOWNERS and recent incidents a verdict also reads. A bounded number of queries."""
    now = now or timezone.now()
    repository = pull_request.repository
    codeowners = _codeowners(pull_request)
    return replace(
        review_snapshots(pull_requests=[pull_request], now=now)[pull_request.pk],
        files=tuple(
            FileChange(path, previous)
            for path, previous in ChangedFile.objects.filter(pull_request=pull_request)
            .order_by("path")
            .values_list("path", "previous_path")
        ),
        statuses=FrozenDict(
            dict(
                CommitStatus.objects.filter(repository=repository, sha=pull_request.head_sha).values_list(
                    "context", "state"
                )
            )
        ),
        incident_paths=tuple(
            RiskSignalRef(
                path_prefixes=tuple(signal.path_prefixes),
                service=signal.service_name,
                occurred_at=signal.occurred_at,
                reference=signal.reference,
            )
            for signal in RiskSignal.objects.filter(
                repository=repository, occurred_at__gte=now - RISK_HISTORY
            ).order_by("occurred_at", "pk")
        ),
        codeowners=codeowners.text,
        codeowners_syntax="gitlab" if repository.connection.provider == "gitlab" else "github",
        codeowners_source=codeowners.source,
        unknown=FrozenDict({**unknown_facts(pull_request=pull_request), **codeowners.unknown}),
    )


@dataclass(frozen=True)
class _Codeowners:
    text: str
    source: str
    unknown: dict[str, str]


def _codeowners(pull_request: PullRequest) -> _Codeowners:
    """The CODEOWNERS that applies to the pull request: pasted in Tandem, else the file on its base branch."""
    repository = pull_request.repository
    if repository.codeowners.strip():
        return _Codeowners(repository.codeowners, "pasted in Tandem, overriding the repository's file", {})
    provider = "GitLab" if repository.connection.provider == "gitlab" else "GitHub"
    row = CodeownersFile.objects.filter(repository=repository, branch=pull_request.base_ref).first()
    if row is None or row.fetched_at is None:
        return _Codeowners("", "", {"codeowners": f"waiting for CODEOWNERS from {provider}"})
    if row.error:
        why = f"could not read CODEOWNERS from {provider} (last try: {row.error})"
        return _Codeowners("", "", {"codeowners": why})
    if not row.path:
        return _Codeowners("", f"no CODEOWNERS on {pull_request.base_ref}", {})
    return _Codeowners(row.text, f"{row.path} on {pull_request.base_ref}", {})


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
