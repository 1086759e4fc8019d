"""How many GitHub API calls a sync costs: a full sync of 1,000 pull requests, then a re-sync of the unchanged repo.

Runs the real client (`reviews.integrations.github_api.GitHubClient`, PyGithub underneath) against the fake GitHub
on 127.0.0.1, seeded with pull requests of 2 reviews, 3 commits, 4 files and 2 comments each. No Django.

    .venv/bin/python bench/github_sync_calls.py [--pulls 1000] [--per-page 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reviews.integrations.github_api import GitHubClient  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402

REPO = "octocat/Hello-World"


def _sync(client: GitHubClient, watermark: dt.datetime | None) -> tuple[int, dt.datetime | None]:
    """List what changed since the watermark and fetch each one's details: (pull requests seen, new watermark)."""
    seen = 0
    newest = watermark
    for pull in client.pull_requests_since(REPO, watermark):
        client.pull_request_details(REPO, pull.number)
        seen += 1
        newest = pull.updated_at if newest is None else max(newest, pull.updated_at)
    return seen, newest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulls", type=int, default=1000)
    parser.add_argument("--per-page", type=int, default=100)
    args = parser.parse_args()

    # A GitHub App on Enterprise Cloud gets 15,000 requests an hour; a personal token 5,000 (see below).
    with FakeGitHub(rate_limit=15_000) as github:
        started = time.perf_counter()
        github.seed_repository(REPO, n_pulls=args.pulls, reviews_per_pull=2, commits_per_pull=3, files_per_pull=4)
        seeded = time.perf_counter() - started

        client = GitHubClient(github.url, github.token, per_page=args.per_page)
        started = time.perf_counter()
        seen, watermark = _sync(client, None)
        full_seconds = time.perf_counter() - started
        full_calls, full_counted = client.api_calls, client.api_calls_rate_limited
        list_calls = sum(1 for request in github.requests if request.path.endswith("/pulls"))

        etags = dict(client.etags)
        resync = GitHubClient(github.url, github.token, per_page=args.per_page, etags=etags)
        started = time.perf_counter()
        resynced, _ = _sync(resync, watermark)
        resync_seconds = time.perf_counter() - started

        github.touch_pull(REPO, args.pulls // 2)
        one_change = GitHubClient(github.url, github.token, per_page=args.per_page, etags=dict(resync.etags))
        changed, _ = _sync(one_change, watermark)

    print(f"seeded {args.pulls} pull requests in {seeded:.3f}s")
    print(f"full sync: {seen} pull requests, {full_calls} API calls ({full_counted} count against the rate limit)")
    detail_calls = full_calls - list_calls
    print(
        f"  = {list_calls} list pages + {detail_calls} detail calls "
        f"({detail_calls / max(seen, 1):.1f} a pull request), {full_seconds:.1f}s against the fake"
    )
    print(f"  a 5,000/hour token full-syncs about {5000 * seen // full_calls} pull requests an hour")
    print(
        f"re-sync, unchanged: {resynced} pull requests, {resync.api_calls} API call(s) "
        f"({resync.api_calls_rate_limited} counted against the rate limit), {resync_seconds * 1000:.1f}ms"
    )
    print(
        f"re-sync after one pull request changed: {changed} pull request(s), {one_change.api_calls} API calls "
        f"({one_change.api_calls_rate_limited} counted)"
    )


if __name__ == "__main__":
    main()
