"""`manage.py dispatch_deliveries`: hand new webhook deliveries to workers the moment they are stored.

The web process stores a delivery and announces it with PostgreSQL NOTIFY once it is committed; this process
LISTENs, and hands every due delivery to a worker (batched when a backlog waits), so acknowledging a webhook
never waits for a broker and a broker outage never slows acknowledgements. A web process that stores deliveries
less than NOTICE_WINDOW apart asks, in its notice, for a look again once the window has passed, and does not
announce what it stores within it: that look hands them over. Between notices it looks every `--poll` seconds
anyway (retries whose backoff ran out, leases that expired, a notice lost, SQLite). It keeps no state: run one or
several; a row one dispatcher is leasing is skipped by the others, and beat's `dispatch_due_deliveries` is the
fallback when none runs.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection

from reviews.services.webhooks import DELIVERY_CHANNEL, NOTICE_LOOK_AGAIN, NOTICE_WINDOW, webhook_deliveries_dispatch

logger = logging.getLogger(__name__)

RECONNECT_WAIT = (1.0, 2.0, 5.0, 10.0)
# How often the deliveries of workers that died are taken back (STALE_CLAIM is 90 s): not at every new delivery,
# which wakes this process up to hundreds of times a second.
RECLAIM_SECONDS = 5.0


class Command(BaseCommand):
    help = "Hand new webhook deliveries to workers as they are stored (LISTEN/NOTIFY on PostgreSQL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between looks without a notice.")
        parser.add_argument("--once", action="store_true", help="Dispatch what is due once, then exit.")

    def handle(self, *args: Any, poll: float, once: bool, **options: Any) -> None:
        from reviews.tasks import process_webhook_deliveries

        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        dispatch_until(lambda: self.stopping, send=process_webhook_deliveries.delay, poll=poll, once=once)

    def _stop(self, *_: object) -> None:
        self.stopping = True


def dispatch_until(
    stopping: Callable[[], bool], *, send: Callable[[list[int]], object], poll: float, once: bool
) -> None:
    """Hand over what is due, then wait for a notice or the poll, until `stopping()`. After a notice that asks for
    it, the next look is at most NOTICE_WINDOW later even when no other notice comes (for the deliveries its sender
    did not announce)."""
    failures = 0
    listening = False
    reclaimed_at = -RECLAIM_SECONDS
    look_again_at: float | None = None  # a look owed to the deliveries stored unannounced after the last notice
    while not stopping():
        try:
            if not listening:
                listening = _listen()
            started = time.monotonic()
            reclaim = started - reclaimed_at >= RECLAIM_SECONDS
            webhook_deliveries_dispatch(send=send, budget=max(poll, 1.0) * 5, reclaim=reclaim)
            if reclaim:
                reclaimed_at = started
            if once:
                return
            if look_again_at is not None and started >= look_again_at:
                look_again_at = None  # this look came after the window: what was stored unannounced is handed over
            timeout = poll if look_again_at is None else max(0.0, look_again_at - time.monotonic())
            if _wait_for_notice(timeout, listening=listening):
                look_again_at = time.monotonic() + NOTICE_WINDOW
            failures = 0
        except Exception:
            # PostgreSQL restarted, or the broker is away: the leased rows wait out their lease and are sent again.
            logger.exception("dispatcher: could not dispatch; trying again")
            connection.close()
            listening = False
            time.sleep(RECONNECT_WAIT[min(failures, len(RECONNECT_WAIT) - 1)])
            failures += 1


def _listen() -> bool:
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {DELIVERY_CHANNEL}")
    return True


def _wait_for_notice(timeout: float, *, listening: bool) -> bool:
    """Return at the first notice (then take every other one already waiting), or after `timeout`; whether a notice
    asked for a look again after NOTICE_WINDOW."""
    if not listening:
        time.sleep(timeout)
        return False
    raw = connection.connection
    look_again = False
    for notice in raw.notifies(timeout=timeout, stop_after=1):
        look_again |= notice.payload.endswith(NOTICE_LOOK_AGAIN)
    for notice in raw.notifies(timeout=0.001):
        look_again |= notice.payload.endswith(NOTICE_LOOK_AGAIN)
    return look_again
