"""A confirmed cause's chat notice is retried with backoff, also on the embedded default (tasks inline, no beat:
`manage.py run_due_work` dispatches what is due), and never shown twice: a send whose outcome is unknown is not
repeated."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from telemetry.integrations import slack
from telemetry.models import SuspectChange
from telemetry.services import chat
from telemetry.services.chat import MAX_CHAT_ATTEMPTS, suspect_chat_notify, suspect_chats_dispatch
from telemetry.services.suspects import suspect_confirm
from tests.telemetry.test_suspects import world  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def suspect(actors, world, fake_chat):  # noqa: F811 - the fixture above
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    return world[0]


def _time_passes() -> None:
    """Whatever was scheduled is due now (the backoff ran out)."""
    SuspectChange.objects.filter(chat_next_attempt_at__isnull=False).update(
        chat_next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _due_work() -> None:
    call_command("run_due_work", "--once")


def test_a_failed_notice_is_retried_with_backoff_by_the_embedded_defaults_loop(suspect, fake_chat, run_on_commit):
    fake_chat.status = 503
    with run_on_commit():
        suspect_confirm(suspect=suspect, decided_by=None)
    suspect.refresh_from_db()
    assert (suspect.chat_attempts, suspect.chat_notified_at) == (1, None)
    assert "503" in suspect.chat_error
    wait = suspect.chat_next_attempt_at - timezone.now()
    assert dt.timedelta(seconds=20) < wait <= dt.timedelta(seconds=30)

    _due_work()  # not due yet: nothing is sent
    assert fake_chat.received == 1

    fake_chat.status = 200
    _time_passes()
    _due_work()
    suspect.refresh_from_db()
    assert suspect.chat_notified_at is not None
    assert (suspect.chat_attempts, suspect.chat_error, suspect.chat_next_attempt_at) == (2, "", None)
    _time_passes()
    _due_work()
    assert len(fake_chat.messages) == 1


def test_the_backoff_grows_and_the_notice_is_given_up_after_the_last_attempt(suspect, fake_chat, run_on_commit):
    fake_chat.status = 503
    with run_on_commit():
        suspect_confirm(suspect=suspect, decided_by=None)
    waits = []
    for _ in range(MAX_CHAT_ATTEMPTS + 2):
        suspect.refresh_from_db()
        if suspect.chat_next_attempt_at is not None:
            waits.append(round((suspect.chat_next_attempt_at - timezone.now()).total_seconds() / 10) * 10)
        _time_passes()
        _due_work()
    suspect.refresh_from_db()
    assert fake_chat.received == MAX_CHAT_ATTEMPTS
    assert waits == list(chat.CHAT_RETRY_COUNTDOWNS)
    assert suspect.chat_next_attempt_at is None
    assert suspect.chat_error.startswith(f"gave up after {MAX_CHAT_ATTEMPTS} attempts")


def test_a_chat_that_cannot_be_reached_is_retried(suspect, run_on_commit):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    team = suspect.deployment.service.team
    team.slack_webhook_url = f"http://127.0.0.1:{port}/hooks/x"
    team.save()
    with run_on_commit():
        suspect_confirm(suspect=suspect, decided_by=None)
    suspect.refresh_from_db()
    assert suspect.chat_next_attempt_at is not None
    assert "unreachable" in suspect.chat_error


def test_a_chat_that_took_the_message_but_never_answered_is_not_sent_it_again(
    suspect, fake_chat, monkeypatch, run_on_commit
):
    monkeypatch.setattr(slack, "TIMEOUT_SECONDS", 0.5)
    fake_chat.silent = True
    with run_on_commit():
        suspect_confirm(suspect=suspect, decided_by=None)
    suspect.refresh_from_db()
    assert fake_chat.received == 1
    assert suspect.chat_next_attempt_at is None
    assert "not sent again" in suspect.chat_error

    fake_chat.silent = False
    _time_passes()
    _due_work()
    assert suspect_chat_notify(suspect_id=suspect.pk) == "skipped: given up"
    assert fake_chat.received == 1


def test_a_send_whose_worker_died_is_never_repeated(suspect, fake_chat, monkeypatch, run_on_commit):
    real_post = chat.post_message

    def post_then_die(*args, **kwargs):
        real_post(*args, **kwargs)
        raise SystemExit("worker killed")  # after the chat showed it, before the outcome was written

    monkeypatch.setattr(chat, "post_message", post_then_die)
    with pytest.raises(SystemExit), run_on_commit():
        suspect_confirm(suspect=suspect, decided_by=None)
    monkeypatch.setattr(chat, "post_message", real_post)
    assert len(fake_chat.messages) == 1

    assert suspect_chat_notify(suspect_id=suspect.pk) == "skipped: being sent"
    SuspectChange.objects.filter(pk=suspect.pk).update(
        chat_sending_since=timezone.now() - chat.SEND_TIMEOUT - dt.timedelta(seconds=1)
    )
    _due_work()
    suspect.refresh_from_db()
    assert suspect.chat_sending_since is None
    assert suspect.chat_error == chat.INTERRUPTED
    _time_passes()
    _due_work()
    assert len(fake_chat.messages) == 1


def test_a_due_notice_is_handed_over_once_while_its_task_waits(suspect, monkeypatch):
    monkeypatch.setattr("telemetry.services.enqueue.suspect_chat_enqueue", lambda **kwargs: None)
    monkeypatch.setattr("telemetry.services.suspects.suspect_chat_enqueue", lambda **kwargs: None)
    suspect_confirm(suspect=suspect, decided_by=None)  # the hand-over at confirmation was lost
    handed: list[int] = []
    assert suspect_chats_dispatch(send=handed.append) == 1
    assert suspect_chats_dispatch(send=handed.append) == 0  # leased: its task has not run yet
    assert handed == [suspect.pk]
    assert suspect_chats_dispatch(send=handed.append, now=timezone.now() + chat.DISPATCH_LEASE * 2) == 1


def test_make_run_starts_the_loop_beside_the_web_server():
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "manage.py run_due_work &" in recipe
    assert "manage.py runserver" in recipe
