"""The weekly digest: recorded and sent once per team and week (chat and e-mail), whatever retries; a preview page
for the team's members only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.test import Client

from telemetry.models import DeployCheck, WeeklyDigest
from telemetry.services.digest import digest_week_due, digests_send_due
from telemetry.tasks import email_digest, notify_chat_of_digest
from tests.telemetry.conftest import approve, make_service

MONDAY_MORNING = dt.datetime(2025, 6, 16, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def week(history, actors):
    actors.lead.user.email = "lena@example.com"
    actors.lead.user.save()
    actors.member.user.email = "max@example.com"
    actors.member.user.save()
    pull_request = history.merge(1, at=dt.datetime(2025, 6, 11, 12, tzinfo=dt.UTC))
    approve(pull_request, actors.lead, at=dt.datetime(2025, 6, 11, 11, tzinfo=dt.UTC), body="ok")
    service = make_service("payments-api", actors.team)
    for level, decision, day in (("high", "block", 12), ("low", "allow", 13)):
        DeployCheck.objects.create(
            service=service, environment="production", sha=f"{day:02}" * 20, level=level, decision=decision,
            reasons=[{"code": "weak", "text": "1 change was rubber-stamped"}],
            checked_at=dt.datetime(2025, 6, day, 9, tzinfo=dt.UTC),
        )  # fmt: skip


def test_the_due_week_is_last_week_from_monday_morning():
    assert digest_week_due(MONDAY_MORNING) == dt.date(2025, 6, 9)
    assert digest_week_due(MONDAY_MORNING - dt.timedelta(hours=2)) == dt.date(2025, 6, 2)  # before 08:00
    assert digest_week_due(MONDAY_MORNING + dt.timedelta(days=3)) == dt.date(2025, 6, 9)


def test_each_team_gets_its_digest_once_per_week(week, actors, fake_chat, run_on_commit):
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    with run_on_commit():
        created = digests_send_due(now=MONDAY_MORNING)
    digest = WeeklyDigest.objects.get(team=actors.team)
    assert digest.pk in created and digest.week == dt.date(2025, 6, 9)
    assert "Review health" in digest.text and "1 merged" in digest.text
    # The week's deploy checks above "low", in words; the low one is left out.
    assert "Payments-Api production @ 12121212, high risk, block, not deployed (yet): 1 change was rubber-stamped" in (
        digest.text
    )
    assert "13131313" not in digest.text
    sent = [m for m in fake_chat.messages if "Payments" in m["text"]]
    assert len(sent) == 1
    payments_mail = [m for m in mail.outbox if "Payments" in m.subject]
    assert len(payments_mail) == 1 and sorted(payments_mail[0].to) == ["lena@example.com", "max@example.com"]

    # The beat job an hour later, a retried e-mail task, a retried chat task: nothing is sent twice.
    with run_on_commit():
        assert digests_send_due(now=MONDAY_MORNING + dt.timedelta(hours=1)) == []
    assert email_digest(digest.pk) == "skipped: already sent"
    assert notify_chat_of_digest(digest.pk) == "skipped: already sent"
    assert len([m for m in fake_chat.messages if "Payments" in m["text"] and "09 Jun" in m["text"]]) == 1
    assert len([m for m in mail.outbox if "Payments" in m.subject and "09 Jun" in m.subject]) == 1
    assert WeeklyDigest.objects.filter(team=actors.team, week=dt.date(2025, 6, 9)).count() == 1


def test_a_failed_email_is_recorded_and_not_sent_again(week, actors, settings, run_on_commit):
    settings.EMAIL_BACKEND = "tests.telemetry.test_digest.FailingBackend"
    with run_on_commit():
        digests_send_due(now=MONDAY_MORNING)
    digest = WeeklyDigest.objects.get(team=actors.team)
    assert "refused" in digest.email_error and digest.email_sent_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert email_digest(digest.pk) == "skipped: tried already"


class FailingBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("refused")


@pytest.mark.parametrize(("who", "status"), [("member", 200), ("lead", 200), ("outsider", 404)])
def test_the_preview_is_for_the_teams_members(week, actors, who, status):
    client = Client()
    client.force_login(getattr(actors, who).user)
    response = client.get("/teams/payments/digest/")
    assert response.status_code == status
    if status == 200:
        assert "Review health" in response.content.decode()


def test_the_preview_needs_a_login(week):
    assert Client().get("/teams/payments/digest/").status_code == 302
