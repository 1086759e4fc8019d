"""How many GitLab API calls a sync costs, against the fake GitLab (no Django, no database).

    .venv/bin/python bench/gitlab_sync_calls.py [--merge-requests 1000]

A full sync lists every merge request and fetches the details of each; a re-sync lists what changed since the
watermark (the newest `updated_at` seen) and fetches details only for merge requests whose `updated_at` moved:
GitLab's `updated_after` is inclusive, so the merge request at the watermark comes back and is skipped by
comparing with what the first sync stored. Every sync uses a fresh client, as a Celery task would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from reviews.integrations.gitlab_api import GitLabClient  # noqa: E402
from tests.fakes.gitlab import FakeGitLab  # noqa: E402

PROJECT = "acme/monolith"


@dataclass
class Run:
    label: str
    listed: int
    detailed: int
    calls: int
    seconds: float


def sync(
    fake: FakeGitLab,
    label: str,
    stored: dict[int, dt.datetime],
    *,
    since: dt.datetime | None,
    reuse_listed: bool = True,
    pagination: str = "auto",
) -> Run:
    client = GitLabClient(fake.url, fake.token, pagination=pagination)  # type: ignore[arg-type]
    started = time.perf_counter()
    listed = detailed = 0
    for pull_request in client.merge_requests_since(PROJECT, since):
        listed += 1
        if stored.get(pull_request.number) == pull_request.updated_at:
            continue  # unchanged since the last sync
        client.merge_request_details(PROJECT, pull_request.number, pull_request=pull_request if reuse_listed else None)
        stored[pull_request.number] = pull_request.updated_at
        detailed += 1
    return Run(label, listed, detailed, client.api_calls, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merge-requests", type=int, default=1000)
    args = parser.parse_args()
    count = args.merge_requests

    runs: list[Run] = []
    with FakeGitLab(rate_limit=1_000_000) as fake:  # the bench counts calls; it does not test throttling
        seeded = time.perf_counter()
        fake.seed_project(
            PROJECT, n_merge_requests=count, approvals_per_mr=2, notes_per_mr=2, commits_per_mr=3, diffs_per_mr=4
        )
        seed_seconds = time.perf_counter() - seeded

        stored: dict[int, dt.datetime] = {}
        runs.append(sync(fake, "full sync", stored, since=None))
        watermark = max(stored.values())
        runs.append(sync(fake, "re-sync, nothing changed", stored, since=watermark))
        for iid in range(1, 11):
            fake.touch_merge_request(PROJECT, iid)
        runs.append(sync(fake, "re-sync, 10 merge requests changed", stored, since=watermark))
        runs.append(sync(fake, "full sync, details fetch the MR again", {}, since=None, reuse_listed=False))
        runs.append(sync(fake, "full sync, offset pagination", {}, since=None, pagination="offset"))

    with FakeGitLab(keyset_merge_requests=False, rate_limit=1_000_000) as gitlab_com_like:
        gitlab_com_like.seed_project(PROJECT, n_merge_requests=count)
        runs.append(sync(gitlab_com_like, "full sync, server refuses keyset (405)", {}, since=None))

    print(f"GitLab sync API calls: {count} merge requests, each with 2 approvals, 2 notes (+2 approval system notes),")
    print(f"3 commits, 4 diffs; per_page=100; fake seeded in {seed_seconds:.2f}s")
    print()
    print(f"{'run':<42} {'listed':>7} {'detailed':>9} {'API calls':>10} {'calls/MR':>9} {'seconds':>8}")
    for run in runs:
        per_mr = f"{run.calls / run.detailed:.2f}" if run.detailed else "-"
        print(f"{run.label:<42} {run.listed:>7} {run.detailed:>9} {run.calls:>10} {per_mr:>9} {run.seconds:>8.2f}")


if __name__ == "__main__":
    main()
