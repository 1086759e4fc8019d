"""Webhook ingest: how close is Tandem's acknowledgement to the least a receiver can do?

Runs gunicorn (2 workers × 4 threads, DEBUG off) against a private PostgreSQL, serving Tandem and, in the same
process, a bare view that checks the HMAC and inserts the raw body in one statement (`bench/ingest_wsgi.py`).

1. Throughput: 16 client threads post signed GitHub webhooks (each a new delivery) as fast as answers come, for
   `--seconds` to one endpoint, then to the other, interleaved A B B A A B … (`--rounds` of each); the figures are the
   median of each endpoint's rounds and the median of the rounds' ratios (each round's Tandem over the bare round
   beside it; issue 15's goal: ≥ 0.8), with their spread (lowest–highest).
2. Latency at a fixed rate: an open-loop sender at `--rate` requests/s (200), whatever the answers take, for
   `--seconds` to Tandem's endpoint, then the bare one, interleaved (`--latency-rounds` of each); prints each
   window's p50 / p99 / max and the median p99 of each endpoint (goal: Tandem's p99 < 25 ms). The bare view's
   windows are the machine's floor: what the same sender, gunicorn and PostgreSQL give the least a receiver can do.
   "Late" counts the sends the sender itself started more than 5 ms after their time (its own jitter: a busy
   machine starving the client, which then sends in bursts).

    .venv/bin/python bench/ingest.py [--seconds 6] [--rounds 5] [--rate 200] [--latency-rounds 3]

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
from dataclasses import dataclass
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


LATE_SECONDS = 0.005


@dataclass
class Window:
    """One fixed-rate window: the latencies of the 2xx answers (sorted), the other answers, and the late sends."""

    latencies: list[float]
    failed: int
    late: int

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(share * len(self.latencies)))]


def fixed_rate(client: Client, path: str, rate: float, seconds: float) -> Window:
    latencies: list[float] = []
    counts = {"failed": 0, "late": 0}
    lock = threading.Lock()

    def one(due: float) -> None:
        late = time.monotonic() - due > LATE_SECONDS
        status, took = client.post(path)
        with lock:
            counts["late"] += late
            if 200 <= status < 300:
                latencies.append(took)
            else:
                counts["failed"] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for index in range(int(rate * seconds)):
            due = started + index / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one, due)
    return Window(sorted(latencies), counts["failed"], counts["late"])


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    """A list of figures as "median (lowest–highest)"."""
    return (
        f"{scale * statistics.median(values):.{digits}f} "
        f"({scale * min(values):.{digits}f}–{scale * max(values):.{digits}f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--latency-rounds", type=int, default=3)
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
        for path in (TANDEM, BARE):  # warm both at full concurrency (connections, the Connection cache, every thread)
            throughput(client, path, 2.0)
        figures: dict[str, list[float]] = {TANDEM: [], BARE: []}
        ratios: list[float] = []
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
            ratios.append(figures[TANDEM][-1] / max(1.0, figures[BARE][-1]))
        load_latency = os.getloadavg()[0]
        windows: dict[str, list[Window]] = {TANDEM: [], BARE: []}
        client_cpu, sent = time.process_time(), 0
        for round_number in range(args.latency_rounds):
            for path in (TANDEM, BARE) if round_number % 2 == 0 else (BARE, TANDEM):
                time.sleep(IDLE_SECONDS)  # the previous window's last answers and commits are done
                window = fixed_rate(client, path, args.rate, args.seconds)
                windows[path].append(window)
                sent += len(window.latencies) + window.failed
                faults.log(f"latency {round_number + 1}: {path} p99 {1000 * window.percentile(0.99):.1f} ms")
        client_cpu = (time.process_time() - client_cpu) / max(1, sent)
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=20)
        stack.stop()
        fake.stop()
    report(args, figures, ratios, costs, windows, refused=refused, idle=idle, load_before=load_before[0],
           load_latency=load_latency, client_cpu=client_cpu)  # fmt: skip
    return 0


def report(
    args: argparse.Namespace,
    figures: dict[str, list[float]],
    ratios: list[float],
    costs: dict[str, dict[str, list[float]]],
    windows: dict[str, list[Window]],
    *,
    refused: int,
    idle: float,
    load_before: float,
    load_latency: float,
    client_cpu: float,
) -> None:
    tandem, bare = statistics.median(figures[TANDEM]), statistics.median(figures[BARE])
    print()
    print(
        f"ingest (machine busy before the run: {idle:.0%} of 2 cores; load average {load_before:.2f} before, "
        f"{load_latency:.2f} before the latency windows, {os.getloadavg()[0]:.2f} after; {args.rounds} rounds of "
        f"{args.seconds:g} s)"
    )
    for path, name in ((TANDEM, "Tandem's webhook endpoint"), (BARE, "bare HMAC + insert view")):
        rounds = ", ".join(f"{value:.0f}" for value in figures[path])
        print(f"  {name:30} {statistics.median(figures[path]):6.0f} acknowledged/s   (rounds: {rounds})")
    print(
        f"  ratio of the medians (goal >= 0.8) {tandem / bare:5.2f}; of the rounds: median {spread(ratios, digits=2)}"
        f"; non-2xx answers: {refused}"
    )
    for path, name in ((TANDEM, "Tandem"), (BARE, "bare")):
        web_ms, db_ms = (1000 * statistics.median(costs[path][part]) for part in ("web", "db"))
        print(
            f"  CPU per acknowledgement, {name:6}  gunicorn {web_ms:5.2f} ms, PostgreSQL {db_ms:5.2f} ms; "
            f"{statistics.median(costs[path]['xact']):.2f} PostgreSQL transactions"
        )
    print(f"  at {args.rate:g}/s, windows of {args.seconds:g} s (the client's CPU: {1000 * client_cpu:.2f} ms a send)")
    for path, name in ((TANDEM, "Tandem"), (BARE, "bare")):
        if not windows[path]:
            continue
        each = "; ".join(
            f"{1000 * window.percentile(0.5):.1f} / {1000 * window.percentile(0.99):.1f} / "
            f"{1000 * window.latencies[-1] if window.latencies else float('nan'):.0f}"
            f"{f', {window.failed} failed' if window.failed else ''}{f', {window.late} late' if window.late else ''}"
            for window in windows[path]
        )
        p99s = [window.percentile(0.99) for window in windows[path]]
        goal = " (goal < 25 ms)" if path == TANDEM else ""
        print(f"    {name:6} p99 {spread(p99s, 1000, 1)} ms{goal}; p50 / p99 / max ms per window: {each}")


if __name__ == "__main__":
    sys.exit(main())
