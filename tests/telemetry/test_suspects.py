"""A lead confirms or rejects a suspect change (API and admin). A confirmation marks the deployment failed, records a
risk signal for review policies, and tells the author and reviewers blamelessly, in Tandem and in the team's chat;
rejecting undoes it."""

from __future__ import annotations

import pytest

from reviews.models import Person, Review, RiskSignal
from telemetry.models import Deployment, Notification, SuspectChange
from telemetry.services.correlation import incident_correlate
from telemetry.services.linking import deployment_changes_link
from telemetry.services.suspects import suspect_confirm, suspect_reject
from telemetry.tasks import notify_chat_of_cause
from tests.telemetry.conftest import T0, approve, hours, make_deployment, make_incident, make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(actors, repository, history):
    """Incident "Checkout 500s" with one suspect: PR #1 by Alice, approved by the member, reviewed by a bot."""
    service = make_service("checkout", actors.team, [(repository, [])])
    make_deployment(service, history.head, at=T0 - hours(50), repository=repository)
    alice = Person.objects.create(display_name="Alice Author")
    pull_request = history.merge(1, at=T0 - hours(10), author=alice, files=["payments/charge.py", "payments/api.py"])
    approve(pull_request, actors.member, at=T0 - hours(11))
    bot = Person.objects.create(display_name="ci-bot", is_bot=True)
    Review.objects.create(
        pull_request=pull_request, external_id="bot", reviewer=bot, state="commented", submitted_at=T0 - hours(11)
    )
    deployment = make_deployment(service, history.head, at=T0 - hours(5), repository=repository)
    deployment_changes_link(deployment_id=deployment.pk)
    incident = make_incident([service], at=T0, title="Checkout 500s", severity="sev2")
    incident_correlate(incident_id=incident.pk)
    return SuspectChange.objects.get(), alice


def decide(client, suspect, verdict: str):
    return client.post(f"/api/v1/suspects/{suspect.pk}/{verdict}")


def test_a_lead_confirms_a_cause(actors, world, run_on_commit):
    suspect, alice = world
    with run_on_commit():
        response = decide(actors.client("lead"), suspect, "confirm")
    assert response.status_code == 200
    assert response.json()["verdict"] == "confirmed"
    assert response.json()["decided_by"] == "Lena Lead"

    suspect.refresh_from_db()
    assert suspect.decided_by == actors.lead
    assert Deployment.objects.get(pk=suspect.deployment_id).caused_incident
    signal = RiskSignal.objects.get()
    assert signal.repository == suspect.pull_request.repository
    assert signal.path_prefixes == ["payments/api.py", "payments/charge.py"]
    assert signal.occurred_at == T0
    assert signal.service_name == "Checkout"

    notices = {n.person: n for n in Notification.objects.all()}
    assert set(notices) == {alice, actors.member}  # the author and the reviewer; never the bot
    assert "which you wrote" in notices[alice].body
    assert "which you reviewed" in notices[actors.member].body
    assert "not about blame" in notices[alice].body
    assert notices[alice].subject == "“Checkout 500s” was traced to acme/shop#1"


def test_confirming_twice_changes_nothing(actors, world):
    suspect, _ = world
    client = actors.client("lead")
    decide(client, suspect, "confirm")
    first = SuspectChange.objects.values("decided_at").get()
    decide(client, suspect, "confirm")
    assert SuspectChange.objects.values("decided_at").get() == first
    assert Notification.objects.count() == 2
    assert RiskSignal.objects.count() == 1


def test_rejecting_undoes_a_confirmation(actors, world):
    suspect, _ = world
    client = actors.client("lead")
    decide(client, suspect, "confirm")
    response = decide(client, suspect, "reject")
    assert response.status_code == 200
    assert response.json()["verdict"] == "rejected"
    assert not Deployment.objects.get(pk=suspect.deployment_id).caused_incident
    assert RiskSignal.objects.count() == 0
    assert Notification.objects.count() == 0


def test_a_deployment_stays_failed_while_another_cause_it_shipped_is_confirmed(actors, world, history, repository):
    suspect, _ = world
    other = history.merge(2, at=T0 - hours(9))
    second = SuspectChange.objects.create(
        incident=suspect.incident, deployment=suspect.deployment, pull_request=other, score=1, rank=2
    )
    suspect_confirm(suspect=suspect, decided_by=actors.lead)
    suspect_confirm(suspect=second, decided_by=actors.lead)
    suspect_reject(suspect=suspect, decided_by=actors.lead)
    assert Deployment.objects.get(pk=suspect.deployment_id).caused_incident
    assert RiskSignal.objects.count() == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("lead", 200),
        ("token", 200),  # a token of the service's team
        ("member", 403),  # sees it, is not a lead
        ("outsider", 404),  # a lead, of another team
        ("other_token", 404),
        ("anonymous", 401),
    ],
)
def test_only_a_lead_of_the_services_team_or_its_token_decides(actors, world, who, status):
    suspect, _ = world
    response = decide(actors.client(who), suspect, "confirm")
    assert response.status_code == status
    confirmed = SuspectChange.objects.get().verdict == "confirmed"
    assert confirmed == (status == 200)
    if who == "token":
        assert SuspectChange.objects.get().decided_by is None


def test_the_teams_chat_is_told_once(actors, world, fake_chat, run_on_commit):
    suspect, _ = world
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    with run_on_commit():
        decide(actors.client("lead"), suspect, "confirm")
    with run_on_commit():
        decide(actors.client("lead"), suspect, "confirm")
    assert notify_chat_of_cause.delay(suspect.pk).get() == "skipped: already sent"

    [message] = fake_chat.messages
    assert "Checkout 500s" in message["text"]
    assert "acme/shop#1" in message["text"]
    assert "Blameless" in message["text"]
    assert SuspectChange.objects.get().chat_notified_at is not None


def test_a_failing_chat_is_recorded_and_tried_again(actors, world, fake_chat, run_on_commit):
    suspect, _ = world
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    fake_chat.status = 503
    with run_on_commit():
        decide(actors.client("lead"), suspect, "confirm")
    suspect.refresh_from_db()
    assert suspect.chat_notified_at is None
    assert "503" in suspect.chat_error

    fake_chat.status = 200
    assert notify_chat_of_cause.delay(suspect.pk).get() == "sent"
    suspect.refresh_from_db()
    assert (suspect.chat_error, len(fake_chat.messages)) == ("", 1)


def test_a_chat_that_refuses_the_message_is_not_retried(actors, world, fake_chat):
    suspect, _ = world
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    suspect_confirm(suspect=suspect, decided_by=None)
    fake_chat.status = 404
    assert notify_chat_of_cause.delay(suspect.pk).get().startswith("failed: chat webhook refused")
    assert "404" in SuspectChange.objects.get().chat_error


def test_no_chat_without_a_webhook_url_or_a_confirmation(actors, world):
    suspect, _ = world
    assert notify_chat_of_cause.delay(suspect.pk).get() == "skipped: not a confirmed cause"
    suspect_confirm(suspect=suspect, decided_by=None)
    assert notify_chat_of_cause.delay(suspect.pk).get() == "skipped: the team has no chat webhook"


def test_suspects_are_listed_for_the_team(actors, world):
    suspect, _ = world
    listed = actors.client("member").get("/api/v1/suspects", {"incident": suspect.incident_id}).json()
    [row] = listed["results"]
    assert row["pull_request"]["number"] == 1
    assert row["rank"] == 1
    assert row["reasons"][0]["text"]
    assert actors.client("other_token").get("/api/v1/suspects").json()["count"] == 0
    assert actors.client("member").get("/api/v1/suspects", {"verdict": "confirmed"}).json()["count"] == 0
    detail = actors.client("token").get(f"/api/v1/incidents/{suspect.incident_id}").json()
    assert [s["id"] for s in detail["suspects"]] == [suspect.pk]


# --- admin ----------------------------------------------------------------------------------------------------------


def _staff(person: Person) -> None:
    user = person.user
    user.is_staff = True
    user.save()  # no model permissions: leading the team is the permission


def test_a_lead_confirms_in_the_admin_but_not_for_another_team(actors, world, client):
    suspect, _ = world
    _staff(actors.outsider)
    client.force_login(actors.outsider.user)
    url = "/admin/telemetry/suspectchange/"
    client.post(url, {"action": "confirm", "_selected_action": [suspect.pk]})
    assert SuspectChange.objects.get().verdict == "suspected"

    _staff(actors.lead)
    client.force_login(actors.lead.user)
    response = client.post(url, {"action": "confirm", "_selected_action": [suspect.pk]}, follow=True)
    assert response.status_code == 200
    assert SuspectChange.objects.get().verdict == "confirmed"
    assert SuspectChange.objects.get().decided_by == actors.lead
    client.post(url, {"action": "reject", "_selected_action": [suspect.pk]})
    assert SuspectChange.objects.get().verdict == "rejected"
    assert RiskSignal.objects.count() == 0
