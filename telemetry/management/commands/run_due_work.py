"""`python manage.py run_due_work`: beat's dispatchers of due work, for the embedded default.

Production runs Celery beat, which every few seconds hands due work to workers: webhook deliveries and chat notices
whose retry came due. The embedded default (`make run`) has no beat and runs tasks inline; `make run` starts this
loop beside the web server, so a failed webhook or chat notice is retried there too, on the same backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand

from reviews.tasks import dispatch_due_deliveries
from telemetry.tasks import dispatch_due_chat_notices

logger = logging.getLogger(__name__)

DISPATCHERS: tuple[tuple[str, Callable[[], int]], ...] = (
    ("webhook deliveries", dispatch_due_deliveries),
    ("chat notices", dispatch_due_chat_notices),
)


def run_due_work_once() -> dict[str, int]:
    """Run each dispatcher once, inline; one that fails is logged and the others still run."""
    handed: dict[str, int] = {}
    for name, dispatch in DISPATCHERS:
        try:
            handed[name] = dispatch()
        except Exception:
            logger.exception("dispatching due %s failed; trying again on the next round", name)
            handed[name] = 0
    return handed


class Command(BaseCommand):
    help = "Hand due webhook deliveries and chat notices to their tasks, every few seconds (or --once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="One round, then exit.")
        parser.add_argument("--every", type=float, default=5.0, help="Seconds between rounds (default 5).")

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            handed = run_due_work_once()
            if any(handed.values()):
                self.stdout.write("handed over: " + ", ".join(f"{n} {name}" for name, n in handed.items() if n))
            if options["once"]:
                return
            time.sleep(options["every"])
