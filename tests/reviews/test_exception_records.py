"""Records of exceptions are append-only: overrides, follow-up reviews, withdrawals, violations, policy versions,
suspect verdicts and tokens are never edited in place or deleted, through any surface; a correction is a new
record. Teams, people and repositories with such records are archived, never deleted."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import ProtectedError
from django.utils import timezone

from reviews.models import (
    ApiToken,
    AuditEvent,
    Commit,
    FollowUpReview,
    Membership,
    Override,
    OverrideWithdrawal,
    Person,
    PolicyEvaluation,
    PolicyVersion,
    PolicyViolation,
    PullRequest,
    RecordImmutable,
)
from reviews.services.audit import Actor, actor_for
from reviews.services.policies import (
    override_followup_complete,
    override_withdraw,
    policy_save,
    policy_version_restore,
    pull_request_evaluate,
    pull_request_override,
)
from reviews.services.teams import person_delete, repository_delete, team_archive, team_delete
from reviews.services.tokens import api_token_create, api_token_revoke
from tests.factories import MembershipFactory, PersonFactory, PullRequestFactory, RepositoryFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    team = TeamFactory(slug="shop")
    repository = RepositoryFactory(team=team)
    people = {}
    for name, role in (("lead", "lead"), ("author", "member"), ("reviewer", "member"), ("pair", "member")):
        user = User.objects.create_user(name, password="pw")
        people[name] = PersonFactory(display_name=name, user=user)
        MembershipFactory(team=team, person=people[name], role=role)
    pull_request = PullRequestFactory(repository=repository, author=people["author"], head_sha="a" * 40)
    return {"team": team, "repository": repository, "pull_request": pull_request, **people}


def actor(person: Person) -> Actor:
    return actor_for(person.user, source=AuditEvent.Source.API)


def override_of(world) -> Override:
    return pull_request_override(
        pull_request=world["pull_request"], person=world["lead"], reason="hotfix", actor=actor(world["lead"])
    )


def test_an_override_is_never_edited_or_deleted(world):
    override = override_of(world)
    override.reason = "something nicer"
    with pytest.raises(RecordImmutable):
        override.save()
    with pytest.raises(RecordImmutable):
        Override.objects.filter(pk=override.pk).update(reason="rewritten")
    with pytest.raises(RecordImmutable):
        override.delete()
    with pytest.raises(RecordImmutable):
        Override.objects.all().delete()
    assert Override.objects.get().reason == "hotfix"


def test_a_followup_is_not_a_checkbox(world):
    override = override_of(world)
    override.followup_done_at, override.followup_by = timezone.now(), world["lead"]
    with pytest.raises(RecordImmutable):
        override.save()
    assert Override.objects.get().followup_done_at is None


def test_the_pull_request_of_an_override_cannot_be_deleted(world):
    override_of(world)
    with pytest.raises(ProtectedError):
        world["pull_request"].delete()


def test_nobody_overrides_a_change_they_wrote(world):
    with pytest.raises(Exception, match="may not override"):
        pull_request_override(pull_request=world["pull_request"], person=world["author"], reason="mine")
    # A lead who wrote the change still may not:
    Membership.objects.filter(person=world["author"]).update(role="lead")
    with pytest.raises(Exception, match="may not override"):
        pull_request_override(pull_request=world["pull_request"], person=world["author"], reason="mine")


def test_nobody_overrides_a_change_they_contributed_to(world):
    commit = Commit.objects.create(
        repository=world["repository"], sha="c" * 40, author=world["lead"], authored_at=timezone.now()
    )
    world["pull_request"].commits.add(commit)
    with pytest.raises(Exception, match="may not override"):
        override_of(world)


def commits_not_known_yet(world) -> None:
    """A push Tandem has not fetched the commits of: anyone may have written them."""
    PullRequest.objects.filter(pk=world["pull_request"].pk).update(head_sha="b" * 40)
    world["pull_request"].refresh_from_db()


def test_nobody_overrides_a_change_whose_commits_are_not_known_yet(world):
    commits_not_known_yet(world)
    with pytest.raises(PermissionDenied, match="who wrote the change is not known .waiting for the commits"):
        override_of(world)
    assert not Override.objects.exists()


def test_allow_self_lets_a_lead_override_before_the_commits_are_known(world):
    policy_save(
        team=world["team"],
        document="rules:\n  - name: one\n    require: {approvals: 1}\noverride: {allow_self: true}\n",
    )
    commits_not_known_yet(world)
    assert override_of(world).overridden_by == world["lead"]


def test_no_followup_before_the_commits_are_known(world):
    override = override_of(world)
    commits_not_known_yet(world)
    with pytest.raises(PermissionDenied, match="who wrote it is not known yet"):
        override_followup_complete(override=override, person=world["reviewer"], note="looked fine")
    assert not FollowUpReview.objects.exists()


def test_a_lead_may_withdraw_an_override_before_the_commits_are_known(world):
    override = pull_request_override(pull_request=world["pull_request"], person=world["lead"], reason="hotfix")
    other_lead = PersonFactory(display_name="other lead")
    MembershipFactory(team=world["team"], person=other_lead, role="lead")
    commits_not_known_yet(world)
    override_withdraw(override=override, person=other_lead, reason="not needed after all")
    assert OverrideWithdrawal.objects.filter(override=override).exists()


def test_allow_self_lets_an_author_lead_override(world):
    Membership.objects.filter(person=world["author"]).update(role="lead")
    policy_save(
        team=world["team"],
        document="rules:\n  - name: one\n    require: {approvals: 1}\noverride: {allow_self: true}\n",
    )
    override = pull_request_override(pull_request=world["pull_request"], person=world["author"], reason="alone")
    assert override.overridden_by == world["author"]


def test_a_token_never_overrides(world):
    token, _ = api_token_create(name="ci", teams=[world["team"]])
    with pytest.raises(Exception, match="tokens never override"):
        pull_request_override(
            pull_request=world["pull_request"],
            person=world["lead"],
            reason="x",
            actor=Actor(source="api", token=token),
        )


@pytest.mark.parametrize("who", ["author", "lead"])
def test_the_author_or_the_overrider_cannot_do_the_followup(world, who):
    override = override_of(world)
    with pytest.raises(Exception, match="neither wrote the change nor overrode it"):
        override_followup_complete(override=override, person=world[who], note="looked fine")
    assert not FollowUpReview.objects.exists()


def test_a_followup_is_a_recorded_review(world):
    override = override_of(world)
    followup = override_followup_complete(
        override=override, person=world["reviewer"], note="read the diff", actor=actor(world["reviewer"])
    )
    override.refresh_from_db()
    assert (override.followup_by, override.followup_done_at) == (world["reviewer"], followup.completed_at)
    assert followup.note == "read the diff"
    with pytest.raises(RecordImmutable):
        FollowUpReview.objects.filter(pk=followup.pk).update(note="edited")
    with pytest.raises(Exception, match="already on the record"):
        override_followup_complete(override=override, person=world["pair"], note="again")
    event = AuditEvent.objects.get(action="followup.complete")
    assert event.actor_person == world["reviewer"] and event.reason == "read the diff"


def test_withdrawing_an_override_is_a_new_record_and_the_verdict_is_evaluated_again(world):
    override = override_of(world)
    pull_request_evaluate(pull_request_id=world["pull_request"].pk)
    assert PolicyEvaluation.objects.order_by("-pk").first().outcome == "overridden"
    lead = world["lead"]
    withdrawal = override_withdraw(override=override, person=lead, reason="wrong PR", actor=actor(lead))
    assert str(withdrawal) == "override withdrawn by lead: wrong PR"
    assert Override.objects.filter(pk=override.pk).exists()
    pull_request_evaluate(pull_request_id=world["pull_request"].pk)
    assert PolicyEvaluation.objects.order_by("-pk").first().outcome == "pending"
    assert AuditEvent.objects.filter(action="override.withdraw", target_id=str(override.pk)).exists()


def test_a_violation_is_never_edited_or_deleted(world):
    pull_request = world["pull_request"]
    violation = PolicyViolation.objects.create(pull_request=pull_request, outcome="pending")
    with pytest.raises(RecordImmutable):
        PolicyViolation.objects.filter(pk=violation.pk).update(outcome="approved")
    with pytest.raises(RecordImmutable):
        violation.delete()
    with pytest.raises(ProtectedError):
        pull_request.delete()


def test_policy_versions_record_author_reason_and_diff_and_restore_as_a_new_version(world):
    lead = actor(world["lead"])
    first = "rules:\n  - name: one\n    require: {approvals: 1}\n"
    second = "rules:\n  - name: two\n    require: {approvals: 2}\n"
    policy_save(team=world["team"], document=first, actor=lead, reason="start")
    policy_save(team=world["team"], document=second, actor=lead, reason="payments audit")
    policy = policy_version_restore(version=PolicyVersion.objects.get(number=1), actor=lead)
    assert policy.document == first
    versions = list(PolicyVersion.objects.order_by("number").values_list("number", "reason", "restored_from__number"))
    assert versions == [(1, "start", None), (2, "payments audit", None), (3, "restores version 1", 1)]
    with pytest.raises(RecordImmutable):
        PolicyVersion.objects.filter(number=1).update(document="rewritten")
    with pytest.raises(ProtectedError):
        world["team"].delete()


def test_a_policy_rewritten_with_a_token_is_authored_by_the_token_and_its_creator(world):
    token, _ = api_token_create(name="ci", teams=[world["team"]], created_by=world["lead"].user)
    policy_save(team=world["team"], document="rules:\n  - name: one\n    require: {approvals: 1}\n",
                actor=Actor(source="api", token=token))  # fmt: skip
    version = PolicyVersion.objects.get()
    assert (version.token, version.author) == (token, world["lead"].user)
    event = AuditEvent.objects.get(action="policy.edit")
    assert (event.actor_token, event.actor_user) == (token, world["lead"].user)
    assert "created by lead" in event.actor


def test_a_token_is_revoked_once_and_never_renamed_or_deleted(world):
    token, _ = api_token_create(name="ci", teams=[world["team"]], actor=actor(world["lead"]))
    api_token_revoke(token=token, actor=actor(world["lead"]))
    revoked_at = ApiToken.objects.get().revoked_at
    assert revoked_at is not None
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=revoked_at + dt.timedelta(days=1))
    assert ApiToken.objects.get().revoked_at == revoked_at
    token.refresh_from_db()
    token.name = "innocent"
    with pytest.raises(RecordImmutable):
        token.save()
    with pytest.raises(RecordImmutable):
        ApiToken.objects.all().delete()
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == ["token.create", "token.revoke"]


def test_audit_events_are_never_changed(world):
    override_of(world)
    event = AuditEvent.objects.get()
    event.reason = "nothing happened"
    with pytest.raises(RecordImmutable):
        event.save()
    with pytest.raises(RecordImmutable):
        AuditEvent.objects.update(actor="someone else")
    with pytest.raises(RecordImmutable):
        AuditEvent.objects.all().delete()


def test_a_team_with_history_is_archived_not_deleted(world):
    override_of(world)
    lead = actor(world["lead"])
    with pytest.raises(RecordImmutable, match="archive it instead"):
        team_delete(team=world["team"], actor=lead)
    with pytest.raises(ProtectedError):
        world["team"].delete()
    team_archive(team=world["team"], actor=lead)
    assert world["team"].archived
    assert AuditEvent.objects.filter(action="team.archive").exists()


def test_a_team_without_history_may_be_deleted():
    team = TeamFactory(slug="empty")
    team_delete(team=team, actor=Actor(source="admin"))
    assert AuditEvent.objects.get().action == "team.delete"


def test_a_person_or_repository_with_history_is_not_deleted(world):
    override_of(world)
    with pytest.raises(RecordImmutable, match="overrides"):
        person_delete(person=world["lead"], actor=Actor(source="admin"))
    with pytest.raises(ProtectedError):
        world["lead"].delete()
    with pytest.raises(RecordImmutable, match="overrides"):
        repository_delete(repository=world["repository"], actor=Actor(source="admin"))
    with pytest.raises(ProtectedError):
        world["repository"].delete()


def test_an_archived_team_leaves_the_lists(world, client):
    client.force_login(world["lead"].user)
    team_archive(team=world["team"], actor=actor(world["lead"]))
    assert b"/teams/shop/" not in client.get("/teams/").content
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(world["lead"].user)
    assert api.get("/api/v1/teams").json()["results"] == []
    assert api.get("/api/v1/teams/shop").status_code == 200  # its history stays readable
