"""Every write in the admin goes through the services: an AuditEvent names the person and the admin as its source,
and what the write affects is evaluated again."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import ApiToken, AuditEvent, Connection, Identity, Membership, Policy, PolicyVersion, Team
from reviews.services import enqueue
from tests.factories import IdentityFactory
from tests.reviews.admin_world import page_data, team_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> dict[str, Any]:
    team_rows("search")
    return team_rows("shop")


def _event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("pk")


def _by_admin(event: AuditEvent, user: User) -> None:
    assert event.source == AuditEvent.Source.ADMIN
    assert event.actor_user == user
    assert event.actor_person == user.person


def _queued(callbacks: list[Any]) -> set[int]:
    return {cb.args[0] for cb in callbacks if getattr(cb, "func", None) is enqueue.evaluation_enqueue_now}


def _save(client: Any, url: str, model: Any, **changes: Any) -> Any:
    data = page_data(client.get(url), model)
    data.update({name: value if isinstance(value, list) else [value] for name, value in changes.items()})
    return client.post(url, data)


def test_a_policy_edit_in_the_admin_is_audited_with_its_reason(client, shop, django_capture_on_commit_callbacks):
    lead, policy = shop["lead_user"], shop["reviews.Policy"]
    client.force_login(lead)
    document = "rules:\n  - name: two\n    require: {approvals: 2}\n"
    with django_capture_on_commit_callbacks() as callbacks:
        response = _save(
            client, f"/admin/reviews/policy/{policy.pk}/change/", Policy, document=document, reason="payments grew"
        )
    assert response.status_code == 302
    event = _event("policy.edit")
    _by_admin(event, lead)
    assert event.reason == "payments grew" and event.team == shop["team"]
    assert PolicyVersion.objects.filter(policy=policy).latest("number").reason == "payments grew"
    assert shop["reviews.PullRequest"].pk in _queued(callbacks)


def test_an_agreement_change_in_the_admin_is_audited(client, shop):
    lead, team = shop["lead_user"], shop["team"]
    client.force_login(lead)
    response = _save(client, f"/admin/reviews/team/{team.pk}/change/", Team, review_within_hours="8")
    assert response.status_code == 302
    event = _event("agreement.change")
    _by_admin(event, lead)
    assert event.changes == {"review_within_hours": {"before": 24, "after": 8}}


def test_a_role_changed_on_the_team_page_is_audited_and_reevaluates(client, shop, django_capture_on_commit_callbacks):
    lead, team = shop["lead_user"], shop["team"]
    member = Membership.objects.get(team=team, person__user=shop["member_user"])
    client.force_login(lead)
    url = f"/admin/reviews/team/{team.pk}/change/"
    data = page_data(client.get(url), Team)
    row = next(name for name, value in data.items() if name.endswith("-id") and value == [str(member.pk)])
    data[row.replace("-id", "-role")] = ["lead"]
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(url, data).status_code == 302
    member.refresh_from_db()
    assert member.role == "lead"
    event = _event("membership.change")
    _by_admin(event, lead)
    assert event.changes["role"] == {"before": "member", "after": "lead"}
    assert shop["reviews.PullRequest"].pk in _queued(callbacks)  # the member wrote it


def test_a_membership_deleted_in_the_admin_is_audited(client, shop):
    lead, team = shop["lead_user"], shop["team"]
    member = Membership.objects.get(team=team, person__user=shop["member_user"])
    client.force_login(lead)
    assert client.post(f"/admin/reviews/membership/{member.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    _by_admin(_event("membership.remove"), lead)


def test_attaching_an_identity_in_the_admin_is_audited(client, shop):
    lead = shop["lead_user"]
    unresolved = IdentityFactory(person=None, value="drifter")
    client.force_login(lead)
    url = f"/admin/reviews/identity/{unresolved.pk}/change/"
    assert _save(client, url, Identity, person=str(lead.person.pk)).status_code == 302
    event = _event("identity.attach")
    _by_admin(event, lead)
    assert event.team == shop["team"] and event.changes["person"]["before"] is None


def test_a_pasted_codeowners_is_audited_and_reevaluates_open_pull_requests(
    client, shop, django_capture_on_commit_callbacks
):
    lead, repository = shop["lead_user"], shop["reviews.Repository"]
    client.force_login(lead)
    url = f"/admin/reviews/repository/{repository.pk}/change/"
    with django_capture_on_commit_callbacks() as callbacks:
        assert _save(client, url, type(repository), codeowners="* @alice\n").status_code == 302
    event = _event("repository.codeowners")
    _by_admin(event, lead)
    assert event.changes == {"codeowners": {"before": "", "after": "* @alice"}}
    assert shop["reviews.PullRequest"].pk in _queued(callbacks)


def test_a_connection_change_is_audited_without_its_secret(client, shop):
    root = User.objects.create_superuser("root", password="pw")
    connection = shop["reviews.Connection"] if "reviews.Connection" in shop else shop["reviews.Repository"].connection
    client.force_login(root)
    url = f"/admin/reviews/connection/{connection.pk}/change/"
    assert _save(client, url, Connection, name="GHE", api_token="ghp_topsecret").status_code == 302
    event = _event("connection.change")
    assert event.source == "admin" and event.actor_user == root
    assert event.changes["api_token"]["after"] == "replaced"
    assert "topsecret" not in str(event.changes)


def test_a_token_created_and_revoked_in_the_admin_is_audited(client, shop):
    lead, team = shop["lead_user"], shop["team"]
    client.force_login(lead)
    response = client.post("/admin/reviews/apitoken/add/", {"name": "deploys", "teams": [team.pk]})
    assert response.status_code == 302
    token = ApiToken.objects.get(name="deploys")
    assert list(token.teams.all()) == [team] and token.created_by == lead
    created = _event("token.create")
    _by_admin(created, lead)
    client.post("/admin/reviews/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    _by_admin(_event("token.revoke"), lead)


def test_a_lead_archives_and_brings_back_their_team(client, shop):
    lead, team = shop["lead_user"], shop["team"]
    other = Team.objects.get(slug="search")
    client.force_login(lead)
    client.post("/admin/reviews/team/", {"action": "archive", "_selected_action": [team.pk, other.pk]})
    team.refresh_from_db(), other.refresh_from_db()
    assert team.archived and not other.archived  # another team's row is not theirs to archive
    _by_admin(_event("team.archive"), lead)
    client.post("/admin/reviews/team/", {"action": "unarchive", "_selected_action": [team.pk]})
    team.refresh_from_db()
    assert not team.archived
    _by_admin(_event("team.unarchive"), lead)


def test_a_lead_withdraws_an_override_with_a_reason(client, shop, django_capture_on_commit_callbacks):
    from reviews.models import Override, OverrideWithdrawal

    lead, override = shop["lead_user"], shop["reviews.Override"]
    client.force_login(lead)
    asked = client.post("/admin/reviews/override/", {"action": "withdraw", "_selected_action": [override.pk]})
    assert b"Why the override no longer stands" in asked.content
    assert not OverrideWithdrawal.objects.filter(override=override).exists()
    with django_capture_on_commit_callbacks() as callbacks:
        client.post(
            "/admin/reviews/override/",
            {"action": "withdraw", "_selected_action": [override.pk], "confirm": "yes", "reason": "not an outage"},
        )
    withdrawal = OverrideWithdrawal.objects.get(override=override)
    assert withdrawal.withdrawn_by == lead.person and withdrawal.reason == "not an outage"
    event = _event("override.withdraw")
    _by_admin(event, lead)
    assert event.reason == "not an outage"
    assert override.pull_request_id in _queued(callbacks)
    assert Override.objects.filter(pk=override.pk).exists()  # corrected, never erased


def test_a_suspect_verdict_given_in_the_admin_is_on_the_record(client, shop):
    from telemetry.models import SuspectChange, SuspectVerdict

    lead, suspect = shop["lead_user"], shop["telemetry.SuspectChange"]
    client.force_login(lead)
    client.post("/admin/telemetry/suspectchange/", {"action": "confirm", "_selected_action": [suspect.pk]})
    suspect.refresh_from_db()
    assert suspect.verdict == SuspectChange.Verdict.CONFIRMED
    decision = SuspectVerdict.objects.filter(suspect=suspect).latest("pk")
    assert decision.verdict == "confirmed" and decision.decided_by == lead.person
    _by_admin(_event("suspect.verdict"), lead)
