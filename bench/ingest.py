"""Webhook ingest: how close is Tandem's acknowledgement to the least a receiver can do?

Runs gunicorn (2 workers × 4 threads, DEBUG off) against a private PostgreSQL, serving Tandem and, in the same
process, a bare view that checks the HMAC and inserts the raw body in one statement (`bench/ingest_wsgi.py`).

1. Throughput: 16 client threads post signed GitHub webhooks (each a new delivery) as fast as answers come, for
   `--seconds` to one endpoint, then to the other, interleaved A B A B (`--rounds`); the figure is the median of
   each, and their ratio (Tandem / bare; issue 15's goal: ≥ 0.8).
2. Latency at a fixed rate: an open-loop sender at `--rate` requests/s (200) to Tandem's endpoint, whatever the
   answers take; prints p50 / p99 / max (goal: p99 < 25 ms).

    .venv/bin/python bench/ingest.py [--seconds 8] [--rounds 3] [--rate 200]

The client runs on the same 2 cores as the server, so both endpoints pay for it alike; the ratio is the figure.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402  (the private PostgreSQL and the production environment are the fault bench's)
from feedback import cpu_seconds  # noqa: E402

TANDEM, BARE = "/webhooks/github/", "/bench/bare/"
IDLE_SECONDS = 1.0


def stores_started(stack: faults.Stack) -> None:
    """The stack's private PostgreSQL (migrated, with the bare view's table) and Redis, for `ingest_wsgi`."""
    stack.start_postgres()
    stack.start_redis()
    stack.migrate()
    with psycopg.connect(stack.database_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_raw_delivery (id bigserial PRIMARY KEY, delivery_id text UNIQUE, body text)")


def _body_template() -> dict:
    return json.loads((faults.GITHUB_FIXTURES / "pull_request.opened.json").read_text())


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        # One body, signed once: each request is a new delivery by its header. Encoding and signing 25 kB per request,
        # and `requests` (1.7 ms of CPU per request at load 7), cost the client CPU the servers share: a keep-alive
        # http.client connection per thread is what the client needs.
        self.body = json.dumps(_body_template()).encode()
        self.signature = "sha256=" + hmac.new(faults.GITHUB_SECRET.encode(), self.body, hashlib.sha256).hexdigest()
        self.local = threading.local()

    def post(self, path: str) -> tuple[int, float]:
        connection = getattr(self.local, "connection", None)
        if connection is not None and time.monotonic() - self.local.used > IDLE_SECONDS:
            connection.close()  # gunicorn closes a connection idle for its keep-alive (2 s): reconnect before that
        if connection is None or connection.sock is None:
            connection = self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": self.signature,
        }
        started = time.perf_counter()
        try:
            connection.request("POST", path, body=self.body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnects on the next request
            status = 0
        self.local.used = time.monotonic()
        return status, time.perf_counter() - started


def _commits(stack: faults.Stack) -> int:
    """Transactions committed in the bench's database so far (a `SELECT 1` health check is one, a notice another),
    as PostgreSQL's statistics say: each backend reports them within a second, so a round's count is close."""
    url = stack.database_url.replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(1.1)")  # what the backends did before is reported by now
        found = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(found[0]) if found else 0


def throughput(client: Client, path: str, seconds: float, threads: int = 16) -> tuple[float, int]:
    """Closed loop: accepted answers per second, and how many answers were not 2xx."""
    stop = time.monotonic() + seconds
    counts = [0, 0]
    lock = threading.Lock()

    def work() -> None:
        ok = bad = 0
        while time.monotonic() < stop:
            status, _ = client.post(path)
            if 200 <= status < 300:
                ok += 1
            else:
                bad += 1
        with lock:
            counts[0] += ok
            counts[1] += bad

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts[0] / seconds, counts[1]


def fixed_rate(client: Client, path: str, rate: float, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def one() -> None:
        status, took = client.post(path)
        with lock:
            if 200 <= status < 300:
                latencies.append(took)
            else:
                failures[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for index in range(int(rate * seconds)):
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one)
    return sorted(latencies), failures[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    idle = faults.busy_share(2.0)
    fake = faults.FakeGitHub(rate_limit=10**9).start()
    stack = faults.Stack(fake, keep=False)
    web = None
    try:
        stores_started(stack)
        web = subprocess.Popen(  # noqa: S603
            [str(faults.BIN / "gunicorn"), "bench.ingest_wsgi", "--bind", f"127.0.0.1:{stack.web_port}",
             "--workers", "2", "--threads", "4", "--timeout", "60"],
            cwd=faults.ROOT, env={**stack.env, "PYTHONPATH": str(faults.ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = Client(stack.url)
        deadline = time.monotonic() + 60
        while client.post(BARE)[0] != 202:
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer")
            time.sleep(0.3)
        for path in (TANDEM, BARE):  # warm both (connections, the Connection cache)
            throughput(client, path, 1.0, threads=4)
        figures: dict[str, list[float]] = {TANDEM: [], BARE: []}
        # CPU per acknowledgement, by process: gunicorn (its workers) and PostgreSQL (its backends). Steadier than
        # the rates on a busy machine: it is what each request costs, whoever else wants the cores.
        costs: dict[str, dict[str, list[float]]] = {path: {"web": [], "db": [], "xact": []} for path in (TANDEM, BARE)}
        postmaster = int((stack.dir / "pg" / "postmaster.pid").read_text().split()[0])
        refused = 0
        for round_number in range(args.rounds):
            for path in (TANDEM, BARE) if round_number % 2 == 0 else (BARE, TANDEM):
                web_cpu, db_cpu, commits = cpu_seconds(web.pid), cpu_seconds(postmaster), _commits(stack)
                rate, bad = throughput(client, path, args.seconds)
                served = max(1.0, rate * args.seconds)
                costs[path]["web"].append((cpu_seconds(web.pid) - web_cpu) / served)
                costs[path]["db"].append((cpu_seconds(postmaster) - db_cpu) / served)
                costs[path]["xact"].append((_commits(stack) - commits) / served)
                figures[path].append(rate)
                refused += bad
                faults.log(f"round {round_number + 1}: {path} {rate:.0f}/s")
        client_cpu = time.process_time()
        latencies, failed = fixed_rate(client, TANDEM, args.rate, args.seconds)
        client_cpu = (time.process_time() - client_cpu) / max(1, len(latencies) + failed)
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=20)
        stack.stop()
        fake.stop()
    tandem, bare = statistics.median(figures[TANDEM]), statistics.median(figures[BARE])
    print()
    print(
        f"ingest (machine busy before the run: {idle:.0%} of 2 cores; load average {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; {args.rounds} rounds of {args.seconds:g} s)"
    )
    print(
        f"  Tandem's webhook endpoint       {tandem:8.0f} acknowledged/s   (rounds: "
        f"{', '.join(f'{value:.0f}' for value in figures[TANDEM])})"
    )
    print(
        f"  bare HMAC + insert view         {bare:8.0f} acknowledged/s   (rounds: "
        f"{', '.join(f'{value:.0f}' for value in figures[BARE])})"
    )
    print(f"  ratio (goal >= 0.8)             {tandem / bare:8.2f}      non-2xx answers: {refused}")
    for path, name in ((TANDEM, "Tandem"), (BARE, "bare")):
        web_ms, db_ms = (1000 * statistics.median(costs[path][part]) for part in ("web", "db"))
        print(
            f"  CPU per acknowledgement, {name:6}  gunicorn {web_ms:5.2f} ms, PostgreSQL {db_ms:5.2f} ms; "
            f"{statistics.median(costs[path]['xact']):.2f} PostgreSQL transactions"
        )
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        print(
            f"  at {args.rate:g}/s for {args.seconds:g} s: p50 {1000 * statistics.median(latencies):.1f} ms, "
            f"p99 {1000 * p99:.1f} ms (goal < 25 ms), max {1000 * latencies[-1]:.1f} ms, "
            f"{len(latencies)} acknowledged, {failed} not; the client's CPU {1000 * client_cpu:.2f} ms per request"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
