"""Time and query count of one alerting run over every team, on org_year's history of 10,000 and of 100,000 pull
requests (a tenth as many deployments), with one injected drift: the payments team's pickup time doubles ten days
before the end of the year.

    DEBUG=true DATABASE_URL=postgres://.../tandem_bench .venv/bin/python bench/alerts_scale.py [--pulls 10000 100000]

For each size: build the year (wiping the database DATABASE_URL names), let the alerting run fill its stored daily
samples (a fresh install computes at most 14 missing days a run, so the first runs backfill), then time one steady
run, the one beat makes every hour: it recomputes the last three days and judges every team's eight figures on the
stored samples. Prints the backfill runs, the steady run's time and queries, and what was alerted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from org_year import Drift, build_org_year  # noqa: E402  (sets Django up)

from telemetry.models import FigureDay, TeamAlert  # noqa: E402
from telemetry.services.alerts import alerts_run  # noqa: E402


def measure(pulls: int, *, build: bool = True) -> dict[str, object]:
    anchor = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    drift = Drift(team="payments", figure="pickup", starts_at=anchor - dt.timedelta(days=10), factor=2.0)
    started = time.perf_counter()
    if build:
        build_org_year(pulls=pulls, deployments=pulls // 10, anchor=anchor, drifts=[drift], wipe=True)
    built = time.perf_counter() - started
    now = anchor + dt.timedelta(hours=1)
    backfill_runs, backfill_seconds = 0, 0.0
    while True:
        started = time.perf_counter()
        run = alerts_run(now=now)
        backfill_seconds += time.perf_counter() - started
        backfill_runs += 1
        if not run.days_computed or backfill_runs > 20:
            break
    reset_queries()  # the backfill filled Django's query log: count from empty
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        run = alerts_run(now=now)
        seconds = time.perf_counter() - started
    # The first run after midnight also computes the day that just ended: forget the last day, and time that run.
    FigureDay.objects.filter(day=run.last_day).delete()
    reset_queries()
    with CaptureQueriesContext(connection) as daily_queries:
        started = time.perf_counter()
        daily = alerts_run(now=now)
        daily_seconds = time.perf_counter() - started
    assert daily.days_computed == [run.last_day]
    alerts = [
        f"{alert.team.slug}/{alert.figure} {alert.value:.2f} vs {alert.baseline:.2f} ({len(alert.evidence)} evidence)"
        for alert in TeamAlert.objects.filter(closed_at=None).select_related("team").order_by("team__slug", "figure")
    ]
    return {
        "pulls": pulls,
        "build_s": round(built, 1),
        "backfill_runs": backfill_runs,
        "backfill_s": round(backfill_seconds, 1),
        "run_s": round(seconds, 3),
        "queries": len(queries.captured_queries),
        "assessed": run.assessed,
        "daily_s": round(daily_seconds, 3),
        "daily_queries": len(daily_queries.captured_queries),
        "open_alerts": alerts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pulls", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-build", action="store_true", help="measure on the history already there (same day)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    results = [measure(pulls, build=not args.no_build) for pulls in args.pulls]
    print(
        f"{'pull requests':>14} {'build s':>8} {'backfill':>16} {'run s':>7} {'queries':>8} {'assessed':>9} "
        f"{'run+day s':>10} {'queries':>8}"
    )
    for row in results:
        backfill = f"{row['backfill_runs']} runs {row['backfill_s']}s"
        print(
            f"{row['pulls']:>14} {row['build_s']:>8} {backfill:>16} {row['run_s']:>7} {row['queries']:>8} "
            f"{row['assessed']:>9} {row['daily_s']:>10} {row['daily_queries']:>8}"
        )
        for alert in row["open_alerts"]:  # type: ignore[attr-defined]
            print(f"{'':>14} open: {alert}")


if __name__ == "__main__":
    main()
