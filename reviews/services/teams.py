"""Teams, memberships and VCS connections: every change by a person or a token is an audit event; a team,
person or repository with records of exceptions is archived, never deleted."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from reviews.models import (
    AuditEvent,
    Connection,
    FollowUpReview,
    Membership,
    Override,
    OverrideWithdrawal,
    Person,
    PolicyEvaluation,
    PolicyVersion,
    PolicyViolation,
    RecordImmutable,
    Repository,
    Review,
    Team,
)
from reviews.selectors.affected import merged_pull_requests_involving, open_pull_requests_involving
from reviews.services.audit import SYSTEM, Actor, audit_event_record, field_changes, fields_of
from reviews.services.enqueue import pull_request_evaluations_enqueue
from reviews.services.figures import pull_request_figures_owed_mark

AGREEMENT_FIELDS = ["name", "review_within_hours", "max_pr_size", "slack_webhook_url", "archived"]
CONNECTION_FIELDS = [
    "name",
    "base_url",
    "web_url",
    "app_id",
    "app_installation_id",
    "app_account",
    "report_as_check_run",
]


def agreement_of(team: Team | None) -> dict[str, Any]:
    """A team's working agreement as the audit trail records it: the chat webhook URL is a secret (whoever has it
    posts to the channel), so only whether it is set, and its last characters."""
    agreement = fields_of(team, AGREEMENT_FIELDS)
    if "slack_webhook_url" in agreement:
        agreement["slack_webhook_url"] = secret_marker(agreement["slack_webhook_url"])
    return agreement


def team_upsert(
    *, slug: str, name: str, review_within_hours: int = 24, max_pr_size: int = 400, actor: Actor = SYSTEM
) -> Team:
    with transaction.atomic():
        before = Team.objects.select_for_update().filter(slug=slug).first()
        old = agreement_of(before)
        team, created = Team.objects.update_or_create(
            slug=slug, defaults={"name": name, "review_within_hours": review_within_hours, "max_pr_size": max_pr_size}
        )
        changes = field_changes(old, agreement_of(team))
        if changes:
            action = "team.create" if created else "agreement.change"
            audit_event_record(actor=actor, action=action, target=team, team=team, changes=changes)
    return team


def team_archive(*, team: Team, actor: Actor, archived: bool = True) -> Team:
    """Archive (or bring back) a team: its history stays on the record; it leaves the pages' lists."""
    with transaction.atomic():
        if team.archived != archived:
            Team.objects.filter(pk=team.pk).update(archived=archived)
            audit_event_record(
                actor=actor,
                action="team.archive" if archived else "team.unarchive",
                target=team,
                team=team,
                changes=field_changes({"archived": team.archived}, {"archived": archived}),
            )
            team.archived = archived
    return team


def membership_set(
    *, team: Team, person: Person, role: str = Membership.Role.MEMBER, actor: Actor = SYSTEM
) -> Membership:
    with transaction.atomic():
        before = Membership.objects.select_for_update().filter(team=team, person=person).first()
        old_role = before.role if before else None
        membership, _ = Membership.objects.update_or_create(team=team, person=person, defaults={"role": role})
        changes = field_changes({"person": person, "role": old_role}, {"person": person, "role": role})
        if changes:
            audit_event_record(actor=actor, action="membership.change", target=membership, team=team, changes=changes)
        # Rules name teams (`teams:`, `author_in_teams:`): the person's open pull requests may be judged otherwise now.
        pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_involving(person_id=person.pk))
        pull_request_figures_owed_mark(pull_requests=merged_pull_requests_involving(person_id=person.pk))
    return membership


def membership_remove(*, team: Team, person: Person, actor: Actor = SYSTEM) -> None:
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(team=team, person=person).first()
        if membership is None:
            return
        audit_event_record(
            actor=actor,
            action="membership.remove",
            target=membership,
            team=team,
            changes=field_changes({"role": membership.role}, {"role": None}),
        )
        membership.delete()
        pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_involving(person_id=person.pk))
        pull_request_figures_owed_mark(pull_requests=merged_pull_requests_involving(person_id=person.pk))


def connection_upsert(
    *, provider: str, name: str, base_url: str, web_url: str = "", api_token: str = "", actor: Actor = SYSTEM
) -> Connection:
    with transaction.atomic():
        before = Connection.objects.select_for_update().filter(provider=provider, base_url=base_url).first()
        old = {**fields_of(before, CONNECTION_FIELDS), "api_token": secret_marker(before.api_token if before else "")}
        connection, _ = Connection.objects.update_or_create(
            provider=provider, base_url=base_url, defaults={"name": name, "web_url": web_url, "api_token": api_token}
        )
        new = {**fields_of(connection, CONNECTION_FIELDS), "api_token": secret_marker(api_token)}
        changes = field_changes(old if before else {}, new)
        if changes:
            audit_event_record(actor=actor, action="connection.change", target=connection, team=None, changes=changes)
    return connection


def secret_marker(secret: str) -> str:
    """Secrets never enter the audit trail: only whether one is set, and its last characters."""
    return f"set (…{secret[-4:]})" if secret else ""


def exception_records_of(*, team: Team | None = None, person: Person | None = None, repo: Repository | None = None):  # type: ignore[no-untyped-def]
    """What keeps a team, person or repository on the record: names of the kinds of records that refer to it."""
    found = []
    checks: dict[str, QuerySet[Any]]
    if team is not None:
        checks = {
            "audit events": AuditEvent.objects.filter(team=team),
            "policy versions": PolicyVersion.objects.filter(Q(policy__team=team) | Q(policy__repository__team=team)),
            "overrides": Override.objects.filter(pull_request__repository__team=team),
            "policy violations": PolicyViolation.objects.filter(pull_request__repository__team=team),
        }
    elif person is not None:
        checks = {
            "overrides": Override.objects.filter(overridden_by=person),
            "override withdrawals": OverrideWithdrawal.objects.filter(withdrawn_by=person),
            "follow-up reviews": FollowUpReview.objects.filter(reviewer=person),
            "audit events": AuditEvent.objects.filter(actor_person=person),
            "reviews": Review.objects.filter(reviewer=person),
        }
    else:
        checks = {
            "policy versions": PolicyVersion.objects.filter(policy__repository=repo),
            "overrides": Override.objects.filter(pull_request__repository=repo),
            "policy evaluations": PolicyEvaluation.objects.filter(pull_request__repository=repo),
            "policy violations": PolicyViolation.objects.filter(pull_request__repository=repo),
        }
    for label, queryset in checks.items():
        if queryset.exists():
            found.append(label)
    return found


def _refuse_if_on_record(what: str, records: list[str], advice: str) -> None:
    if records:
        raise RecordImmutable(f"{what} has {', '.join(records)} on the record and cannot be deleted: {advice}")


def team_delete(*, team: Team, actor: Actor) -> None:
    """Delete a team that never had anything on the record; otherwise refuse (archive it instead)."""
    _refuse_if_on_record(f"Team {team}", exception_records_of(team=team), "archive it instead.")
    with transaction.atomic():
        audit_event_record(actor=actor, action="team.delete", target=team, team=None)
        team.delete()


def person_delete(*, person: Person, actor: Actor) -> None:
    _refuse_if_on_record(f"{person}", exception_records_of(person=person), "remove them from their teams instead.")
    with transaction.atomic():
        audit_event_record(actor=actor, action="person.delete", target=person, team=None)
        person.delete()


def repository_delete(*, repository: Repository, actor: Actor) -> None:
    _refuse_if_on_record(f"Repository {repository}", exception_records_of(repo=repository), "mark it inactive instead.")
    with transaction.atomic():
        audit_event_record(actor=actor, action="repository.delete", target=repository, team=repository.team)
        repository.delete()
