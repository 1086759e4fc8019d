"""Compute every per-hour and per-day rollup of the stored review figures (`FiguresRollup`, `FiguresDailyRollup`)
again from the rows.

The writers keep the rollups right as they store or delete rows; this command is for when the rows were changed by
other means (a restore, a manual fix) or to check them: the pages read the rollups, not the rows, for whole hours.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviews.services.figures import rollups_rebuild


class Command(BaseCommand):
    help = "Compute the per-hour and per-day rollups of the stored review figures again from the stored rows."

    def handle(self, *args: Any, **options: Any) -> None:
        built = rollups_rebuild()
        self.stdout.write(self.style.SUCCESS(f"done: {built} hourly rollups (and their days)"))
