"""evaluate(snapshot, policy) -> Trace: which approvals count, which do not and why, rule by rule.

Pure and deterministic: no Django, no clock (the snapshot carries `now`), no I/O, and nothing depends on the
order in which reviews, commits or pairing credits are listed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reviews.policy.codeowners import OwnerRequirement, is_owner, parse_codeowners
from reviews.policy.document import Conditions, Options, Pattern, Policy, Requirements, Rule
from reviews.policy.snapshot import FACTS, CommitRef, FrozenDict, PersonRef, ReviewRef, Snapshot, to_jsonable
from reviews.words import counted

SUMMARY_LIMIT = 140

APPROVED, PENDING, BLOCKED = "approved", "pending", "blocked"
SATISFIED, SKIPPED = "satisfied", "skipped"

AUTHOR = "author"
CONTRIBUTOR = "contributor"
MAYBE_CONTRIBUTOR = "not known yet whether a contributor"
STALE = "stale after push"
MAYBE_STALE = "not known yet whether given before the last push"
REBASE_UNKNOWN = "not known yet whether the push since was a rebase"
BOT = "bot"
NOT_IN_TEAM = "not in the required team"
NOT_OWNER = "not a code owner"
NOT_PERSON = "not a required person"
DISMISSED = "dismissed"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Approval:
    """An approval that counted: from a review, or `weight` approvals credited for pairing with the author."""

    person_id: str
    login: str
    via: str
    review_id: str = ""
    weight: int = 1
    detail: str = ""


@dataclass(frozen=True)
class Discarded:
    person_id: str
    login: str
    review_id: str
    reason: str


@dataclass(frozen=True)
class CheckTrace:
    """A required status check: success, pending, failure, error, or missing (never reported)."""

    context: str
    state: str
    required_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleTrace:
    name: str
    state: str
    reason: str
    kind: str = "rule"
    needed: int = 0
    approvals_counted: tuple[Approval, ...] = ()
    approvals_discarded: tuple[Discarded, ...] = ()
    missing: tuple[str, ...] = ()
    checks: tuple[CheckTrace, ...] = ()
    children: tuple[RuleTrace, ...] = ()


@dataclass(frozen=True)
class BlockingReview:
    person_id: str
    login: str
    review_id: str
    submitted_at: dt.datetime


@dataclass(frozen=True)
class IncidentHit:
    service: str
    reference: str
    occurred_at: dt.datetime
    paths: tuple[str, ...]


@dataclass(frozen=True)
class RiskTrace:
    extra_approvals: int = 0
    window_days: int = 0
    incidents: tuple[IncidentHit, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Trace:
    outcome: str
    summary: str
    head_sha: str
    draft: bool
    rules: tuple[RuleTrace, ...]
    blocking_reviews: tuple[BlockingReview, ...]
    checks: tuple[CheckTrace, ...]
    risk: RiskTrace
    # What the verdict could not be sure of: fact -> why. Nothing unknown can let a pull request pass.
    unknown: FrozenDict = FrozenDict()

    def to_dict(self) -> dict[str, Any]:
        jsonable: dict[str, Any] = to_jsonable(self)
        return jsonable


@dataclass(frozen=True)
class _Standing:
    """Where one reviewer stands after all their reviews: the approval or change request still in force."""

    reviewer: PersonRef
    approval: ReviewRef | None
    changes_requested: ReviewRef | None
    set_aside: tuple[Discarded, ...]


@dataclass(frozen=True)
class _OwnedPaths:
    requirement: OwnerRequirement
    paths: tuple[str, ...]


@dataclass(frozen=True)
class _Partner:
    person: PersonRef
    detail: str


@dataclass(frozen=True)
class _Facts:
    """What every rule looks at, worked out once per evaluation."""

    snapshot: Snapshot
    standings: tuple[_Standing, ...]
    owned_paths: tuple[_OwnedPaths, ...]
    partners: tuple[_Partner, ...]
    risk: RiskTrace
    codeowners_errors: tuple[str, ...] = ()


def evaluate(snapshot: Snapshot, policy: Policy) -> Trace:
    facts = _facts(snapshot, policy)
    rules = tuple(_evaluate_rule(rule, facts, policy.options) for rule in policy.rules)
    blocking = _blocking_reviews(facts.standings)
    checks = _check_traces(snapshot, policy.checks, rules)
    outcome = _outcome(snapshot, rules, blocking, policy.checks)
    unknown = _unknown_that_matters(snapshot.unknown, policy.rules, rules)
    if unknown and outcome != BLOCKED:
        # Fail closed: rules read over missing facts may look satisfied (no files, no path rule applies).
        outcome = PENDING
        summary = _unknown_summary(unknown)
    else:
        summary = _summary(outcome, snapshot.draft, rules, blocking, checks)
    return Trace(
        outcome=outcome,
        summary=summary,
        head_sha=snapshot.head_sha,
        draft=snapshot.draft,
        rules=rules,
        blocking_reviews=blocking,
        checks=checks,
        risk=facts.risk,
        unknown=unknown,
    )


def _unknown_that_matters(unknown: FrozenDict, rules: tuple[Rule, ...], traces: tuple[RuleTrace, ...]) -> FrozenDict:
    """Every unknown fact counts, but CODEOWNERS only where a rule that applies asks for code owners."""
    if "codeowners" not in unknown or _asks_code_owners(rules, traces):
        return unknown
    return FrozenDict({fact: why for fact, why in unknown.items() if fact != "codeowners"})


def _asks_code_owners(rules: Iterable[Rule], traces: Iterable[RuleTrace]) -> bool:
    for rule, trace in zip(rules, traces, strict=True):
        if trace.state == SKIPPED:
            continue
        if rule.require.code_owners or _asks_code_owners(rule.children, trace.children):
            return True
    return False


def asks_code_owners(policy: Policy) -> bool:
    """Whether any rule of the policy, where it applies, needs code owners: only then is CODEOWNERS worth reading."""

    def walk(rules: Iterable[Rule]) -> bool:
        return any(rule.require.code_owners or walk(rule.children) for rule in rules)

    return walk(policy.rules)


def code_owners_wanted(snapshot: Snapshot, policy: Policy) -> tuple[OwnerRequirement, ...]:
    """The CODEOWNERS requirements this change must meet: those covering its paths, when a rule that applies to it
    asks for code owners (reviewer suggestions put such owners first). Optional owners ask nothing."""
    facts = _facts(snapshot, policy)
    traces = tuple(_evaluate_rule(rule, facts, policy.options) for rule in policy.rules)
    if not _asks_code_owners(policy.rules, traces):
        return ()
    return tuple(owned.requirement for owned in facts.owned_paths)


def incident_windows(policy: Policy) -> frozenset[int]:
    """The windows, in days, through which this policy reads incidents: when one closes on an incident, a verdict
    may change with no event on the pull request."""
    days = {policy.risk.incident_window_days} if policy.risk.extra_approvals else set()

    def walk(rules: Iterable[Rule]) -> None:
        for rule in rules:
            if rule.when.touches_incident_within_days is not None:
                days.add(rule.when.touches_incident_within_days)
            walk(rule.children)

    walk(policy.rules)
    return frozenset(days)


def _unknown_summary(unknown: FrozenDict) -> str:
    """Why the verdict waits: the fact that matters most, within the limit of a commit status (the trace has all)."""
    first = next(unknown[fact] for fact in FACTS if fact in unknown)
    return _limited(_sentence([first]))


# Facts shared by every rule.


def _facts(snapshot: Snapshot, policy: Policy) -> _Facts:
    return _Facts(
        snapshot=snapshot,
        standings=_standings(snapshot.reviews),
        owned_paths=_owned_paths(snapshot),
        partners=_partners(snapshot),
        risk=_risk(snapshot, policy),
        codeowners_errors=parse_codeowners(snapshot.codeowners, snapshot.codeowners_syntax).errors,
    )


def _review_order(review: ReviewRef) -> tuple[dt.datetime, str]:
    return (review.submitted_at, review.id)


def _standings(reviews: Iterable[ReviewRef]) -> tuple[_Standing, ...]:
    histories: dict[str, list[ReviewRef]] = {}
    for review in sorted(reviews, key=_review_order):
        histories.setdefault(review.reviewer.id, []).append(review)
    return tuple(_standing(histories[reviewer_id]) for reviewer_id in sorted(histories))


def _standing(history: list[ReviewRef]) -> _Standing:
    """A reviewer's latest approving, change-requesting or dismissed review decides; comments change nothing."""
    approval: ReviewRef | None = None
    changes_requested: ReviewRef | None = None
    set_aside: list[Discarded] = []
    for review in history:
        if review.state == "commented":
            continue
        if approval is not None:
            set_aside.append(_discarded(approval.reviewer, approval.id, SUPERSEDED))
        approval = review if review.state == "approved" else None
        changes_requested = review if review.state == "changes_requested" else None
        if review.state == "dismissed":
            set_aside.append(_discarded(review.reviewer, review.id, DISMISSED))
    return _Standing(history[-1].reviewer, approval, changes_requested, tuple(set_aside))


def _changed_paths(snapshot: Snapshot) -> tuple[str, ...]:
    return tuple(sorted({path for change in snapshot.files for path in change.paths}))


def _owned_paths(snapshot: Snapshot) -> tuple[_OwnedPaths, ...]:
    """Each CODEOWNERS requirement that applies to the change, with the paths it covers. Optional ones ask nothing."""
    if not snapshot.codeowners.strip():
        return ()
    codeowners = parse_codeowners(snapshot.codeowners, snapshot.codeowners_syntax)
    grouped: dict[OwnerRequirement, list[str]] = {}
    for path in _changed_paths(snapshot):
        for requirement in codeowners.owners_for(path):
            if not requirement.optional:
                grouped.setdefault(requirement, []).append(path)
    ordered = sorted(grouped.items(), key=lambda item: (item[1][0], item[0].section, sorted(item[0].owners)))
    return tuple(_OwnedPaths(requirement, tuple(paths)) for requirement, paths in ordered)


def _partners(snapshot: Snapshot) -> tuple[_Partner, ...]:
    details: dict[str, set[str]] = {}
    people: dict[str, PersonRef] = {}
    for credit in snapshot.pairing:
        people.setdefault(credit.partner.id, credit.partner)
        label = "paired in a session" if credit.source == "session" else "co-authored commits"
        details.setdefault(credit.partner.id, set()).add(f"{label} ({credit.detail})" if credit.detail else label)
    return tuple(_Partner(people[key], "; ".join(sorted(details[key]))) for key in sorted(people))


def _incident_hits(snapshot: Snapshot, window_days: int) -> tuple[IncidentHit, ...]:
    since = snapshot.now - dt.timedelta(days=window_days)
    paths = _changed_paths(snapshot)
    hits = []
    for signal in snapshot.incident_paths:
        touched = tuple(path for path in paths if signal.touches(path))
        if signal.occurred_at >= since and touched:
            hits.append(IncidentHit(signal.service, signal.reference, signal.occurred_at, touched))
    return tuple(sorted(hits, key=lambda hit: (hit.occurred_at, hit.service, hit.reference)))


def _risk(snapshot: Snapshot, policy: Policy) -> RiskTrace:
    window = policy.risk.incident_window_days
    hits = _incident_hits(snapshot, window)
    if not hits or not policy.risk.extra_approvals:
        return RiskTrace(window_days=window, incidents=hits)
    extra = policy.risk.extra_approvals
    reason = (
        f"Changes code behind an incident in {_services(hits)} within the last {window} days: "
        f"each rule that counts approvals needs {_more_approvals(extra)}."
    )
    return RiskTrace(extra, window, hits, reason)


# Rules.


def _evaluate_rule(rule: Rule, facts: _Facts, inherited: Options) -> RuleTrace:
    options = rule.options.apply_to(inherited)
    kind = rule.combine or "rule"
    skip_reason = _why_not_applicable(rule.when, facts)
    if skip_reason:
        return RuleTrace(rule.name, SKIPPED, f"Skipped: {skip_reason}.", kind=kind)
    if rule.combine:
        children = tuple(_evaluate_rule(child, facts, options) for child in rule.children)
        return _combination_trace(rule, children)
    return _requirement_trace(rule, facts, options)


def _combination_trace(rule: Rule, children: tuple[RuleTrace, ...]) -> RuleTrace:
    applicable = [child for child in children if child.state != SKIPPED]
    state = _combined_state(rule.combine, [child.state for child in applicable])
    reason = _combination_reason(rule.combine, state, applicable)
    return RuleTrace(
        rule.name,
        state,
        reason,
        kind=rule.combine,
        missing=_combined_missing(rule.combine, state, applicable),
        children=children,
    )


def _combined_missing(combine: str, state: str, applicable: list[RuleTrace]) -> tuple[str, ...]:
    """What the combination lacks; for a pending `any`, what its first pending alternative lacks."""
    if state == SATISFIED:
        return ()
    unmet = [child for child in applicable if child.state == state]
    if combine == "any" and state == PENDING:
        unmet = unmet[:1]
    return tuple(dict.fromkeys(phrase for child in unmet for phrase in child.missing))


def _combined_state(combine: str, states: list[str]) -> str:
    if not states:
        return SKIPPED
    if combine == "any":
        for state in (SATISFIED, PENDING):
            if state in states:
                return state
        return BLOCKED
    for state in (BLOCKED, PENDING):
        if state in states:
            return state
    return SATISFIED


def _combination_reason(combine: str, state: str, applicable: list[RuleTrace]) -> str:
    names = {wanted: [f"'{child.name}'" for child in applicable if child.state == wanted] for wanted in _STATES}
    if state == SKIPPED:
        return "Skipped: none of its rules applies."
    if combine == "any":
        if state == SATISFIED:
            return f"Satisfied: {names[SATISFIED][0]} is satisfied."
        if state == PENDING:
            alternatives = "the one alternative" if len(applicable) == 1 else f"{len(applicable)} alternatives"
            return f"Pending: none of {alternatives} is satisfied yet ({', '.join(names[PENDING])})."
        return "Blocked: every alternative that applies is blocked."
    if state == SATISFIED:
        if len(applicable) == 1:
            return f"Satisfied: {names[SATISFIED][0]}, the one rule that applies, is satisfied."
        return f"Satisfied: all {len(applicable)} rules that apply are satisfied."
    if state == PENDING:
        return f"Pending: waiting for {', '.join(names[PENDING])}."
    verb = "is" if len(names[BLOCKED]) == 1 else "are"
    return f"Blocked: {', '.join(names[BLOCKED])} {verb} blocked."


_STATES = (SATISFIED, PENDING, BLOCKED)


def _why_not_applicable(when: Conditions, facts: _Facts) -> str:
    """Why the rule's `if` does not hold, or "" when it does (every predicate given must hold)."""
    snapshot = facts.snapshot
    for reason in (
        _paths_reason(when, snapshot),
        _branch_reason(when.base_branches, snapshot.base_ref),
        _labels_reason(when.labels, snapshot.labels),
        _author_teams_reason(when.author_in_teams, snapshot.author),
        _size_reason(when.size_over, snapshot.changed_lines),
        _draft_reason(when.draft, snapshot.draft),
        _incident_reason(when.touches_incident_within_days, snapshot),
    ):
        if reason:
            return reason
    return ""


def _paths_reason(when: Conditions, snapshot: Snapshot) -> str:
    if not when.paths and not when.not_paths:
        return ""
    considered = [change for change in snapshot.files if not _all_match(change.paths, when.not_paths)]
    if not when.paths:
        return "" if considered else f"every changed file matches {_texts(when.not_paths)}"
    if any(_any_match(change.paths, when.paths) for change in considered):
        return ""
    outside = f" outside {_texts(when.not_paths)}" if when.not_paths else ""
    return f"no changed file{outside} matches {_texts(when.paths)}"


def _branch_reason(patterns: tuple[Pattern, ...], base_ref: str) -> str:
    if not patterns or _any_match((base_ref,), patterns):
        return ""
    return f"the base branch '{base_ref}' does not match {_texts(patterns)}"


def _labels_reason(labels: tuple[str, ...], present: tuple[str, ...]) -> str:
    if not labels or set(labels) & {label.lower() for label in present}:
        return ""
    return f"none of the labels {', '.join(labels)} is set"


def _author_teams_reason(teams: tuple[str, ...], author: PersonRef | None) -> str:
    if not teams or (author is not None and set(teams) & author.teams):
        return ""
    return f"the author is not in {', '.join(teams)}"


def _size_reason(size_over: int | None, changed_lines: int | None) -> str:
    # An unknown size counts as large: the stricter reading of a rule meant for big changes.
    if size_over is None or changed_lines is None or changed_lines > size_over:
        return ""
    return f"{counted(changed_lines, 'changed line')} is not over {size_over}"


def _draft_reason(draft: bool | None, is_draft: bool) -> str:
    if draft is None or draft == is_draft:
        return ""
    return "the pull request is a draft" if is_draft else "the pull request is not a draft"


def _incident_reason(within_days: int | None, snapshot: Snapshot) -> str:
    if within_days is None or _incident_hits(snapshot, within_days):
        return ""
    return f"no changed file had an incident in the last {within_days} days"


def _any_match(values: Iterable[str], patterns: tuple[Pattern, ...]) -> bool:
    return any(pattern.matches(value) for value in values for pattern in patterns)


def _all_match(values: tuple[str, ...], patterns: tuple[Pattern, ...]) -> bool:
    return bool(patterns) and all(_any_match((value,), patterns) for value in values)


def _texts(patterns: tuple[Pattern, ...]) -> str:
    return ", ".join(pattern.text for pattern in patterns)


# A requirement rule.


@dataclass(frozen=True)
class _Tally:
    counted: tuple[Approval, ...]
    discarded: tuple[Discarded, ...]
    qualified_reviewers: tuple[PersonRef, ...]


def _requirement_trace(rule: Rule, facts: _Facts, options: Options) -> RuleTrace:
    require = rule.require
    tally = _tally(require, facts, options)
    needed = require.approvals + (facts.risk.extra_approvals if require.approvals else 0)
    checks = tuple(_check(facts.snapshot, context, (rule.name,)) for context in require.checks)
    missing = _missing(require, facts, options, tally, needed, checks)
    state = _requirement_state(checks, missing)
    return RuleTrace(
        name=rule.name,
        state=state,
        reason=_requirement_reason(state, tally, needed, missing, _notes(require, facts, checks, missing)),
        needed=needed,
        approvals_counted=tally.counted,
        approvals_discarded=tally.discarded,
        missing=missing,
        checks=checks,
    )


def _requirement_state(checks: tuple[CheckTrace, ...], missing: tuple[str, ...]) -> str:
    if any(check.state in ("failure", "error") for check in checks):
        return BLOCKED
    return PENDING if missing else SATISFIED


def counted_approvals(snapshot: Snapshot, policy: Policy) -> tuple[ReviewRef, ...]:
    """Tandem's one definition of "an approval that counted" (METRICS.md), which every figure reads: an approval
    the verdict counted toward a rule that applies, each rule under its own options (`approvals_that_count`) and
    its own limits on whose approvals satisfy it (teams, people, code owners). Where a rule applies, an approval
    no applicable rule counted did not count, even if the policy's options alone would have let it. Where no rule
    applies (a change outside every rule's `if`), nothing narrows them: the options decide (`approvals_that_count`),
    so a peer's approval of such a change still makes it reviewed. Oldest first."""
    trace = evaluate(snapshot, policy)
    applicable = [rule for rule in _every_trace(trace.rules) if rule.state != SKIPPED]
    if not applicable:
        return approvals_that_count(snapshot, policy.options)
    counted = {
        approval.review_id for rule in applicable for approval in rule.approvals_counted if approval.via == "review"
    }
    return tuple(review for review in sorted(snapshot.reviews, key=_review_order) if review.id in counted)


def approvals_that_count(snapshot: Snapshot, options: Options) -> tuple[ReviewRef, ...]:
    """What options alone let count, before any rule narrows it: each reviewer's approval still standing (not
    dismissed or withdrawn, not followed by a change request) that is never a bot's, not the author's unless
    `allow_author`, not a contributor's unless `allow_contributors` (while the commits are unknown, anyone may be
    one: none counts yet), not made stale by a push when `invalidate_on_push` (an approval with no sha, given
    before the head's last push or when that time is unknown, does not count). A rule then narrows whose approvals
    satisfy it (teams, people, code owners): what counted is `counted_approvals`. Oldest first."""
    involved = contributors(snapshot, options)
    counted = [
        standing.approval
        for standing in _standings(snapshot.reviews)
        if standing.approval is not None
        and _disqualification(standing.reviewer, standing.approval, snapshot, options, involved) is None
    ]
    return tuple(sorted(counted, key=_review_order))


def _tally(require: Requirements, facts: _Facts, options: Options) -> _Tally:
    involved = contributors(facts.snapshot, options)
    only_owners_count = require.code_owners and not require.approvals
    counted: list[Approval] = []
    discarded: list[Discarded] = []
    qualified: list[PersonRef] = []
    for standing in facts.standings:
        discarded.extend(standing.set_aside)
        if standing.approval is None:
            continue
        reviewer, review = standing.reviewer, standing.approval
        # The same test as `approvals_that_count`, keeping the reason for the trace.
        reason = _disqualification(reviewer, review, facts.snapshot, options, involved)
        if reason is None:
            qualified.append(reviewer)
            reason = _ineligibility(reviewer, require) or (
                _not_an_owner(reviewer, facts) if only_owners_count else None
            )
        if reason is None:
            counted.append(Approval(reviewer.id, reviewer.label, "review", review.id))
        else:
            discarded.append(_discarded(reviewer, review.id, reason))
    if options.pairing_credit and not only_owners_count:
        _credit_pairing(require, facts, options, counted, discarded)
    return _Tally(tuple(counted), tuple(sorted(discarded, key=_discard_order)), tuple(qualified))


def _disqualification(
    reviewer: PersonRef, review: ReviewRef, snapshot: Snapshot, options: Options, contributors: frozenset[str]
) -> str | None:
    """Why this approval cannot count under these options, whatever the rule requires, or None."""
    if reviewer.is_bot:
        return BOT
    if _is_author(reviewer, snapshot) and not options.allow_author:
        return AUTHOR
    if reviewer.id in contributors and not options.allow_contributors:
        return CONTRIBUTOR
    if "commits" in snapshot.unknown and not options.allow_contributors:
        return MAYBE_CONTRIBUTOR  # fail closed: who wrote the change is not known yet
    if _rebase_unknown(review, snapshot, options):
        return REBASE_UNKNOWN  # fail closed: a fingerprint it rests on is not fetched yet
    if _is_stale(review, snapshot, options):
        return STALE
    if _may_be_stale(review, snapshot, options):
        return MAYBE_STALE  # fail closed: no sha, and when the head was pushed is not known
    return None


def _ineligibility(person: PersonRef, require: Requirements) -> str | None:
    """Why this person's approval does not count toward a rule limited to some teams or people, or None."""
    if not require.teams and not require.people:
        return None
    if set(require.teams) & person.teams or set(require.people) & person.names:
        return None
    return NOT_PERSON if not require.teams else NOT_IN_TEAM


def _not_an_owner(person: PersonRef, facts: _Facts) -> str | None:
    owns_something = any(is_owner(person, owned.requirement.owners) for owned in facts.owned_paths)
    return None if owns_something else NOT_OWNER


def _credit_pairing(
    require: Requirements, facts: _Facts, options: Options, counted: list[Approval], discarded: list[Discarded]
) -> None:
    already = {approval.person_id for approval in counted}
    for partner in facts.partners:
        person = partner.person
        if person.id in already:
            continue
        reason = _partner_disqualification(person, facts.snapshot) or _ineligibility(person, require)
        if reason:
            discarded.append(_discarded(person, "", reason))
        else:
            counted.append(Approval(person.id, person.label, "pairing", "", options.pairing_credit, partner.detail))


def _partner_disqualification(person: PersonRef, snapshot: Snapshot) -> str | None:
    if person.is_bot:
        return BOT
    return AUTHOR if _is_author(person, snapshot) else None


def _is_author(person: PersonRef, snapshot: Snapshot) -> bool:
    return snapshot.author is not None and person.id == snapshot.author.id


def contributors(snapshot: Snapshot, options: Options) -> frozenset[str]:
    """Tandem's one definition of a pull request's contributors (the policy's `allow_contributors`, an override's
    `allow_self`, a follow-up's separation of duties): people who authored, co-authored, committed or pushed a
    commit, besides the author (policy-bot's contributors). Bots' commits count only if asked to; GitHub's merges
    of the base branch ("Update branch") make nobody a contributor, as policy-bot's `ignore_update_merges`.
    Only the commits known: while `unknown_contributors` says why, someone else may be one too."""
    in_pull_request = {commit.sha for commit in snapshot.commits}
    people: set[str] = set()
    for commit in snapshot.commits:
        if options.ignore_bots and commit.author is not None and commit.author.is_bot:
            continue
        if _is_update_merge(commit, in_pull_request):
            continue
        involved = (commit.author, commit.committer, commit.pushed_by, *commit.co_authors)
        people.update(person.id for person in involved if person is not None and not person.is_bot)
    # The author's own approval is `allow_author`'s business alone.
    people.discard(snapshot.author.id if snapshot.author else "")
    return frozenset(people)


def unknown_contributors(snapshot: Snapshot) -> str:
    """Why `contributors` may be short of someone ("" when it is not): while the pull request's commits are not all
    known (not fetched for its head, or too many to list), anyone may have written one. Whatever leans on
    `contributors` to clear someone fails closed while this says why."""
    return snapshot.unknown.get("commits", "")


def _is_update_merge(commit: CommitRef, in_pull_request: set[str]) -> bool:
    """A merge GitHub committed on the web whose first parent is the branch's previous head and whose second is
    from outside the pull request: the base branch merged in by the "Update branch" button."""
    if not commit.via_web or len(commit.parents) != 2:
        return False
    previous_head, merged = commit.parents
    return previous_head in in_pull_request and merged not in in_pull_request


def _is_stale(review: ReviewRef, snapshot: Snapshot, options: Options) -> bool:
    if not options.invalidate_on_push or (review.commit_sha and review.commit_sha == snapshot.head_sha):
        return False
    if not review.commit_sha:
        # As GitLab's "remove all approvals when commits are added": given before the head's push, it is stale,
        # rebase or not (without the sha it was given on, nothing proves the push was a mere rebase).
        return snapshot.last_pushed_at is not None and review.submitted_at < snapshot.last_pushed_at
    if not options.keep_on_rebase:
        return True
    before, now = snapshot.diff_ids.get(review.commit_sha), snapshot.diff_ids.get(snapshot.head_sha)
    # A pure rebase keeps the diff's fingerprint; without both fingerprints nothing proves it was one.
    return before is None or before != now


def _rebase_unknown(review: ReviewRef, snapshot: Snapshot, options: Options) -> str:
    """Why it is not known yet whether the pushes since this approval kept its diff ("" when that is known): a
    fingerprint it would be compared with is owed (`Snapshot.diff_ids_pending`). A fingerprint that is neither
    known nor owed can never prove a rebase: the approval is stale (`_is_stale`)."""
    if not options.invalidate_on_push or not options.keep_on_rebase:
        return ""
    if not review.commit_sha or review.commit_sha == snapshot.head_sha:
        return ""
    shas = (review.commit_sha, snapshot.head_sha)
    if any(sha not in snapshot.diff_ids and sha not in snapshot.diff_ids_pending for sha in shas):
        return ""
    return next((str(snapshot.diff_ids_pending[sha]) for sha in shas if sha in snapshot.diff_ids_pending), "")


def _may_be_stale(review: ReviewRef, snapshot: Snapshot, options: Options) -> bool:
    return options.invalidate_on_push and not review.commit_sha and snapshot.last_pushed_at is None


def _missing(
    require: Requirements,
    facts: _Facts,
    options: Options,
    tally: _Tally,
    needed: int,
    checks: tuple[CheckTrace, ...],
) -> tuple[str, ...]:
    """Short phrases for what the rule still lacks, in the order a summary should say them."""
    missing: list[str] = []
    count = sum(approval.weight for approval in tally.counted)
    if count < needed:
        missing.extend(_rebases_unknown(facts.snapshot, options, tally))
        missing.append(_approvals_wanted(require, tally, needed - count, more=count > 0))
    if require.code_owners:
        if facts.codeowners_errors:
            # A line that cannot be read might have owned a changed file: nobody can say who must approve.
            missing.append(f"fix CODEOWNERS ({facts.codeowners_errors[0]})")
        missing.extend(_missing_owners(facts, tally.qualified_reviewers))
    if options.require_independent_review and not _has_independent_review(facts, options, tally):
        pairing_only = any(approval.via == "pairing" for approval in tally.counted)
        if unknown_contributors(facts.snapshot):
            why = " (not known yet who wrote the change)"
        else:
            why = " (pairing alone is not enough)" if pairing_only else ""
        missing.append("needs an independent review" + why)
    for check in checks:
        if check.state in ("failure", "error"):
            missing.append(f"{check.context} {'failed' if check.state == 'failure' else 'errored'}")
        elif check.state != "success":
            missing.append(f"waiting for {check.context}")
    return tuple(missing)


def _rebases_unknown(snapshot: Snapshot, options: Options, tally: _Tally) -> list[str]:
    """Why approvals set aside as REBASE_UNKNOWN may yet count: what the verdict waits for, in words."""
    waiting = {item.review_id for item in tally.discarded if item.reason == REBASE_UNKNOWN}
    reviews = [review for review in snapshot.reviews if review.id in waiting]
    return _unique([why for review in reviews if (why := _rebase_unknown(review, snapshot, options))])


def _approvals_wanted(require: Requirements, tally: _Tally, short: int, *, more: bool) -> str:
    """What a status says is missing: "needs 1 approval from @payments (2 others approved)"."""
    text = f"needs {short} {'more ' if more else ''}{'approval' if short == 1 else 'approvals'}"
    whom = [f"@{team}" for team in require.teams] + list(require.people)
    if not whom:
        return text
    others = sum(1 for item in tally.discarded if item.reason in (NOT_IN_TEAM, NOT_PERSON))
    return f"{text} from {' or '.join(whom)}" + (
        f" ({others} {'other' if others == 1 else 'others'} approved)" if others else ""
    )


def _missing_owners(facts: _Facts, reviewers: tuple[PersonRef, ...]) -> list[str]:
    missing = []
    for owned in facts.owned_paths:
        requirement = owned.requirement
        approving_owners = sum(1 for reviewer in reviewers if is_owner(reviewer, requirement.owners))
        if approving_owners < requirement.approvals_needed:
            owners = (
                f"{requirement.approvals_needed} code owners" if requirement.approvals_needed > 1 else "a code owner"
            )
            # Teams as GitHub and GitLab spell them; people by login or e-mail.
            names = ", ".join(sorted(f"@{owner}" if "/" in owner else owner for owner in requirement.owners))
            missing.append(f"needs {owners} of {_display_pattern(requirement.pattern)} ({names})")
    return missing


def _display_pattern(pattern: str) -> str:
    return pattern.lstrip("/") or "/"


def _has_independent_review(facts: _Facts, options: Options, tally: _Tally) -> bool:
    """An approval from a review by someone who neither wrote nor paired on the change (none is known to be while
    who wrote it is not known)."""
    if unknown_contributors(facts.snapshot):
        return False
    involved = contributors(facts.snapshot, options) | {partner.person.id for partner in facts.partners}
    if facts.snapshot.author is not None:
        involved |= {facts.snapshot.author.id}
    return any(approval.via == "review" and approval.person_id not in involved for approval in tally.counted)


def _notes(require: Requirements, facts: _Facts, checks: tuple[CheckTrace, ...], missing: tuple[str, ...]) -> list[str]:
    """What a reader needs besides the counts and the shortfalls: why the bar is higher, what already passed."""
    notes = [f"{check.context} passed" for check in checks if check.state == "success"]
    if facts.risk.extra_approvals and require.approvals:
        services = _services(facts.risk.incidents)
        notes.append(f"{_more_approvals(facts.risk.extra_approvals)} than usual after an incident in {services}")
    if require.code_owners and facts.snapshot.codeowners_source:
        notes.append(f"code owners from {facts.snapshot.codeowners_source}")
    if require.code_owners and not facts.owned_paths:
        notes.append("no changed file has a required code owner")
    elif require.code_owners and not any("code owner" in phrase for phrase in missing):
        notes.append("code owners approved every owned path")
    return notes


def _requirement_reason(state: str, tally: _Tally, needed: int, missing: tuple[str, ...], notes: list[str]) -> str:
    count = sum(approval.weight for approval in tally.counted)
    people = ", ".join(_approval_words(approval) for approval in tally.counted)
    parts = []
    if needed:
        parts.append(f"{count} of {_approvals(needed)}" + (f" ({people})" if people else ""))
    elif people:
        parts.append(f"approved by {people}")
    parts.extend(notes)
    # The count is said first; what is still missing follows (but not the shortfall, which says the same again).
    parts.extend(phrase for phrase in missing if not _is_shortfall(phrase))
    not_counted = ", ".join(f"{item.login} ({item.reason})" for item in tally.discarded)
    if not_counted:
        parts.append(f"not counted: {not_counted}")
    return f"{state.capitalize()}: {'; '.join(parts) or 'nothing is required'}."


def _is_shortfall(phrase: str) -> bool:
    return phrase.startswith("needs ") and " approval" in phrase and "code owner" not in phrase


def _approval_words(approval: Approval) -> str:
    if approval.via == "review":
        return approval.login
    worth = f", worth {approval.weight}" if approval.weight != 1 else ""
    return f"{approval.login} by pairing{worth}"


# Checks, blocking reviews, outcome and summary.


def _check(snapshot: Snapshot, context: str, required_by: tuple[str, ...]) -> CheckTrace:
    return CheckTrace(context, snapshot.statuses.get(context, "missing"), required_by)


def _check_traces(
    snapshot: Snapshot, document_checks: tuple[str, ...], rules: tuple[RuleTrace, ...]
) -> tuple[CheckTrace, ...]:
    required_by: dict[str, list[str]] = {context: ["policy"] for context in document_checks}
    for trace in _every_trace(rules):
        if trace.state != SKIPPED:
            for check in trace.checks:
                required_by.setdefault(check.context, []).append(trace.name)
    return tuple(_check(snapshot, context, tuple(names)) for context, names in sorted(required_by.items()))


def _every_trace(rules: Iterable[RuleTrace]) -> Iterable[RuleTrace]:
    for trace in rules:
        yield trace
        yield from _every_trace(trace.children)


def _blocking_reviews(standings: tuple[_Standing, ...]) -> tuple[BlockingReview, ...]:
    found = [
        BlockingReview(s.reviewer.id, s.reviewer.label, s.changes_requested.id, s.changes_requested.submitted_at)
        for s in standings
        if s.changes_requested is not None
    ]
    return tuple(sorted(found, key=lambda review: (review.submitted_at, review.review_id)))


def _outcome(
    snapshot: Snapshot, rules: tuple[RuleTrace, ...], blocking: tuple[BlockingReview, ...], checks: tuple[str, ...]
) -> str:
    check_states = [snapshot.statuses.get(context, "missing") for context in checks]
    if blocking or any(rule.state == BLOCKED for rule in rules) or {"failure", "error"} & set(check_states):
        return BLOCKED
    if snapshot.draft:
        return PENDING
    every_rule_met = all(rule.state in (SATISFIED, SKIPPED) for rule in rules)
    return APPROVED if every_rule_met and all(state == "success" for state in check_states) else PENDING


def _summary(
    outcome: str,
    draft: bool,
    rules: tuple[RuleTrace, ...],
    blocking: tuple[BlockingReview, ...],
    checks: tuple[CheckTrace, ...],
) -> str:
    document_checks = [check for check in checks if "policy" in check.required_by]
    if outcome == BLOCKED:
        text = _blocked_summary(rules, blocking, document_checks)
    elif outcome == APPROVED:
        text = _approved_summary(rules)
    else:
        text = _pending_summary(draft, rules, document_checks)
    return _limited(text)


def _limited(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _blocked_summary(
    rules: tuple[RuleTrace, ...], blocking: tuple[BlockingReview, ...], checks: list[CheckTrace]
) -> str:
    parts = []
    if blocking:
        parts.append("changes requested by " + ", ".join(review.login for review in blocking))
    parts.extend(
        f"{check.context} {'failed' if check.state == 'failure' else 'errored'}"
        for check in checks
        if check.state in ("failure", "error")
    )
    for rule in rules:
        if rule.state == BLOCKED:
            parts.extend(phrase for phrase in rule.missing if phrase.endswith(("failed", "errored")))
    return _sentence(_unique(parts) or ["blocked"])


def _approved_summary(rules: tuple[RuleTrace, ...]) -> str:
    applicable = [rule for rule in rules if rule.state == SATISFIED]
    if not applicable:
        return "Approved: no review rule applies"
    if len(applicable) == 1 and applicable[0].needed:
        rule = applicable[0]
        count = sum(approval.weight for approval in rule.approvals_counted)
        return f"Approved: {min(count, rule.needed)} of {_approvals(rule.needed)}"
    return f"Approved: {counted(len(applicable), 'rule')} satisfied"


def _pending_summary(draft: bool, rules: tuple[RuleTrace, ...], checks: list[CheckTrace]) -> str:
    parts = ["draft"] if draft else []
    unmet = [rule for rule in rules if rule.state == PENDING]
    if unmet:
        parts.extend(unmet[0].missing)
    parts.extend(f"waiting for {check.context}" for check in checks if check.state != "success")
    if len(unmet) > 1:
        parts.append(f"{counted(len(unmet) - 1, 'more rule')} pending")
    return _sentence(_unique(parts) or ["pending"])


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    # Only our own words are capitalised: a check named "ci/build" keeps its spelling.
    return text[:1].upper() + text[1:] if text.startswith(_OWN_WORDS) else text


_OWN_WORDS = ("draft", "changes requested", "waiting", "needs", "blocked", "pending", "fix", "could not")


def _unique(parts: list[str]) -> list[str]:
    return list(dict.fromkeys(parts))


def _services(hits: Iterable[IncidentHit]) -> str:
    return ", ".join(sorted({hit.service or hit.reference or "an unnamed service" for hit in hits}))


def _more_approvals(count: int) -> str:
    return counted(count, "more approval")


def _approvals(count: int) -> str:
    return counted(count, "approval")


def _discarded(person: PersonRef, review_id: str, reason: str) -> Discarded:
    return Discarded(person.id, person.label, review_id, reason)


def _discard_order(item: Discarded) -> tuple[str, str, str]:
    return (item.person_id, item.review_id, item.reason)
