"""What one webhook acknowledgement costs in Python, Tandem's against the bare HMAC + insert view, in-process.

`ingest.py`'s rates move by a factor of two on a shared machine; this calls the same WSGI app
(`bench/ingest_wsgi.py`: Tandem and the bare view, DEBUG off, against a private PostgreSQL) directly from one thread,
with no sockets and no client, and prints the thread's CPU per request (waits on PostgreSQL do not count), the
endpoints interleaved A B A B. `--profile` prints cProfile's figures for Tandem's endpoint, in CPU time.

    .venv/bin/python bench/ingest_cpu.py [--requests 2000] [--rounds 4] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import json
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faults  # noqa: E402  (the private PostgreSQL and the production environment are the fault bench's)
from ingest import stores_started  # noqa: E402

TANDEM, BARE = "/webhooks/github/", "/bench/bare/"


def requester(app: Callable[..., Any]) -> Callable[[str], str]:
    body = json.dumps(json.loads((faults.GITHUB_FIXTURES / "pull_request.opened.json").read_text())).encode()
    signature = "sha256=" + hmac.new(faults.GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()

    def post(path: str) -> str:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)), "HTTP_X_GITHUB_EVENT": "pull_request",
            "HTTP_X_GITHUB_DELIVERY": str(uuid.uuid4()), "HTTP_X_HUB_SIGNATURE_256": signature,
        }  # fmt: skip
        statuses: list[str] = []
        response = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(response)
        response.close()  # request_finished: what gunicorn does after each request
        return statuses[0]

    return post


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    fake = faults.FakeGitHub(rate_limit=10**9).start()
    stack = faults.Stack(fake, keep=False)
    profile = cProfile.Profile(time.thread_time)
    costs: dict[str, list[float]] = {TANDEM: [], BARE: []}
    try:
        stores_started(stack)
        os.environ.update(stack.env)
        import ingest_wsgi  # noqa: PLC0415  (Django is set up from the stack's environment)

        post = requester(ingest_wsgi.application)
        for path in (TANDEM, BARE):  # warm: the connection, the Connection cache, imports
            for _ in range(100):
                status = post(path)
            if not status.startswith("202"):
                raise RuntimeError(f"{path} answered {status}")
        per_round = max(1, args.requests // args.rounds)
        for round_number in range(args.rounds):
            for path in (TANDEM, BARE) if round_number % 2 == 0 else (BARE, TANDEM):
                profiled = args.profile and path == TANDEM
                started = time.thread_time()
                if profiled:
                    profile.enable()
                for _ in range(per_round):
                    post(path)
                if profiled:
                    profile.disable()
                costs[path].append((time.thread_time() - started) / per_round)
    finally:
        stack.stop()
        fake.stop()
    tandem, bare = (1000 * statistics.median(costs[path]) for path in (TANDEM, BARE))
    print()
    print(f"ingest CPU in-process (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)")
    for name, path, median in (("Tandem", TANDEM, tandem), ("bare", BARE, bare)):
        rounds = ", ".join(f"{1000 * value:.2f}" for value in costs[path])
        profiled = "  (profiled: not comparable)" if args.profile and path == TANDEM else ""
        print(f"  {name:6} {median:6.2f} ms of CPU per request   (rounds: {rounds}){profiled}")
    print(f"  bare / Tandem {bare / tandem:5.2f}")
    if args.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats("/(reviews|telemetry|config)/", 40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
