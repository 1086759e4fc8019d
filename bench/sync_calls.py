"""REST calls, GraphQL calls and GraphQL points of Tandem's sync (repository_sync, with its database writes) against
the fake GitHub and GitLab: a full backfill, a re-sync with nothing changed, a re-sync after 10 pull requests
changed. Each provider is run twice on fresh fakes: through GraphQL (the default, `SYNC_GRAPHQL`) and REST only.

    .venv/bin/python bench/sync_calls.py [--pulls 10000] [--rest-pulls 1000] [--only github|gitlab]

The REST-only runs use `--rest-pulls` (a REST backfill costs about 6 calls a pull request: 10,000 take ~10
minutes here); their calls grow linearly with it. Runs on a throw-away SQLite database under a temporary directory
(or DATABASE_URL, if set); prints one table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")  # a development run: settings are fail-closed without it
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='tandem-bench-')}/bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from reviews.models import Connection, Repository  # noqa: E402
from reviews.services import sync  # noqa: E402
from reviews.services.sync import repository_for_sync, repository_sync  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.fakes.gitlab import FakeGitLab  # noqa: E402

HEADER = f"{'run':<52} {'synced':>7} {'REST calls':>10} {'GraphQL calls':>13} {'points':>7} {'seconds':>8}"


def _graphql_path(fake: Any) -> str:
    return "/graphql" if isinstance(fake, FakeGitHub) else "/api/graphql"


def measure(label: str, fake: Any, repository: Repository, *, graphql: bool) -> None:
    fake.requests.clear()
    points_before = getattr(fake, "graphql_points_used", 0)
    started = time.perf_counter()
    run = repository_sync(repository=repository, graphql=graphql)
    seconds = time.perf_counter() - started
    repository.refresh_from_db()
    graphql_calls = sum(1 for request in fake.requests if request.path == _graphql_path(fake))
    rest_calls = run.api_calls - graphql_calls  # the fake's log also holds the statuses evaluations posted
    points = getattr(fake, "graphql_points_used", 0) - points_before
    print(f"{label:<52} {run.pull_requests_synced:>7} {rest_calls:>10} {graphql_calls:>13} {points:>7} {seconds:>8.1f}")


def github(n: int, *, graphql: bool) -> None:
    mode = "GraphQL" if graphql else "REST only"
    with FakeGitHub(rate_limit=10_000_000) as fake:
        fake.graphql_remaining = 10_000_000  # the bench counts points; it does not wait for an hour's budget
        fake.seed_repository("acme/big", n_pulls=n)
        connection = Connection.objects.create(
            provider="github", name=f"bench GitHub {mode}", base_url=fake.url, api_token=fake.token
        )
        repository = repository_for_sync(provider="github", full_path="acme/big", connection=connection)
        measure(f"GitHub {mode}: full backfill of {n:,}", fake, repository, graphql=graphql)
        measure(f"GitHub {mode}: re-sync, nothing changed", fake, repository, graphql=graphql)
        measure(f"GitHub {mode}: re-sync, nothing changed (ETag kept)", fake, repository, graphql=graphql)
        for number in range(n // 2, n // 2 + 10):
            fake.touch_pull("acme/big", number)
        measure(f"GitHub {mode}: incremental, 10 changed", fake, repository, graphql=graphql)


def gitlab(n: int, *, graphql: bool) -> None:
    mode = "GraphQL" if graphql else "REST only"
    with FakeGitLab(rate_limit=10_000_000) as fake:
        fake.seed_project("acme/big", n_merge_requests=n)
        connection = Connection.objects.create(
            provider="gitlab", name=f"bench GitLab {mode}", base_url=fake.url, api_token=fake.token
        )
        repository = repository_for_sync(provider="gitlab", full_path="acme/big", connection=connection)
        measure(f"GitLab {mode}: full backfill of {n:,}", fake, repository, graphql=graphql)
        measure(f"GitLab {mode}: re-sync, nothing changed", fake, repository, graphql=graphql)
        for iid in range(n // 2, n // 2 + 10):
            fake.touch_merge_request("acme/big", iid)
        measure(f"GitLab {mode}: incremental, 10 changed", fake, repository, graphql=graphql)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulls", type=int, default=10_000)
    parser.add_argument("--rest-pulls", type=int, default=1_000)
    parser.add_argument("--only", choices=("github", "gitlab"))
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Sync's own calls are measured: the evaluations it queues for open pull requests (statuses posted, run
    # eagerly here) are not sync calls, and would make a 10,000 backfill take most of an hour.
    sync.pull_request_evaluations_enqueue = lambda **_: None  # type: ignore[assignment]
    print("Tandem sync against the fakes: each pull request ~2 reviews, 3 commits, 4 files, 30% open\n")
    print(HEADER)
    if args.only in (None, "github"):
        github(args.pulls, graphql=True)
        github(args.rest_pulls, graphql=False)
    if args.only in (None, "gitlab"):
        gitlab(args.pulls, graphql=True)
        gitlab(args.rest_pulls, graphql=False)


if __name__ == "__main__":
    main()
