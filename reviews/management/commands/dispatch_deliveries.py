"""`manage.py dispatch_deliveries`: hand new webhook deliveries to workers the moment they are stored.

The web process stores a delivery and announces it with PostgreSQL NOTIFY once it is committed; this process
LISTENs, and hands every due delivery to a worker (batched when a backlog waits), so acknowledging a webhook
never waits for a broker and a broker outage never slows acknowledgements. Between notices it looks every
`--poll` seconds anyway (retries whose backoff ran out, leases that expired, SQLite). It keeps no state: run one
or several; a row one dispatcher is leasing is skipped by the others, and beat's `dispatch_due_deliveries` is the
fallback when none runs.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection

from reviews.services.webhooks import DELIVERY_CHANNEL, webhook_deliveries_dispatch

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
        failures = 0
        listening = False
        reclaimed_at = -RECLAIM_SECONDS
        while not self.stopping:
            try:
                if not listening:
                    listening = _listen()
                reclaim = time.monotonic() - reclaimed_at >= RECLAIM_SECONDS
                webhook_deliveries_dispatch(
                    send=process_webhook_deliveries.delay, budget=max(poll, 1.0) * 5, reclaim=reclaim
                )
                if reclaim:
                    reclaimed_at = time.monotonic()
                if once:
                    return
                _wait_for_notice(poll, listening=listening)
                failures = 0
            except Exception:
                # PostgreSQL restarted, or the broker is away: the leased rows wait out their lease and are sent again.
                logger.exception("dispatcher: could not dispatch; trying again")
                connection.close()
                listening = False
                time.sleep(RECONNECT_WAIT[min(failures, len(RECONNECT_WAIT) - 1)])
                failures += 1

    def _stop(self, *_: object) -> None:
        self.stopping = True


def _listen() -> bool:
    if connection.vendor != "postgresql":
        return False
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {DELIVERY_CHANNEL}")
    return True


def _wait_for_notice(timeout: float, *, listening: bool) -> None:
    """Return at the first notice (then take every other one already waiting), or after `timeout`."""
    if not listening:
        time.sleep(timeout)
        return
    raw = connection.connection
    for _ in raw.notifies(timeout=timeout, stop_after=1):
        break
    for _ in raw.notifies(timeout=0.001):
        pass
