"""`python manage.py seed_demo`: the demo organisation, deterministic and idempotent."""

from __future__ import annotations

import random
import time
from typing import Any

from django.core.management.base import BaseCommand

from reviews.demo import demo_anchor, demo_figures_store, demo_pull_requests_count, seed_review_demo
from telemetry.demo import seed_telemetry

SEED = 20261126


class Command(BaseCommand):
    help = (
        "Write a realistic demo organisation (3 teams, 15 people, 5 repositories, ~1,600 pull requests over 90 "
        "days, pairing, deployments, incidents) through Tandem's ingestion services. Running it again changes "
        "nothing; --if-empty skips it when demo data is already there."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when the demo is already seeded.")
        parser.add_argument("--scale", type=float, default=1.0, help="Fraction of the pull requests to write.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and demo_pull_requests_count() > 0:
            self.stdout.write("Demo data already present; skipping (run seed_demo without --if-empty to rewrite).")
            return
        self._started = started = time.monotonic()
        anchor = demo_anchor()
        rng = random.Random(SEED)
        pulls = seed_review_demo(
            anchor=anchor, rng=random.Random(rng.random()), progress=self._progress, scale=options["scale"]
        )
        self._progress("services and deployments")
        figures = seed_telemetry(anchor=anchor, rng=random.Random(rng.random()), progress=self._progress)
        # Otherwise the first hit of /teams/ and of each team page would compute every merged pull request's figures.
        self._progress("stored figures of the merged pull requests")
        demo_figures_store()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {pulls} pull requests, {figures['deployments']} deployments, "
                f"{figures['incidents']} incidents ({time.monotonic() - started:.0f}s)."
            )
        )

    def _progress(self, message: str) -> None:
        self.stdout.write(f"  {time.monotonic() - self._started:5.1f}s  seeding {message}")
