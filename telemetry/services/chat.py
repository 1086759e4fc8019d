"""The team's chat is told about a confirmed cause, an alert, a weekly digest: once, retried with backoff, never twice.

Each kind of notice (`ChatKind`) lives on its own rows with the same chat_* fields; the mechanics are the same.

The database holds the pending notice, not the broker (like webhook deliveries): a confirmation makes it due now,
a failed attempt makes it due again after a backoff, and `suspect_chats_dispatch` hands whatever is due to a task
(Celery beat in production; `manage.py run_due_work` beside the embedded default, where tasks run inline).

Never twice: each send is claimed first, in a transaction of its own (`chat_sending_since`, committed before the
request goes out). The claim is cleared with the outcome. An attempt is tried again only when the chat surely did
not show it (it answered 5xx or 429, or no connection was made). When the outcome is unknown (no answer after
sending, or a worker that died mid-send and left its claim), the notice is not sent again and the suspect says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from reviews.models import Team
from telemetry.integrations.slack import ChatError, ChatOutcomeUnknown, ChatUnavailable, post_message
from telemetry.models import SuspectChange

# Seconds to wait after each failed attempt; after the last one the notice is given up (recorded on the suspect).
CHAT_RETRY_COUNTDOWNS = (30, 120, 600, 1800, 3600)
MAX_CHAT_ATTEMPTS = len(CHAT_RETRY_COUNTDOWNS) + 1
# A notice handed to a task is not handed over again for this long (the task claims it at once).
DISPATCH_LEASE = dt.timedelta(minutes=2)
# A claim older than this belongs to a send that died: its outcome is unknown.
SEND_TIMEOUT = dt.timedelta(minutes=5)
DISPATCH_BATCH = 200
INTERRUPTED = "A send was interrupted before its outcome was recorded; not sent again: the chat may have shown it."


def suspect_chat_schedule(*, suspect: SuspectChange) -> bool:
    """Make the chat notice of a confirmed cause due now, unless sent, already pending, or the team has no chat.
    Call inside the confirmation's transaction. Returns whether a notice is due."""
    return chat_schedule(row=suspect, team=suspect.deployment.service.team)


@dataclass(frozen=True)
class ChatKind:
    """What is told to a team's chat, at most once, on a row with the chat_* fields (SuspectChange,
    telemetry.models.ChatNotice): which rows, how to find the team, what to say, and whether it is still owed."""

    model: type[Any]
    related: tuple[str, ...]
    team_of: Callable[[Any], Team | None]
    text_of: Callable[[Any], str]
    not_owed: Callable[[Any], str | None]  # why the notice is no longer owed, or None
    due: Q = field(default_factory=Q)


def _suspect_not_owed(suspect: SuspectChange) -> str | None:
    return None if suspect.verdict == SuspectChange.Verdict.CONFIRMED else "not a confirmed cause"


def suspect_chat_notify(*, suspect_id: int) -> str:
    """Send the chat notice of a confirmed cause if it is still owed. Returns what happened, in words."""
    return chat_notify(kind=SUSPECT_CHAT, row_id=suspect_id)


def chat_schedule(*, row: Any, team: Team | None) -> bool:
    """Make a row's chat notice due now, unless sent, already pending, or the team has no chat. Call inside the
    transaction that makes it owed. Returns whether a notice is due."""
    if team is None or not team.slack_webhook_url or row.chat_notified_at is not None:
        return False
    if row.chat_attempts or row.chat_sending_since is not None:
        return row.chat_next_attempt_at is not None
    type(row).objects.filter(pk=row.pk).update(chat_next_attempt_at=timezone.now())
    row.chat_next_attempt_at = timezone.now()
    return True


def chat_notify(*, kind: ChatKind, row_id: int) -> str:
    """Send a row's chat notice if it is still owed: claimed first, sent once. Returns what happened, in words."""
    claimed = _claim(kind, row_id)
    if isinstance(claimed, str):
        return claimed
    row, url = claimed
    try:
        post_message(url, text=kind.text_of(row), allowed_networks=settings.OUTBOUND_ALLOWED_NETWORKS)
    except ChatUnavailable as error:
        return _failed(kind, row, error, retry=True)
    except ChatError as error:  # refused (4xx, a URL Tandem may not reach), or the outcome is unknown
        return _failed(kind, row, error, retry=False)
    kind.model.objects.filter(pk=row.pk).update(
        chat_notified_at=timezone.now(), chat_sending_since=None, chat_next_attempt_at=None, chat_error=""
    )
    return "sent"


def _claim(kind: ChatKind, row_id: int) -> tuple[Any, str] | str:
    """Lock the row, check the notice is owed, and mark it being sent (committed before the send)."""
    now = timezone.now()
    with transaction.atomic():
        row = kind.model.objects.select_for_update(of=("self",)).select_related(*kind.related).filter(pk=row_id).first()
        if row is None:
            return "skipped: no such notice"
        reason = kind.not_owed(row)
        if reason:
            return f"skipped: {reason}"
        if row.chat_notified_at is not None:
            return "skipped: already sent"
        if row.chat_sending_since is not None:
            if now - row.chat_sending_since < SEND_TIMEOUT:
                return "skipped: being sent"
            _give_up(kind, row, INTERRUPTED)
            return "skipped: outcome unknown"
        team = kind.team_of(row)
        if team is None or not team.slack_webhook_url:
            return "skipped: the team has no chat webhook"
        if row.chat_attempts and row.chat_next_attempt_at is None:
            return "skipped: given up"  # refused, outcome unknown, or out of attempts: the error says which
        kind.model.objects.filter(pk=row.pk).update(
            chat_sending_since=now, chat_attempts=row.chat_attempts + 1, chat_next_attempt_at=None
        )
        row.chat_attempts += 1
    return row, team.slack_webhook_url


def _failed(kind: ChatKind, row: Any, error: ChatError, *, retry: bool) -> str:
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, ChatOutcomeUnknown):
        message += " (not sent again: the chat may have shown it)"
    if retry and row.chat_attempts < MAX_CHAT_ATTEMPTS:
        countdown = CHAT_RETRY_COUNTDOWNS[row.chat_attempts - 1]
        kind.model.objects.filter(pk=row.pk).update(
            chat_sending_since=None,
            chat_next_attempt_at=timezone.now() + dt.timedelta(seconds=countdown),
            chat_error=f"attempt {row.chat_attempts} failed, next in {countdown}s: {message}"[:1000],
        )
        return f"retrying in {countdown}s: {error}"
    if retry:
        message = f"gave up after {row.chat_attempts} attempts: {message}"
    _give_up(kind, row, message)
    return f"failed: {error}"


def _give_up(kind: ChatKind, row: Any, message: str) -> None:
    kind.model.objects.filter(pk=row.pk).update(
        chat_sending_since=None, chat_next_attempt_at=None, chat_error=message[:1000]
    )


def suspect_chats_dispatch(*, send: Callable[[int], object], now: dt.datetime | None = None) -> int:
    """Hand every due chat notice of a confirmed cause to `send` (a task's `delay`)."""
    return chats_dispatch(kind=SUSPECT_CHAT, send=send, now=now)


def chats_dispatch(*, kind: ChatKind, send: Callable[[int], object], now: dt.datetime | None = None) -> int:
    """Hand every due chat notice of this kind to `send` (a task's `delay`), leasing each so it is not handed over
    twice while it waits. Idempotent: the task claims each notice once. Returns how many were handed over."""
    now = now or timezone.now()
    # A send that never recorded its outcome (its worker died) is not repeated: say so on the row.
    kind.model.objects.filter(chat_sending_since__lt=now - SEND_TIMEOUT, chat_notified_at__isnull=True).update(
        chat_sending_since=None, chat_next_attempt_at=None, chat_error=INTERRUPTED
    )
    due = list(
        kind.model.objects.filter(
            kind.due, chat_next_attempt_at__lte=now, chat_notified_at__isnull=True, chat_sending_since__isnull=True
        )
        .order_by("chat_next_attempt_at", "pk")
        .values_list("pk", flat=True)[:DISPATCH_BATCH]
    )
    handed = 0
    for row_id in due:
        # Conditional: a notice another dispatcher leased a moment ago is left to it.
        leased = kind.model.objects.filter(pk=row_id, chat_next_attempt_at__lte=now).update(
            chat_next_attempt_at=now + DISPATCH_LEASE
        )
        if leased:
            send(row_id)
            handed += 1
    return handed


def chat_text(suspect: SuspectChange) -> str:
    incident, pull_request = suspect.incident, suspect.pull_request
    link = pull_request.web_url or f"{pull_request.repository.full_path}#{pull_request.number}"
    return (
        f":mag: The incident “{incident.title}” ({incident.get_severity_display()}) was traced to "
        f"{pull_request.repository.full_path}#{pull_request.number} “{pull_request.title}” ({link}). "
        "Its author and reviewers have been told. Blameless: what would have made this easier to catch?"
    )


SUSPECT_CHAT = ChatKind(
    model=SuspectChange,
    related=("incident", "deployment__service__team", "pull_request__repository"),
    team_of=lambda suspect: suspect.deployment.service.team,
    text_of=chat_text,
    not_owed=_suspect_not_owed,
    due=Q(verdict=SuspectChange.Verdict.CONFIRMED),
)
