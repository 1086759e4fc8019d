"""What one webhook delivery costs the worker, per event kind, in-process (issue 15's "worker time per event").

Posts GitHub pull-request webhooks (opened, pushed to, approved: `faults.Events`) through Tandem's WSGI app, then
processes each delivery as the worker's task does (`reviews.tasks.deliveries_process`: apply, evaluate, report)
against the fake GitHub in this process, and prints the CPU time of that call (this thread's only: the fake's own
threads do not count) and its queries, per event kind. Needs a migrated PostgreSQL database:

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/worker_cost.py [--pulls 30] [--profile]

Steadier than `feedback.py`'s worker figure on a shared machine: no Celery loop, no beat, no backlog.

`--https` serves the fake over TLS, as GitHub is reached in production (a self-signed certificate for 127.0.0.1,
trusted through a CA bundle of certifi's roots and it, so opening a connection costs what it costs against GitHub:
the bundle loaded, a handshake). `--profile` prints cProfile's figures in CPU time, the timer of the figures.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faults  # noqa: E402  (the fake GitHub and the webhook builders are the fault bench's)

KINDS = ("opened", "synchronize", "review")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions (cumulative, CPU)")
    parser.add_argument("--https", action="store_true", help="serve the fake GitHub over TLS, as GitHub is reached")
    parser.add_argument("--queries", action="store_true", help="print the SQL of the last pull request's events")
    parser.add_argument(
        "--suggestions",
        action="store_true",
        help="also run the reviewer suggestions a pass queued (`suggest_reviewers`), as the stack's worker does, and "
        "print their cost apart",
    )
    args = parser.parse_args()
    fake = faults.FakeGitHub(rate_limit=10**9)
    if args.https:
        faults.serve_over_tls(fake)
    fake.start()
    os.environ.update(
        DEBUG="false",
        SECRET_KEY="bench-" * 10,
        CONNECTION_SECRET_KEYS=base64.urlsafe_b64encode(b"k" * 32).decode(),
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        PUBLIC_URL="http://127.0.0.1",
        GITHUB_WEBHOOK_SECRET=faults.GITHUB_SECRET,
        GITHUB_TOKEN=fake.token,
        GITHUB_API_URL=fake.url,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django
    import urllib3

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reviews.integrations.github_api import GitHubClient
    from reviews.models import PullRequest, WebhookDelivery
    from reviews.tasks import deliveries_process, suggest_reviewers

    handler = WSGIHandler()
    spent = _spent_inside(
        {
            "GitHub calls": (GitHubClient, "_request"),
            "GitHub clients made": (GitHubClient, "__init__"),
            "connections opened": (
                urllib3.connection.HTTPSConnection if args.https else urllib3.connection.HTTPConnection,
                "connect",
            ),
        }
    )

    def post(send: faults.Send) -> None:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": send.path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(send.body),
            "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(send.body)), "CONTENT_TYPE": "application/json",
        }  # fmt: skip
        for name, value in send.headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        statuses: list[str] = []
        answer = handler(environ, lambda status, headers: statuses.append(status))
        answer.close()
        if not statuses[0].startswith("2"):
            raise RuntimeError(f"webhook answered {statuses[0]}")

    server_cpu = _server_cpu_reader(connection)
    cpu_server: dict[str, float] = defaultdict(float)
    events = faults.Events(fake, seed=int(time.time()))
    first = int(time.time()) % 100_000 * 100  # new pull request numbers on every run
    cpu: dict[str, float] = defaultdict(float)
    queries: dict[str, int] = defaultdict(int)
    counted: dict[str, int] = defaultdict(int)
    suggestions: dict[str, int] = defaultdict(int)
    cpu_suggesting: dict[str, float] = defaultdict(float)
    queries_suggesting: dict[str, int] = defaultdict(int)
    profile = cProfile.Profile(time.thread_time)  # CPU, as the figures: waits on PostgreSQL do not count
    warm_up = 3
    try:
        for index in range(args.pulls + warm_up):
            sends = events.github_pull(first + index)
            before_sending = faults.pushes_served_as_sent(fake, sends)
            for kind, send in zip(KINDS, sends, strict=True):
                before_sending(send)
                post(send)
                pk = WebhookDelivery.objects.get(provider="github", delivery_id=send.delivery_id).pk
                measured = index >= warm_up
                calls_before = len(fake.requests)
                server_before = server_cpu()
                started = time.thread_time()
                if measured and args.profile:
                    profile.enable()
                with CaptureQueriesContext(connection) as captured:
                    outcome = deliveries_process([pk], token="")
                if measured and args.profile:
                    profile.disable()
                if outcome != ["processed"]:
                    raise RuntimeError(f"delivery {pk}: {outcome}")
                if args.suggestions:
                    pull_request_id = PullRequest.objects.get(number=first + index).pk
                    started_suggesting = time.thread_time()
                    with CaptureQueriesContext(connection) as suggesting:
                        said = suggest_reviewers.run(pull_request_id)
                    if measured:
                        suggestions[said] += 1
                        cpu_suggesting[kind] += time.thread_time() - started_suggesting
                        queries_suggesting[kind] += len(suggesting)
                if args.queries and index == args.pulls + warm_up - 1:
                    for call in fake.requests[calls_before:]:
                        print(f"--- GitHub: {call.method} {call.path} {call.status}")
                    print(f"--- {kind}: {len(captured)} queries")
                    for query in captured:
                        print("   ", query["sql"][:300])
                if measured:
                    cpu[kind] += time.thread_time() - started
                    cpu_server[kind] += server_cpu() - server_before
                    queries[kind] += len(captured)
                    counted[kind] += 1
                else:
                    for figures in spent.values():
                        figures[:] = [0, 0.0]
    finally:
        fake.stop()
    print(f"worker cost per event, {args.pulls} pull requests (opened, pushed to, approved each)")
    for kind in KINDS:
        print(
            f"  {kind:12} {1000 * cpu[kind] / counted[kind]:6.1f} ms CPU  {queries[kind] / counted[kind]:5.1f} queries"
            f"  {1000 * cpu_server[kind] / counted[kind]:6.1f} ms PostgreSQL CPU"
        )
    events = sum(counted.values())
    print(
        f"  {'all':12} {1000 * sum(cpu.values()) / events:6.1f} ms CPU  (PostgreSQL's session:"
        f" {1000 * sum(cpu_server.values()) / events:.1f} ms, 10 ms ticks)"
    )
    if args.suggestions:
        print("reviewer suggestions after each event (`suggest_reviewers` run in-process):", dict(suggestions))
        for kind in KINDS:
            per_event = 1000 * cpu_suggesting[kind] / counted[kind]
            print(f"  {kind:12} {per_event:6.1f} ms CPU  {queries_suggesting[kind] / counted[kind]:5.1f} queries")
        print(f"  {'all':12} {1000 * sum(cpu_suggesting.values()) / events:6.1f} ms CPU")
    for name, (calls, seconds) in spent.items():
        print(f"  of which {name}: {calls / events:.2f} per event, {1000 * seconds / max(calls, 1):.2f} ms CPU each")
    if args.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(60)
        pstats.Stats(profile).sort_stats("cumulative").print_stats("/(reviews|telemetry)/", 60)
    return 0


def _server_cpu_reader(connection: Any) -> Callable[[], float]:
    """The CPU time so far of this connection's PostgreSQL server process, when it runs on this machine (its
    /proc entry readable), else always 0. Counted in the kernel's ticks (10 ms): meaningful over many events."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    stat = Path(f"/proc/{pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


def _spent_inside(methods: dict[str, tuple[type, str]]) -> dict[str, list[float]]:
    """Count the calls of these methods and the CPU spent inside them (outermost calls only), by name."""
    spent: dict[str, list[float]] = {}
    for name, (owner, attribute) in methods.items():
        figures = spent[name] = [0, 0.0]
        original = getattr(owner, attribute)

        def counted(*args: object, _original=original, _figures=figures, **kwargs: object) -> object:
            started = time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                _figures[0] += 1
                _figures[1] += time.thread_time() - started

        setattr(owner, attribute, counted)
    return spent


if __name__ == "__main__":
    sys.exit(main())
