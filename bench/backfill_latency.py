"""Does a long backfill delay verdicts? Webhook → `tandem/review-policy` latency with and without a backfill running.

Runs the production stack as `bench/feedback.py` does (private PostgreSQL and Redis, gunicorn, the delivery
dispatcher, beat, DEBUG off, the project's fake GitHub), with production's two workers: one for the latency-critical
queues (`webhooks,reports,housekeeping`) and one for the rest (`celery,sync,correlation`), each `-c 2`, as the
compose file runs them. The fake serves repositories of `--pulls` pull requests each (30% open).

Windows of `--seconds` at `--rate` events/s alternate: quiet, then with a full backfill of a fresh repository queued
just before the window opens (so it runs throughout), repeated `--rounds` times (A B A B …). Prints each window's
p50 / p95 / max and how far its backfill got, and the ratio of the median p95s. Issue 16's goal: a 10,000-pull-
request backfill raises the p95 by no more than 20%.

    .venv/bin/python bench/backfill_latency.py [--pulls 10000] [--rate 20] [--seconds 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402
from feedback import run_rate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAST_QUEUES = "webhooks,reports,housekeeping"
BACKGROUND_QUEUES = "celery,sync,correlation"

QUEUE_BACKFILL = """
from reviews.services.sync import repository_for_sync
from reviews.services.enqueue import repository_syncs_enqueue
repository = repository_for_sync(provider="github", full_path={path!r})
repository_syncs_enqueue(repository_ids=[repository.pk])  # no watermark yet: the whole history
print(repository.pk)
"""


def queue_backfill(stack: faults.Stack, path: str) -> int:
    """Tandem learns of the repository (one API call) and queues its full sync on the sync queue."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", QUEUE_BACKFILL.format(path=path)],
        cwd=ROOT,
        env=stack.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def pull_requests_stored(stack: faults.Stack, repository_id: int) -> int:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM reviews_pullrequest WHERE repository_id = %s", [repository_id])
        return int(row.fetchone()[0])  # type: ignore[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", default=os.environ.get("FEEDBACK_KEEP", "") == "1")
    args = parser.parse_args()
    idle = faults.busy_share(2.0)
    fake = faults.FakeGitHub(rate_limit=10**9).start()
    backfills = [f"acme/monolith-{round_}" for round_ in range(args.rounds)]
    for path in backfills:
        fake.seed_repository(path, n_pulls=args.pulls, reviews_per_pull=2, commits_per_pull=3, files_per_pull=4)
    stack = faults.Stack(fake, keep=args.keep)
    windows: list[tuple[str, dict[str, float], str]] = []
    try:
        faults.log(f"private services in {stack.dir}")
        stack.start_postgres()
        stack.start_redis()
        stack.migrate()
        stack.start_web()
        stack.start_worker(queues=FAST_QUEUES)
        stack.start_worker(name="background", queues=BACKGROUND_QUEUES)
        stack.start_beat()
        stack.start_dispatcher()
        events = faults.Events(fake, seed=16)
        time.sleep(5)  # the workers and the dispatcher connect
        first = 1
        for path in backfills:
            faults.log(f"quiet: {args.rate:g} events/s for {args.seconds:g} s")
            windows.append(("quiet", run_rate(stack, fake, events, args.rate, args.seconds, first), ""))
            first += int(args.rate * args.seconds) + 10
            repository_id = queue_backfill(stack, path)
            time.sleep(3)  # the backfill is under way before the window opens
            before = pull_requests_stored(stack, repository_id)
            faults.log(f"backfill of {path} under way ({before} stored): {args.rate:g} events/s for {args.seconds:g} s")
            row = run_rate(stack, fake, events, args.rate, args.seconds, first)
            after = pull_requests_stored(stack, repository_id)
            windows.append(("backfill", row, f"{before}→{after} of {args.pulls} pull requests stored"))
            first += int(args.rate * args.seconds) + 10
    finally:
        stack.stop()
        fake.stop()
    print()
    print(
        f"backfill_latency: webhook → tandem/review-policy at {args.rate:g} events/s, quiet vs a {args.pulls:,}-pull-"
        f"request backfill (machine busy before the run: {idle:.0%} of 2 cores)"
    )
    print(f"  {'window':<9} {'events':>7} {'heads':>6} {'status':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  backfill")
    for name, row, progress in windows:
        print(
            f"  {name:<9} {row['events']:>7.0f} {row['heads']:>6.0f} {row['with status']:>7.0f} {row['p50']:>7.2f} "
            f"{row['p95']:>7.2f} {row['max']:>7.2f}  {progress}"
        )
    quiet = statistics.median(row["p95"] for name, row, _ in windows if name == "quiet")
    busy = statistics.median(row["p95"] for name, row, _ in windows if name == "backfill")
    print(f"  median p95: quiet {quiet:.2f} s, during a backfill {busy:.2f} s, ratio {busy / quiet:.2f} (goal ≤ 1.20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
