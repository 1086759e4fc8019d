"""Time and query count of a deploy check (issue 18: under 300 ms, queries independent of history size) on the
org_year history.

    DEBUG=true DATABASE_URL=postgres://.../tandem_bench .venv/bin/python bench/deploy_check.py [--build 100000]

With `--build N` it first builds N pull requests (and N/10 deployments) with `org_year` (wiping the database);
else it uses the history already there. Then it checks, for every service, a production deployment of its
repository's newest main-line commit (what a CI job would ask before shipping), `--rounds` times each, and prints
p50/p95/max of the time, the query counts, the batch sizes and the levels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from org_year import build_org_year  # noqa: E402 - sets Django up

from reviews.models import PullRequest  # noqa: E402
from telemetry.models import Service  # noqa: E402
from telemetry.services.deploy_check import deploy_check  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", type=int, default=0, help="build this many pull requests first (wipes)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if args.build:
        build_org_year(pulls=args.build, deployments=args.build // 10, wipe=True, progress=print)
    history = PullRequest.objects.count()
    times: list[float] = []
    queries: list[int] = []
    shipping_queries: list[int] = []  # checks whose batch is not empty (an empty one skips the review facts)
    sizes: list[int] = []
    levels: Counter[str] = Counter()
    services = list(Service.objects.prefetch_related("repositories").order_by("slug"))
    for _ in range(args.rounds):
        for service in services:
            repository = service.repositories.get()
            tip = (
                PullRequest.objects.filter(repository=repository, state=PullRequest.State.MERGED)
                .order_by("-merged_at")
                .values_list("merge_commit_sha", flat=True)
                .first()
            )
            if tip is None:
                continue
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                check = deploy_check(service=service, environment="production", sha=tip)
                times.append(time.perf_counter() - started)
            queries.append(len(captured.captured_queries))
            if check.pull_requests:
                shipping_queries.append(len(captured.captured_queries))
            sizes.append(len(check.pull_requests))
            levels[str(check.level)] += 1
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"history: {history} pull requests; {len(times)} checks over {len(services)} services")
    print(
        f"time ms: p50 {statistics.median(times) * 1000:.0f}  p95 {p95 * 1000:.0f}  max {times[-1] * 1000:.0f}"
        f"   queries: min {min(queries)} max {max(queries)}"
        f" (non-empty batches: {min(shipping_queries, default=0)}-{max(shipping_queries, default=0)})"
        f"   batch: median {statistics.median(sizes):.0f} max {max(sizes)}   levels: {dict(levels)}"
    )


if __name__ == "__main__":
    main()
