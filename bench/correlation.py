"""Time of ranking one incident's suspect changes over a year of history: 10,000 production deployments and
100,000 merged pull requests (each with two changed files, an approval and a comment), 200 earlier incidents with
confirmed causes, spread over five services of one repository.

    .venv/bin/python bench/correlation.py [DEPLOYMENTS] [PULL_REQUESTS_PER_DEPLOYMENT]

Runs on a throw-away SQLite database under a temporary directory (or DATABASE_URL, if set: give it an empty
database); prints the build time, then the time and the number of queries of one ranking, several times over.
"""

from __future__ import annotations

import datetime as dt
import os
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

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from reviews.models import Person, Team  # noqa: E402
from telemetry.models import Incident, Service, ServiceRepository, SuspectChange  # noqa: E402
from telemetry.services.correlation import incident_correlate  # noqa: E402
from tests.factories import RepositoryFactory  # noqa: E402
from tests.telemetry.scale import build_history  # noqa: E402

SERVICES = 5
RUNS = 7
END = dt.datetime(2025, 12, 31, 12, tzinfo=dt.UTC)


def build(deployments: int, per_deployment: int) -> Incident:
    team = Team.objects.create(slug="bench", name="Bench")
    repository = RepositoryFactory(full_path="acme/monolith", team=team)
    people = [Person.objects.create(display_name=f"Dev {n}") for n in range(40)]
    spacing = dt.timedelta(days=365) / (deployments // SERVICES)
    number = 1
    services = []
    for index in range(SERVICES):
        service = Service.objects.create(slug=f"service-{index}", name=f"Service {index}", team=team)
        ServiceRepository.objects.create(service=service, repository=repository)
        number = build_history(
            service=service,
            repository=repository,
            people=people,
            deployments=deployments // SERVICES,
            pull_requests_per_deployment=per_deployment,
            end=END - dt.timedelta(minutes=7 * index),
            spacing=spacing,
            first_number=number,
            confirmed_every=max(1, deployments // SERVICES // 40),
            seed=index,
        )
        services.append(service)
    incident = Incident.objects.create(title="Checkout down", source="bench", external_id="now", started_at=END)
    incident.services.set(services[:1])
    return incident


def main(deployments: int, per_deployment: int) -> None:
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    incident = build(deployments, per_deployment)
    built = time.perf_counter() - started
    print(
        f"Correlation bench on {connection.vendor}: {deployments:,} deployments, "
        f"{deployments * per_deployment:,} pull requests, {SERVICES} services (built in {built:.0f}s)\n"
    )
    print(f"{'run':<6} {'suspects':>9} {'queries':>8} {'seconds':>9}")
    timings = []
    for run in range(1, RUNS + 1):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            incident_correlate(incident_id=incident.pk)
            elapsed = time.perf_counter() - began
        timings.append(elapsed)
        suspects = SuspectChange.objects.filter(incident=incident).count()
        print(f"{run:<6} {suspects:>9} {len(queries):>8} {elapsed:>9.3f}")
    print(f"\nmedian {statistics.median(timings):.3f}s, best {min(timings):.3f}s (the first run writes the rows)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 10)
