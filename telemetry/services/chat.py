"""The team's chat is told about a confirmed cause: once, retried with backoff, never twice.

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

from django.conf import settings
from django.db import transaction
from django.utils import timezone

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
    team = suspect.deployment.service.team
    if team is None or not team.slack_webhook_url or suspect.chat_notified_at is not None:
        return False
    if suspect.chat_attempts or suspect.chat_sending_since is not None:
        return suspect.chat_next_attempt_at is not None  # its attempts carry on (or gave up) on their own schedule
    suspect.chat_next_attempt_at = timezone.now()
    suspect.save(update_fields=["chat_next_attempt_at"])
    return True


def suspect_chat_notify(*, suspect_id: int) -> str:
    """Send the chat notice of a confirmed cause if it is still owed. Returns what happened, in words."""
    claimed = _claim(suspect_id)
    if isinstance(claimed, str):
        return claimed
    suspect, url = claimed
    try:
        post_message(url, text=chat_text(suspect), allowed_networks=settings.OUTBOUND_ALLOWED_NETWORKS)
    except ChatUnavailable as error:
        return _failed(suspect, error, retry=True)
    except ChatError as error:  # refused (4xx, a URL Tandem may not reach), or the outcome is unknown
        return _failed(suspect, error, retry=False)
    SuspectChange.objects.filter(pk=suspect.pk).update(
        chat_notified_at=timezone.now(), chat_sending_since=None, chat_next_attempt_at=None, chat_error=""
    )
    return "sent"


def _claim(suspect_id: int) -> tuple[SuspectChange, str] | str:
    """Lock the suspect, check the notice is owed, and mark it being sent (committed before the send)."""
    now = timezone.now()
    with transaction.atomic():
        suspect = (
            SuspectChange.objects.select_for_update(of=("self",))
            .select_related("incident", "deployment__service__team", "pull_request__repository")
            .filter(pk=suspect_id)
            .first()
        )
        if suspect is None or suspect.verdict != SuspectChange.Verdict.CONFIRMED:
            return "skipped: not a confirmed cause"
        if suspect.chat_notified_at is not None:
            return "skipped: already sent"
        if suspect.chat_sending_since is not None:
            if now - suspect.chat_sending_since < SEND_TIMEOUT:
                return "skipped: being sent"
            _give_up(suspect, INTERRUPTED)
            return "skipped: outcome unknown"
        team = suspect.deployment.service.team
        if team is None or not team.slack_webhook_url:
            return "skipped: the team has no chat webhook"
        if suspect.chat_attempts and suspect.chat_next_attempt_at is None:
            return "skipped: given up"  # refused, outcome unknown, or out of attempts: the error says which
        SuspectChange.objects.filter(pk=suspect.pk).update(
            chat_sending_since=now, chat_attempts=suspect.chat_attempts + 1, chat_next_attempt_at=None
        )
        suspect.chat_attempts += 1
    return suspect, team.slack_webhook_url


def _failed(suspect: SuspectChange, error: ChatError, *, retry: bool) -> str:
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, ChatOutcomeUnknown):
        message += " (not sent again: the chat may have shown it)"
    if retry and suspect.chat_attempts < MAX_CHAT_ATTEMPTS:
        countdown = CHAT_RETRY_COUNTDOWNS[suspect.chat_attempts - 1]
        SuspectChange.objects.filter(pk=suspect.pk).update(
            chat_sending_since=None,
            chat_next_attempt_at=timezone.now() + dt.timedelta(seconds=countdown),
            chat_error=f"attempt {suspect.chat_attempts} failed, next in {countdown}s: {message}"[:1000],
        )
        return f"retrying in {countdown}s: {error}"
    if retry:
        message = f"gave up after {suspect.chat_attempts} attempts: {message}"
    _give_up(suspect, message)
    return f"failed: {error}"


def _give_up(suspect: SuspectChange, message: str) -> None:
    SuspectChange.objects.filter(pk=suspect.pk).update(
        chat_sending_since=None, chat_next_attempt_at=None, chat_error=message[:1000]
    )


def suspect_chats_dispatch(*, send: Callable[[int], object], now: dt.datetime | None = None) -> int:
    """Hand every due chat notice to `send` (a task's `delay`), leasing each so it is not handed over twice while
    it waits. Idempotent: the task claims each notice once. Returns how many were handed over."""
    now = now or timezone.now()
    # A send that never recorded its outcome (its worker died) is not repeated: say so on the suspect.
    SuspectChange.objects.filter(chat_sending_since__lt=now - SEND_TIMEOUT, chat_notified_at__isnull=True).update(
        chat_sending_since=None, chat_next_attempt_at=None, chat_error=INTERRUPTED
    )
    due = list(
        SuspectChange.objects.filter(
            chat_next_attempt_at__lte=now,
            chat_notified_at__isnull=True,
            chat_sending_since__isnull=True,
            verdict=SuspectChange.Verdict.CONFIRMED,
        )
        .order_by("chat_next_attempt_at", "pk")
        .values_list("pk", flat=True)[:DISPATCH_BATCH]
    )
    handed = 0
    for suspect_id in due:
        # Conditional: a notice another dispatcher leased a moment ago is left to it.
        leased = SuspectChange.objects.filter(pk=suspect_id, chat_next_attempt_at__lte=now).update(
            chat_next_attempt_at=now + DISPATCH_LEASE
        )
        if leased:
            send(suspect_id)
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
