"""Review policies: documents saved only when valid, evaluations stored and reported, audited overrides,
violations recorded at merge."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from reviews.access import person_access
from reviews.instruments import EVALUATION_DURATION, EVALUATIONS
from reviews.models import (
    AuditEvent,
    FollowUpReview,
    Membership,
    Override,
    OverrideWithdrawal,
    Person,
    Policy,
    PolicyEvaluation,
    PolicyVersion,
    PolicyViolation,
    PullRequest,
    Repository,
    Review,
    Team,
)
from reviews.policy import Policy as ParsedPolicy
from reviews.policy import PolicyError, Snapshot, contributors, evaluate, parse_policy, unknown_contributors
from reviews.prepared import PreparedInsert, PreparedRead, PreparedUpdate
from reviews.selectors.affected import merged_pull_requests_under_policy, open_pull_requests_under_policy
from reviews.selectors.overrides import override_in_force
from reviews.selectors.policy import effective_policy, pull_request_snapshot
from reviews.services.audit import SYSTEM, Actor, actor_for, audit_event_record, field_changes, fields_of
from reviews.services.enqueue import pull_request_evaluations_enqueue
from reviews.services.figures import pull_request_figures_owed_mark

logger = logging.getLogger(__name__)

# How a verdict shows as a commit status.
STATUS_STATES: dict[str, str] = {
    PolicyEvaluation.Outcome.APPROVED: "success",
    PolicyEvaluation.Outcome.OVERRIDDEN: "success",
    PolicyEvaluation.Outcome.PENDING: "pending",
    PolicyEvaluation.Outcome.BLOCKED: "failure",
    PolicyEvaluation.Outcome.ERROR: "error",
}
SATISFIED = {PolicyEvaluation.Outcome.APPROVED, PolicyEvaluation.Outcome.OVERRIDDEN}


def policy_document_validate(document: str) -> ParsedPolicy:
    """The parsed policy, or a ValidationError whose messages name each problem's line."""
    try:
        return parse_policy(document)
    except PolicyError as error:
        raise ValidationError([str(problem) for problem in error.problems] or [str(error)]) from error


def policy_save(
    *,
    document: str,
    team: Team | None = None,
    repository: Repository | None = None,
    actor: Actor = SYSTEM,
    reason: str = "",
    restored_from: PolicyVersion | None = None,
    user: Any = None,
) -> Policy:
    """Validate and store a team's or a repository's policy as a new version, with its author and reason; an
    invalid document is never stored. A token's edit is authored by the token and the lead who created it.

    `user` alone (the admin's form, until it passes an actor) is taken as that user writing from the admin."""
    if actor is SYSTEM and user is not None:
        actor = actor_for(user, source=AuditEvent.Source.ADMIN)
    if (team is None) == (repository is None):
        raise ValidationError("A policy belongs to a team or to a repository, not both or neither.")
    policy_document_validate(document)
    with transaction.atomic():
        before = Policy.objects.select_for_update().filter(team=team, repository=repository).first()
        previous = before.document if before else None
        policy, _ = Policy.objects.update_or_create(
            team=team,
            repository=repository,
            defaults={"document": document, "updated_at": timezone.now(), "updated_by": actor.author_user},
        )
        number = (policy.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        version = PolicyVersion.objects.create(
            policy=policy,
            number=number,
            document=document,
            reason=reason.strip(),
            author=actor.author_user,
            token=actor.token,
            restored_from=restored_from,
            created_at=policy.updated_at,
        )
        audit_event_record(
            actor=actor,
            action="policy.restore" if restored_from else "policy.edit",
            target=version,
            team=team or (repository.team if repository else None),
            changes=field_changes({"document": previous}, {"document": document}),
            reason=reason.strip(),
        )
    pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_under_policy(policy=policy))
    pull_request_figures_owed_mark(pull_requests=merged_pull_requests_under_policy(policy=policy))
    return policy


def policy_version_restore(*, version: PolicyVersion, actor: Actor, reason: str = "") -> Policy:
    """Bring back an earlier version, as a new version that says which one it restores."""
    policy = version.policy
    why = reason.strip() or f"restores version {version.number}"
    return policy_save(
        document=version.document,
        team=policy.team,
        repository=policy.repository,
        actor=actor,
        reason=why,
        restored_from=version,
    )


@dataclass(frozen=True)
class Evaluated:
    evaluation: PolicyEvaluation
    changed: bool  # the verdict differs from the last one stored for this head sha


def pull_request_evaluate(
    *,
    pull_request_id: int,
    now: dt.datetime | None = None,
    only_if_owed: bool = False,
    policy: tuple[Policy | None, ParsedPolicy] | None = None,
    repository: Repository | None = None,
) -> Evaluated | None:
    """Evaluate a pull request's current head under its policy, store the result, record a violation at merge.

    The pull request row is locked while it is evaluated, so evaluations of one pull request never race:
    the one that runs last reads the newest head sha, and that is the one stored last. The evaluation settles the
    pull request's evaluation debt under that lock: a change committed before it is read here, and one that commits
    after it marks the debt again. With `only_if_owed`, a pull request whose debt another evaluation settled since
    is left alone (None). `policy`: the repository's effective policy (row and parsed), when the caller read it;
    `repository`: the pull request's repository with its connection and team, when the caller read them (the lock
    then reads the pull request's row alone).
    """
    started = time.perf_counter()
    with transaction.atomic():
        pull_request = _pull_request_locked(pull_request_id, repository)
        if pull_request is None:
            return None
        if only_if_owed and pull_request.evaluation_owed_since is None:
            return None
        if pull_request.evaluation_owed_since is not None:
            _DEBT_SETTLED.run(pull_request.pk, evaluation_owed_since=None)
        if not pull_request.head_sha:
            return None
        policy_row, parsed = policy or effective_policy(repository=pull_request.repository)
        override, ended = override_in_force(pull_request=pull_request)
        if override is not None:
            outcome, description, trace = _overridden(override)
        else:
            result = evaluate(pull_request_snapshot(pull_request=pull_request, now=now), parsed)
            outcome, description, trace = result.outcome, result.summary, result.to_dict()
            if ended is not None:
                trace["override_ended"] = _override_ended(ended)
        at = now or timezone.now()
        merged_unsatisfied = _merged_unsatisfied(pull_request, outcome)
        latest = _LATEST_EVALUATION.first(pull_request=pull_request.pk)
        if latest is not None:
            latest.pull_request = pull_request
        same = latest is not None and (latest.head_sha, latest.policy_id, latest.outcome, latest.trace) == (
            pull_request.head_sha,
            policy_row.pk if policy_row else None,
            outcome,
            trace,
        )
        if latest is not None and same:
            # Nothing changed: the verdict stands, confirmed now, without a new row per event.
            _CONFIRMED.run(latest.pk, last_evaluated_at=at)
            evaluation = latest
        else:
            evaluation = PolicyEvaluation(
                pull_request=pull_request,
                policy=policy_row,
                head_sha=pull_request.head_sha,
                outcome=outcome,
                description=description[:140],
                trace=trace,
                evaluated_at=at,
                last_evaluated_at=at,
            )
            _NEW_EVALUATION.save_new(evaluation)
        violated = False
        if merged_unsatisfied:
            _, violated = PolicyViolation.objects.get_or_create(
                pull_request=pull_request, defaults={"evaluation": evaluation, "outcome": outcome}
            )
        if pull_request.state == PullRequest.State.MERGED and (violated or not same):
            # A merged pull request's status at merge is in its stored figures: a new verdict or violation owes them.
            pull_request_figures_owed_mark(pull_requests=[pull_request.pk])
    EVALUATION_DURATION.observe(time.perf_counter() - started)
    EVALUATIONS.labels(evaluation.outcome, "true" if not same else "false").inc()
    return Evaluated(evaluation, changed=not same)


_DEBT_SETTLED = PreparedUpdate(PullRequest, "evaluation_owed_since")
_CONFIRMED = PreparedUpdate(PolicyEvaluation, "last_evaluated_at")
_NEW_EVALUATION = PreparedInsert(PolicyEvaluation)
_LOCKED = PreparedRead(lambda pk: PullRequest.objects.select_for_update(of=("self",)).filter(pk=pk), pk=int)
_LOCKED_WITH_REPOSITORY = PreparedRead(
    lambda pk: (
        PullRequest.objects.select_for_update(of=("self",))
        .select_related("repository__connection", "repository__team")
        .filter(pk=pk)
    ),
    pk=int,
)
_LATEST_EVALUATION = PreparedRead(
    lambda pull_request: PolicyEvaluation.objects.filter(pull_request_id=pull_request).order_by("-evaluated_at", "-pk")[
        :1
    ],
    pull_request=int,
)
_NEWEST_EVALUATION_ID = PreparedRead(
    lambda pull_request: (
        PolicyEvaluation.objects.filter(pull_request_id=pull_request)
        .order_by("-evaluated_at", "-pk")
        .values_list("pk", flat=True)[:1]
    ),
    pull_request=int,
)


def _pull_request_locked(pull_request_id: int, repository: Repository | None) -> PullRequest | None:
    """The pull request, locked for its evaluation, with its repository, connection and team."""
    if repository is None:
        return _LOCKED_WITH_REPOSITORY.first(pk=pull_request_id)
    pull_request = _LOCKED.first(pk=pull_request_id)
    if pull_request is not None and pull_request.repository_id == repository.pk:
        pull_request.repository = repository
        return pull_request
    return _LOCKED_WITH_REPOSITORY.first(pk=pull_request_id)


def _merged_unsatisfied(pull_request: PullRequest, outcome: str) -> bool:
    """A violation needs Tandem to have been watching: an evaluation before the merge (the first time a verdict
    was reached counts). History synced after the fact is not judged by today's policy."""
    if pull_request.state != PullRequest.State.MERGED or outcome in SATISFIED or pull_request.merged_at is None:
        return False
    return pull_request.evaluations.filter(evaluated_at__lte=pull_request.merged_at).exists()


def _override_ended(override: Override) -> dict[str, str]:
    return {
        "by": override.overridden_by.display_name,
        "reason": override.reason,
        "head_sha": override.head_sha,
        "why": f"The override given on {override.head_sha[:7]} no longer applies: a later push changed the patch.",
    }


def _overridden(override: Override) -> tuple[str, str, dict[str, Any]]:
    who = override.overridden_by.display_name
    description = f"Overridden by {who}: {override.reason}"
    trace = {
        "outcome": PolicyEvaluation.Outcome.OVERRIDDEN,
        "summary": description[:140],
        "override": {
            "by": who,
            "reason": override.reason,
            "incident_reference": override.incident_reference,
            "at": override.created_at.isoformat(),
            "followup_due_at": override.followup_due_at.isoformat(),
        },
    }
    return PolicyEvaluation.Outcome.OVERRIDDEN, description, trace


def evaluation_should_report(evaluation: PolicyEvaluation) -> bool:
    """Only the newest evaluation of an open pull request's current head is worth a status."""
    pull_request = evaluation.pull_request
    if pull_request.state != PullRequest.State.OPEN or evaluation.head_sha != pull_request.head_sha:
        return False
    return _NEWEST_EVALUATION_ID.first(pull_request=pull_request.pk) == evaluation.pk


@dataclass(frozen=True)
class Contributors:
    """Who wrote a change: its author and its contributors as the policy engine counts them, and why that list may
    be short of someone ("" when it is whole: `unknown_contributors`)."""

    people: frozenset[int]
    unknown: str = ""

    def may_include(self, person: Person) -> bool:
        """Fail closed: while the list may be short, anyone may have written the change."""
        return bool(self.unknown) or person.pk in self.people


def pull_request_contributors(*, pull_request: PullRequest) -> Contributors:
    """The people who wrote a change: its author and its contributors as the policy engine counts them (authors,
    co-authors, committers and pushers of its commits, never GitHub's "Update branch" merges), and whether some
    may be missing (its commits not known yet)."""
    _, policy = effective_policy(repository=pull_request.repository)
    return snapshot_contributors(pull_request_snapshot(pull_request=pull_request), policy)


def snapshot_contributors(snapshot: Snapshot, policy: ParsedPolicy) -> Contributors:
    """`pull_request_contributors` of a snapshot already built: the author and `contributors()`, as person ids."""
    ids = {int(snapshot.author.id)} if snapshot.author is not None and snapshot.author.id.isdigit() else set()
    # Unresolved identities ("identity:N") are nobody yet: no person can be one of them.
    people = ids | {int(ref) for ref in contributors(snapshot, policy.options) if ref.isdigit()}
    return Contributors(frozenset(people), unknown_contributors(snapshot))


def override_refusal(*, pull_request: PullRequest, person: Person) -> str:
    """Why the policy does not let this person break glass ("" when it does): `override.allowed` names
    `team-leads` (the repository's team's leads), team slugs or names; and never on a change they wrote, or might
    have written while its commits are not known, unless the policy says `allow_self: true`."""
    _, policy = effective_policy(repository=pull_request.repository)
    denied = f"{person} may not override the review policy of {pull_request}"
    if not _named_to_override(pull_request, person, policy):
        return f"{denied}: not named in `override.allowed`."
    if policy.override.allow_self:
        return ""
    written_by = pull_request_contributors(pull_request=pull_request)
    if person.pk in written_by.people:
        return f"{denied}: they wrote the change (`override.allow_self` is off)."
    if written_by.unknown:
        return (
            f"{denied} yet: who wrote the change is not known ({written_by.unknown}), and nobody overrides a change "
            "they may have written (`override.allow_self` is off)."
        )
    return ""


def override_allowed(*, pull_request: PullRequest, person: Person) -> bool:
    return not override_refusal(pull_request=pull_request, person=person)


def _named_to_override(pull_request: PullRequest, person: Person, policy: ParsedPolicy) -> bool:
    allowed = {entry.lower() for entry in policy.override.allowed}
    team = pull_request.repository.team
    if "team-leads" in allowed and team is not None and person_access(person).leads(team.pk):
        return True
    if Membership.objects.filter(person=person, team__slug__in=allowed).exists():
        return True
    names = {value.lower() for value in person.identities.values_list("value", flat=True)}
    return bool(names & allowed)


def pull_request_override(
    *, pull_request: PullRequest, person: Person, reason: str, incident_reference: str = "", actor: Actor = SYSTEM
) -> Override:
    """Break glass, on the record: who, when, why; a follow-up review falls due within the policy's deadline."""
    if not reason.strip():
        raise ValidationError({"reason": "A reason is required to override a review policy."})
    if actor.token is not None:
        raise PermissionDenied("API tokens never override a review policy: a person does, on the record.")
    refusal = override_refusal(pull_request=pull_request, person=person)
    if refusal:
        raise PermissionDenied(refusal)
    _, policy = effective_policy(repository=pull_request.repository)
    now = timezone.now()
    with transaction.atomic():
        override = Override.objects.create(
            pull_request=pull_request,
            head_sha=pull_request.head_sha,
            overridden_by=person,
            reason=reason.strip(),
            incident_reference=incident_reference.strip(),
            created_at=now,
            followup_due_at=now + dt.timedelta(hours=policy.override.followup_review_hours),
        )
        audit_event_record(
            actor=actor,
            action="override.create",
            target=override,
            team=pull_request.repository.team,
            changes=field_changes({}, fields_of(override, ["head_sha", "overridden_by", "followup_due_at"])),
            reason=override.reason,
        )
        pull_request_evaluations_enqueue(pull_request_ids=[pull_request.pk])
    return override


def override_withdraw(*, override: Override, person: Person, reason: str, actor: Actor = SYSTEM) -> OverrideWithdrawal:
    """Correct an override with a new record: it no longer stands and the verdict is evaluated again. Its author
    or anyone who may override the pull request may withdraw it."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the override is withdrawn."})
    pull_request = override.pull_request
    # Withdrawing only ends an exception: whoever may break glass here may, even before the commits are known.
    if person.pk != override.overridden_by_id and not _may_withdraw(pull_request, person):
        raise PermissionDenied(f"{person} may not withdraw this override.")
    with transaction.atomic():
        if OverrideWithdrawal.objects.filter(override=override).exists():
            raise ValidationError({"override": "This override was already withdrawn."})
        withdrawal = OverrideWithdrawal.objects.create(override=override, withdrawn_by=person, reason=reason.strip())
        audit_event_record(
            actor=actor,
            action="override.withdraw",
            target=override,
            team=pull_request.repository.team,
            changes=field_changes({"withdrawn": False}, {"withdrawn": True}),
            reason=withdrawal.reason,
        )
        pull_request_evaluations_enqueue(pull_request_ids=[pull_request.pk])
    return withdrawal


def _may_withdraw(pull_request: PullRequest, person: Person) -> bool:
    _, policy = effective_policy(repository=pull_request.repository)
    if not _named_to_override(pull_request, person, policy):
        return False
    written_by = pull_request_contributors(pull_request=pull_request)
    return policy.override.allow_self or person.pk not in written_by.people


def override_followup_complete(
    *, override: Override, person: Person, note: str = "", review: Review | None = None, actor: Actor = SYSTEM
) -> FollowUpReview:
    """Record the follow-up review an override owes. Its reviewer neither wrote the change nor overrode it."""
    if not note.strip():
        raise ValidationError({"note": "A follow-up review says what was reviewed: write a note."})
    pull_request = override.pull_request
    if person.pk == override.overridden_by_id:
        raise PermissionDenied("A follow-up review is done by someone who neither wrote the change nor overrode it.")
    written_by = pull_request_contributors(pull_request=pull_request)
    if person.pk in written_by.people:
        raise PermissionDenied("A follow-up review is done by someone who neither wrote the change nor overrode it.")
    if written_by.unknown:
        raise PermissionDenied(
            "A follow-up review is done by someone who neither wrote the change nor overrode it, and who wrote it "
            f"is not known yet ({written_by.unknown}): record the follow-up once its commits are known."
        )
    if review is not None and (review.pull_request_id != pull_request.pk or review.reviewer_id != person.pk):
        raise ValidationError({"review": "The review must be this reviewer's review of this pull request."})
    with transaction.atomic():
        if FollowUpReview.objects.filter(override=override).exists():
            raise ValidationError({"override": "Its follow-up review is already on the record."})
        if OverrideWithdrawal.objects.filter(override=override).exists():
            raise ValidationError({"override": "A withdrawn override owes no follow-up review."})
        followup = FollowUpReview.objects.create(override=override, reviewer=person, note=note.strip(), review=review)
        Override.objects.filter(pk=override.pk).update(followup_done_at=followup.completed_at, followup_by=person)
        audit_event_record(
            actor=actor,
            action="followup.complete",
            target=override,
            team=pull_request.repository.team,
            changes=field_changes({}, {"followup_by": person, "followup_review": review and review.external_id}),
            reason=followup.note,
        )
    override.refresh_from_db()
    return followup


def overdue_followups(*, now: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    return Override.objects.filter(
        followup_done_at__isnull=True, withdrawal__isnull=True, followup_due_at__lt=now or timezone.now()
    )
