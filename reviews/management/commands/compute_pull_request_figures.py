"""Backfill (or refresh) the stored review figures of every merged pull request, a batch at a time.

The migration that adds the table leaves it empty: computing 100,000 pull requests' figures takes the policy engine
minutes, too long for a migration. Pages compute what they read, and the beat's reconciler fills the rest; this
command does it all at once, e.g. right after the deploy.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviews.selectors.health import bot_ids
from reviews.services.figures import REFRESH_BATCH, pull_request_figures_refresh


class Command(BaseCommand):
    help = "Compute the stored review figures of merged pull requests that are missing, owed or outdated."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", type=int, default=REFRESH_BATCH, help="Pull requests per batch.")

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        bots = bot_ids()
        total = 0
        while stored := pull_request_figures_refresh(bots=bots, limit=batch):
            total += stored
            self.stdout.write(f"computed {total}")
        self.stdout.write(self.style.SUCCESS(f"done: {total} pull requests' figures computed"))
