"""API calls and time of Tandem's sync (repository_sync, with its database writes) against the fake GitHub
and GitLab, for a repository of 1,000 pull requests: a full sync, then a re-sync with nothing changed, then a
re-sync after 10 pull requests changed.

    .venv/bin/python bench/sync_calls.py [N]

Runs on a throw-away SQLite database under var/ (or DATABASE_URL, if set); prints one table.
"""

from __future__ import annotations

import os
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

from django.core.management import call_command  # noqa: E402

from reviews.models import Connection, Repository  # noqa: E402
from reviews.services.sync import repository_for_sync, repository_sync  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.fakes.gitlab import FakeGitLab  # noqa: E402


def measure(label: str, repository: Repository) -> None:
    started = time.perf_counter()
    run = repository_sync(repository=repository)
    repository.refresh_from_db()
    print(f"{label:<44} {run.pull_requests_synced:>7} {run.api_calls:>10} {time.perf_counter() - started:>9.2f}")


def main(n: int) -> None:
    call_command("migrate", verbosity=0)
    print(f"Tandem sync against the fakes: {n} pull requests, each ~2 reviews, 3 commits, 4 files\n")
    print(f"{'run':<44} {'synced':>7} {'API calls':>10} {'seconds':>9}")
    with FakeGitHub(rate_limit=50_000) as github:
        github.seed_repository("acme/big", n_pulls=n)
        connection = Connection.objects.create(
            provider="github", name="bench GitHub", base_url=github.url, api_token=github.token
        )
        repository = repository_for_sync(provider="github", full_path="acme/big", connection=connection)
        measure("GitHub full sync", repository)
        measure("GitHub re-sync, nothing changed (one 304)", repository)
        for number in range(1, 11):
            github.touch_pull("acme/big", number)
        measure("GitHub re-sync, 10 pull requests changed", repository)
    with FakeGitLab() as gitlab:
        gitlab.seed_project("acme/big", n_merge_requests=n)
        connection = Connection.objects.create(
            provider="gitlab", name="bench GitLab", base_url=gitlab.url, api_token=gitlab.token
        )
        repository = repository_for_sync(provider="gitlab", full_path="acme/big", connection=connection)
        measure("GitLab full sync", repository)
        measure("GitLab re-sync, nothing changed", repository)
        for iid in range(1, 11):
            gitlab.touch_merge_request("acme/big", iid)
        measure("GitLab re-sync, 10 merge requests changed", repository)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
