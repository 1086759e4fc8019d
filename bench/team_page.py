"""Render time and query count of a team page, a filtered one, a drill-down list and its CSV as history grows
(500, 2,000 and 10,000 merged pull requests in the period, each with two reviews and a comment).

    .venv/bin/python bench/team_page.py

Runs on a throw-away SQLite database (or DATABASE_URL, if set); prints one table.
"""

from __future__ import annotations

import datetime as dt
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

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from reviews.models import Comment, Connection, Person, PullRequest, Repository, Review, Team  # noqa: E402


def grow(repository: Repository, people: list[Person], count: int, start: int) -> None:
    now = timezone.now()
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
    Comment.objects.bulk_create(
        Comment(
            pull_request=row,
            external_id=str(row.pk),
            author=people[(i + 2) % 5],
            body="Why?",
            created_at=row.ready_at + dt.timedelta(minutes=30),
        )  # fmt: skip
        for i, row in enumerate(rows)
    )


def main() -> None:
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
