"""The admin for leads: policy documents validated with line numbers, overrides asking for a reason."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from reviews.models import Membership, Override, Policy
from tests.factories import MembershipFactory, PersonFactory, PullRequestFactory, RepositoryFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead_client(client):
    team = TeamFactory(slug="shop")
    user = User.objects.create_user("lead", password="pw", is_staff=True)  # a real lead: no superuser powers
    person = PersonFactory(user=user, display_name="Lead")
    MembershipFactory(team=team, person=person, role=Membership.Role.LEAD)
    client.force_login(user)
    client.team = team
    return client


def test_an_invalid_document_shows_the_line_and_is_not_stored(lead_client):
    response = lead_client.post(
        "/admin/reviews/policy/add/",
        {"team": lead_client.team.pk, "document": "rules:\n  - name: a\n    require: {aprovals: 1}\n"},
    )
    assert response.status_code == 200
    assert "line 3" in response.content.decode()
    assert "approvals" in response.content.decode()  # the did-you-mean suggestion
    assert not Policy.objects.exists()


def test_a_valid_document_is_stored(lead_client):
    response = lead_client.post(
        "/admin/reviews/policy/add/",
        {"team": lead_client.team.pk, "document": "rules:\n  - name: a\n    require: {approvals: 1}\n"},
    )
    assert response.status_code == 302
    assert Policy.objects.get().updated_by.username == "lead"


def test_override_action_asks_for_a_reason_then_records_it(lead_client, django_capture_on_commit_callbacks):
    pull_request = PullRequestFactory(repository=RepositoryFactory(team=lead_client.team), head_sha="a" * 40)
    url = "/admin/reviews/pullrequest/"
    asked = lead_client.post(url, {"action": "override_policy", "_selected_action": [pull_request.pk]})
    assert asked.status_code == 200
    assert "Why this cannot wait for review." in asked.content.decode()
    assert not Override.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = lead_client.post(
            url,
            {"action": "override_policy", "_selected_action": [pull_request.pk], "confirm": "yes", "reason": "Outage"},
            follow=True,
        )
    assert done.status_code == 200
    override = Override.objects.get()
    assert override.reason == "Outage"
    assert pull_request.evaluations.latest("evaluated_at").outcome == "overridden"
    from reviews.models import AuditEvent

    event = AuditEvent.objects.get(action="override.create")
    assert (event.source, event.actor_person) == ("admin", override.overridden_by)  # not an anonymous "system" write
    overdue = lead_client.get("/admin/reviews/override/?followup=due")
    assert str(pull_request) in overdue.content.decode()
