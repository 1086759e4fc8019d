"""p50 render time and queries of the team page, a pull request page, the drill-down list, /teams/ and /me/ on the
demo data.

    DATABASE_URL=... .venv/bin/python bench/pages.py [--runs 15]

Uses DATABASE_URL as it is (seed it first: `manage.py seed_demo`); signs in as the demo's Ada Okafor (a lead of
Payments), creating her login when it is missing. "CPU p50" is the request's own CPU time (this thread's): on a
machine shared with other work it moves far less than the wall time, so compare code on it as well.

    ROOT=/path/to/other/checkout .venv/bin/python bench/pages.py   # the same bench against another checkout's code
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from reviews.models import Person, PullRequest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    person = Person.objects.get(display_name="Ada Okafor")
    user = person.user or User.objects.create_user("bench-ada")
    if person.user_id is None:
        Person.objects.filter(pk=person.pk).update(user=user)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    pull_request = PullRequest.objects.filter(repository__team__slug="payments", state="merged").latest("merged_at")
    pages = {
        "team page": "/teams/payments/",
        "team page 365d": "/teams/payments/?days=365",
        "pull request": f"/pulls/{pull_request.pk}/",
        "drill-down": "/teams/payments/pulls/?metric=merged",
        "/teams/": "/teams/",
        "/me/": "/me/",
    }
    print(f"{'page':<15} {'queries':>8} {'p50 ms':>8} {'max ms':>8} {'CPU p50':>8}")
    for name, url in pages.items():
        assert client.get(url).status_code == 200, url
        times, cpu = [], []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as captured:
                started, started_cpu = time.perf_counter(), time.thread_time()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - started_cpu) * 1000)
        print(
            f"{name:<15} {len(captured.captured_queries):>8} {statistics.median(times):>8.0f} {max(times):>8.0f} "
            f"{statistics.median(cpu):>8.0f}"
        )


if __name__ == "__main__":
    main()
