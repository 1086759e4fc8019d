"""Render time and query count of a team page, a filtered one, a drill-down list and its CSV as history grows
(500, 2,000 and 10,000 merged pull requests in the period, each with two reviews and a comment).

    .venv/bin/python bench/team_page.py
    DATABASE_URL=postgres://... .venv/bin/python bench/team_page.py --pulls 100000 [--runs 15] [--before-runs 3]
    DATABASE_URL=postgres://... .venv/bin/python bench/team_page.py --existing [--runs 15] [--profile]

Runs on a throw-away SQLite database (or DATABASE_URL, if set); prints one table. With --pulls, one history of that
many merged pull requests in the period (an empty database: PostgreSQL for 100,000): p50 and query count of the team
page and the health API with every figure computed from the flows on each read (`STORED_FIGURES` off: "before") and
from the stored per-pull-request figures ("after", once `compute_pull_request_figures` stored them), in one run
(`--before-runs 0`: stored only). With --existing, the database a `--pulls` run built (migrated since, its figures
computed again: `manage.py compute_pull_request_figures`): the stored figures' p50 only, and with --profile the
slowest SQL statements of one request of each page; run it with two checkouts' code against copies of one database
(`CREATE DATABASE ... TEMPLATE ...`) to compare them on the same history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")  # a development run: settings are fail-closed without it
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='tandem-bench-')}/bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from reviews.models import Comment, Connection, Person, PullRequest, Repository, Review, Team  # noqa: E402


def grow(
    repository: Repository,
    people: list[Person],
    count: int,
    start: int,
    *,
    spread: bool = False,
    earlier: dt.timedelta = dt.timedelta(0),
) -> None:
    """`count` merged pull requests numbered from `start`, in the 30 days before now, or before now - `earlier`."""
    if spread:
        grow_spread(repository, people, count, start, earlier=earlier)
        return
    now = timezone.now() - earlier
    rows = PullRequest.objects.bulk_create(
        PullRequest(
            repository=repository,
            number=start + i,
            title=f"Change {start + i}",
            author=people[i % 5],
            state="merged",
            created_at=now - dt.timedelta(days=29),
            updated_at=now,
            ready_at=now - dt.timedelta(days=29, hours=-(i % 7)),
            merged_at=now - dt.timedelta(days=i % 29, hours=1),
            first_commit_at=now - dt.timedelta(days=30),
            additions=i % 400,
            deletions=i % 37,
        )  # fmt: skip
        for i in range(count)
    )
    Review.objects.bulk_create(
        Review(
            pull_request=row,
            external_id=f"{row.pk}-{k}",
            reviewer=people[(i + k + 1) % 5],
            state="approved",
            submitted_at=row.ready_at + dt.timedelta(hours=1 + k),
        )  # fmt: skip
        for i, row in enumerate(rows)
        for k in range(2)
    )
    _comment_each(rows, people)


def _comment_each(rows: list[PullRequest], people: list[Person]) -> None:
    """A comment on each pull request, half an hour after it was ready."""
    Comment.objects.bulk_create(
        Comment(
            pull_request=row,
            external_id=str(row.pk),
            author=people[(i + 2) % 5],
            body="Why?",
            created_at=row.ready_at + dt.timedelta(minutes=30),
        )
        for i, row in enumerate(rows)
    )


def grow_spread(
    repository: Repository, people: list[Person], count: int, start: int, *, earlier: dt.timedelta = dt.timedelta(0)
) -> None:
    """`grow`, less kind: merges spread over every hour of the period and durations that seldom tie (log-normal
    waits in seconds), so every hour's rollup holds many histogram buckets and few ranks fall on a tie."""
    rng = random.Random(start)
    now = timezone.now().replace(microsecond=0) - earlier

    def wait(median_minutes: float) -> dt.timedelta:
        return dt.timedelta(seconds=round(rng.lognormvariate(math.log(median_minutes * 60), 1.2)))

    pulls = []
    for i in range(count):
        merged = now - dt.timedelta(seconds=rng.randrange(3600, 29 * 86400))
        ready = merged - wait(24 * 60)
        pulls.append(
            PullRequest(
                repository=repository,
                number=start + i,
                title=f"Change {start + i}",
                author=people[i % 5],
                state="merged",
                created_at=ready - wait(30),
                updated_at=now,
                ready_at=ready,
                merged_at=merged,
                first_commit_at=ready - wait(6 * 60),
                additions=int(rng.lognormvariate(4, 1.3)),
                deletions=int(rng.lognormvariate(2, 1.3)),
            )
        )
    rows = PullRequest.objects.bulk_create(pulls)
    reviews = []
    for i, row in enumerate(rows):
        first = row.ready_at + (row.merged_at - row.ready_at) * rng.uniform(0.05, 0.6)
        for k in range(2):
            at = first + (row.merged_at - first) * rng.uniform(0, 0.9) * k
            reviews.append(
                Review(
                    pull_request=row,
                    external_id=f"{row.pk}-{k}",
                    reviewer=people[(i + k + 1) % 5],
                    state="approved" if k else "commented",
                    submitted_at=at,
                )
            )
    Review.objects.bulk_create(reviews)
    _comment_each(rows, people)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pulls", type=int, help="one history of this many merged pull requests: before / after")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before-runs", type=int, default=3)
    parser.add_argument("--spread", action="store_true", help="with --pulls: merges in every hour, few ties")
    parser.add_argument(
        "--previous", action="store_true", help="with --pulls: as many in the previous 30 days (the page reads both)"
    )
    parser.add_argument("--existing", action="store_true", help="measure the database as it is (built before)")
    parser.add_argument("--profile", action="store_true", help="with --existing: the slowest statements")
    args = parser.parse_args()
    if args.existing:
        on_existing(runs=args.runs, profile=args.profile)
    elif args.pulls:
        at_scale(args.pulls, runs=args.runs, before_runs=args.before_runs, spread=args.spread, previous=args.previous)
    else:
        as_history_grows()


def _world() -> tuple[Repository, list[Person], Client]:
    call_command("migrate", verbosity=0)
    team = Team.objects.create(slug="bench", name="Bench")
    connection_row = Connection.objects.create(provider="github", name="bench", base_url="https://example.invalid")
    repository = Repository.objects.create(
        connection=connection_row, external_id="1", full_path="acme/bench", team=team
    )
    people = [Person.objects.create(display_name=f"P{i}") for i in range(5)]
    User.objects.create_superuser("bench", password="bench")
    client = Client()
    client.login(username="bench", password="bench")
    return repository, people, client


def at_scale(pulls: int, *, runs: int, before_runs: int, spread: bool = False, previous: bool = False) -> None:
    from reviews.selectors import health

    repository, people, client = _world()
    started = time.perf_counter()
    for start in range(0, pulls, 10_000):
        grow(repository, people, min(10_000, pulls - start), start + 1, spread=spread)
        if previous:
            earlier = dt.timedelta(days=30)
            grow(repository, people, min(10_000, pulls - start), pulls + start + 1, spread=spread, earlier=earlier)
    in_previous = ", as many in the previous period" if previous else ""
    print(
        f"history: {pulls} merged pull requests{in_previous}, 2 reviews and a comment each "
        f"({time.perf_counter() - started:.0f} s)"
    )
    urls = {"team page": "/teams/bench/", "health API": "/api/v1/teams/bench/health"}
    print(f"{'figures':>8} {'page':>11} {'runs':>5} {'p50 s':>8} {'min s':>8} {'queries':>8} {'cpu s':>8}")
    health.STORED_FIGURES = False
    for name, url in urls.items():
        if before_runs:
            _report("computed", name, url, client, before_runs)
    health.STORED_FIGURES = True
    started = time.perf_counter()
    call_command("compute_pull_request_figures", batch=2000, stdout=open(os.devnull, "w"))  # noqa: SIM115
    print(f"backfill (compute_pull_request_figures): {time.perf_counter() - started:.0f} s")
    for name, url in urls.items():
        _report("stored", name, url, client, runs)


def on_existing(*, runs: int, profile: bool) -> None:
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    merged = PullRequest.objects.filter(state="merged").count()
    print(f"history: {merged} merged pull requests (existing database)")
    urls = {"team page": "/teams/bench/", "health API": "/api/v1/teams/bench/health"}
    print(f"{'figures':>8} {'page':>11} {'runs':>5} {'p50 s':>8} {'min s':>8} {'queries':>8} {'cpu s':>8}")
    for name, url in urls.items():
        _report("stored", name, url, client, runs)
    if profile:
        for name, url in urls.items():
            _profile(name, url, client)


def _profile(name: str, url: str, client: Client) -> None:
    timings: list[tuple[float, str]] = []

    def timed(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.perf_counter() - started, sql))

    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        _fetch(client, url)
    total = time.perf_counter() - started
    in_sql = sum(seconds for seconds, _ in timings)
    print(f"{name}: {total:.3f} s, {in_sql:.3f} s in {len(timings)} statements; the slowest:")
    for seconds, sql in sorted(timings, reverse=True)[:8]:
        print(f"  {seconds:7.3f} s  {sql[:160]}")


def _report(kind: str, name: str, url: str, client: Client, runs: int) -> None:
    _fetch(client, url)  # warm
    times, cpu = [], []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started, started_cpu = time.perf_counter(), time.process_time()
            _fetch(client, url)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    p50 = statistics.median(times)
    queries = len(captured.captured_queries)
    # CPU: this process's (Django's) alone, not PostgreSQL's; less sensitive to the other helpers' load.
    print(f"{kind:>8} {name:>11} {runs:>5} {p50:>8.3f} {min(times):>8.3f} {queries:>8} {statistics.median(cpu):>8.3f}")


def as_history_grows() -> None:
    repository, people, client = _world()
    urls = {
        "team page": "/teams/bench/",
        "filtered": f"/teams/bench/?repository={repository.pk}&size=m",
        "drill-down": "/teams/bench/pulls/?metric=pickup_time&sort=-pickup_time",
        "CSV": "/teams/bench/pulls.csv?metric=merged",
    }
    print(f"{'merged PRs':>10} {'page':>12} {'queries':>8} {'render s':>9}")
    total = 0
    for size in (500, 2000, 10000):
        grow(repository, people, size - total, total + 1)
        total = size
        for name, url in urls.items():
            _fetch(client, url)  # warm
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                _fetch(client, url)
                elapsed = time.perf_counter() - started
            print(f"{size:>10} {name:>12} {len(captured.captured_queries):>8} {elapsed:>9.3f}")


def _fetch(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, url
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
