"""Does a long backfill delay verdicts? Webhook → `tandem/review-policy` latency with and without a backfill running.

Runs the production stack as `bench/feedback.py` does (private PostgreSQL and Redis, gunicorn, the delivery
dispatcher, beat, DEBUG off, the project's fake GitHub), with production's two workers started as the Makefile's
`worker-fast` and `worker-background` targets start them (their queues, and the background worker's `nice`), each
`-c 2`. The fake serves repositories of `--pulls` pull requests each (30% open), from a process of its own
(`fake_github_process.py`): in the bench's process it shared a GIL with the senders and the status timing.

Each head's latency is timed from its pull request's first webhook (opened) to the first status on it: the fake
serves the pushed head from the start, so timed from the push (as `feedback.py` does) a fast pass made it negative.
A warm-up of `--warmup` seconds at the rate (not counted) comes first: the first quiet window used to pay the
workers' start. Windows of `--seconds` at `--rate` events/s alternate: quiet, then with a full backfill of a fresh
repository queued just before the window opens (so it runs throughout), repeated `--rounds` times (A B A B …). After
each backfill window the backfill is cancelled, so that the next quiet window is quiet: the background worker is
killed, what it had queued or held is taken off the broker, the repository is deactivated and its evaluation debt
written off, the worker is started again, and the next window waits until the latency-critical queues are empty.

Each window prints p50 / p95 / max, how far its backfill got, and where the fast path's time went, sampled every
0.5 s: the depth of the `webhooks` queue (mean / max), the CPU seconds of the fast worker, the background worker
and PostgreSQL, how many samples saw a backend waiting on a lock, and the fast worker's task runs by task (count,
seconds). Then the ratio of the median p95s. Issue 16's goal: a 10,000-pull-request backfill raises the p95 by no
more than 20%.

`--ab`: each round has two backfill windows (each after its quiet window), one with the background lane's pacing
(reviews.services.pacing, the settings' default) and one without (`BACKGROUND_PACING_MAX_WAIT=0` for the background
worker), in alternating order; a ratio is printed for each.

    .venv/bin/python bench/backfill_latency.py [--pulls 10000] [--rate 20] [--seconds 30] [--rounds 2] [--ab]
                                               [--warmup 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402
from fake_github_process import FakeGitHubProcess  # noqa: E402
from feedback import cpu_seconds, run_rate  # noqa: E402
from scale_out import makefile_queues  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LATENCY_CRITICAL = ("webhooks", "reports", "housekeeping")

QUEUE_BACKFILL = """
from reviews.services.sync import repository_for_sync
from reviews.services.enqueue import repository_syncs_enqueue
repository = repository_for_sync(provider="github", full_path={path!r})
repository_syncs_enqueue(repository_ids=[repository.pk])  # no watermark yet: the whole history
print(repository.pk)
"""


def makefile_prefix(target: str) -> list[str]:
    """What the Makefile's worker target puts before `celery` (e.g. `nice -n 10`): production's OS priority."""
    recipe = (ROOT / "Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    line = next(line for line in recipe.splitlines() if "celery" in line)
    words = shlex.split(line.strip())
    return words[: next(i for i, word in enumerate(words) if word.endswith("/celery"))]


def queue_backfill(stack: faults.Stack, path: str) -> int:
    """Tandem learns of the repository (one API call) and queues its full sync on the sync queue."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", QUEUE_BACKFILL.format(path=path)],
        cwd=ROOT,
        env=stack.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def pull_requests_stored(stack: faults.Stack, repository_id: int) -> int:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM reviews_pullrequest WHERE repository_id = %s", [repository_id])
        return int(row.fetchone()[0])  # type: ignore[index]


class Workers:
    """Production's two workers, the background one with the Makefile's prefix (its OS priority)."""

    def __init__(self, stack: faults.Stack) -> None:
        self.stack = stack
        self.fast_queues = makefile_queues("worker-fast")
        self.background_queues = makefile_queues("worker-background")
        self.prefix = makefile_prefix("worker-background")
        self.fast: subprocess.Popen[bytes] | None = None
        self.background: subprocess.Popen[bytes] | None = None

    def start_fast(self) -> None:
        self.stack.start_worker(name="fast", queues=self.fast_queues, loglevel="INFO")
        self.fast = self.stack.more[-1]

    def start_background(self, *, paced: bool = True) -> None:
        """`paced`: as configured (the default: on); otherwise with pacing off."""
        command = [str(faults.BIN / "celery"), "-A", "config", "worker", "-c", "2", "--loglevel=INFO"]
        command += ["-n", "background@%h", "-Q", self.background_queues, *faults.WORKER_OPTIONS]
        configured = self.stack.env
        if not paced:
            self.stack.env = {**configured, "BACKGROUND_PACING_MAX_WAIT": "0"}
        try:
            self.background = self.stack._spawn("background", [*self.prefix, *command])  # noqa: SLF001
        finally:
            self.stack.env = configured
        self.stack.more.append(self.background)

    def kill_background(self) -> None:
        assert self.background is not None
        os.killpg(self.background.pid, signal.SIGKILL)
        self.background.wait()


def cancel_backfill(
    stack: faults.Stack, workers: Workers, broker: redis.Redis, repository_id: int, *, paced_next: bool
) -> None:
    """End the backfill as an operator would: the background worker killed, its queues emptied and what it held
    taken off the broker, the repository deactivated and its pull requests' evaluation debt written off (nothing
    left for the reconciler to pick up in the next quiet window), the worker started again."""
    workers.kill_background()
    background = set(workers.background_queues.split(",")) - set(LATENCY_CRITICAL)
    broker.delete(*background)
    for tag, raw in broker.hgetall("unacked").items():  # kombu's Redis transport: messages a worker holds
        if json.loads(raw)[-1] in background:  # [message, exchange, routing key]
            broker.hdel("unacked", tag)
            broker.zrem("unacked_index", tag)
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("UPDATE reviews_repository SET is_active = false WHERE id = %s", [repository_id])
        conn.execute(
            "UPDATE reviews_pullrequest SET evaluation_owed_since = NULL WHERE repository_id = %s", [repository_id]
        )
    cache = redis.Redis(port=broker.connection_pool.connection_kwargs["port"], db=1)
    for key in cache.scan_iter(f"*sync-repository:{repository_id}"):
        cache.delete(key)
    workers.start_background(paced=paced_next)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and sum(broker.llen(queue) for queue in LATENCY_CRITICAL):
        time.sleep(0.5)
    time.sleep(3)


class Profile:
    """Samples, every half second while a window runs, where the fast path's time goes."""

    def __init__(self, stack: faults.Stack, workers: Workers, broker: redis.Redis, fake_pid: int) -> None:
        self.stack, self.workers, self.broker, self.fake_pid = stack, workers, broker, fake_pid
        self.depths: list[int] = []
        self.lock_waits = 0
        self.samples = 0
        self.cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._log_offsets: dict[str, int] = {}

    def _cpu(self) -> dict[str, float]:
        assert self.workers.fast is not None and self.workers.background is not None
        postmaster = int((self.stack.dir / "pg" / "postmaster.pid").read_text().split()[0])
        return {
            "fast": cpu_seconds(self.workers.fast.pid),
            "background": cpu_seconds(self.workers.background.pid),
            "postgres": cpu_seconds(postmaster),  # and its backends
            "fake GitHub": cpu_seconds(self.fake_pid),
        }

    def __enter__(self) -> Profile:
        self.cpu = self._cpu()
        for name in ("fast", "background"):
            log = self.stack.dir / f"{name}.log"
            self._log_offsets[name] = log.stat().st_size if log.exists() else 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        after = self._cpu()
        self.cpu = {name: after[name] - self.cpu[name] for name in after}

    def _run(self) -> None:
        with psycopg.connect(self.stack.database_url, autocommit=True) as conn:
            while not self._stop.wait(0.5):
                self.depths.append(int(self.broker.llen("webhooks")))
                waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                self.lock_waits += int(waiting.fetchone()[0] > 0)  # type: ignore[index]
                self.samples += 1

    def tasks(self, name: str) -> dict[str, tuple[int, float]]:
        """Task runs the worker logged as succeeded since the window opened: count and seconds, by task."""
        with (self.stack.dir / f"{name}.log").open("rb") as log:
            log.seek(self._log_offsets.get(name, 0))
            text = log.read().decode(errors="replace")
        counts: Counter[str] = Counter()
        seconds: Counter[str] = Counter()
        for task, took in re.findall(r"Task [\w.]+\.(\w+)\[[0-9a-f-]+\] succeeded in ([\d.]+)s", text):
            counts[task] += 1
            seconds[task] += float(took)
        return {task: (counts[task], seconds[task]) for task in counts}

    def summary(self) -> str:
        depth = f"{statistics.mean(self.depths):.1f}/{max(self.depths)}" if self.depths else "-"
        fast = ", ".join(f"{task} {n} in {s:.0f} s" for task, (n, s) in sorted(self.tasks("fast").items()))
        background = ", ".join(f"{task} {n}" for task, (n, _) in sorted(self.tasks("background").items()))
        cpu = ", ".join(f"{name} {seconds:.0f}" for name, seconds in self.cpu.items())
        return (
            f"webhooks queue {depth}; CPU s {cpu}; lock waits in {self.lock_waits}/{self.samples} samples\n"
            f"            fast worker ran: {fast or 'nothing'}\n            background ran: {background or 'nothing'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--ab", action="store_true", help="a paced and an unpaced backfill window in each round")
    parser.add_argument("--keep", action="store_true", default=os.environ.get("FEEDBACK_KEEP", "") == "1")
    args = parser.parse_args()
    load_before = os.getloadavg()
    idle = faults.busy_share(2.0)
    fake = FakeGitHubProcess(rate_limit=10**9).start()
    plan = backfill_plan(args.rounds, ab=args.ab)
    for path, _ in plan:
        fake.seed_repository(path, n_pulls=args.pulls, reviews_per_pull=2, commits_per_pull=3, files_per_pull=4)
    stack = faults.Stack(fake, keep=args.keep)  # type: ignore[arg-type]
    stack.env["CELERY_TRACE_LOG_LEVEL"] = "INFO"  # each task run's line, with its duration
    workers = Workers(stack)
    windows: list[tuple[str, dict[str, float], str, str]] = []
    try:
        faults.log(f"private services in {stack.dir}")
        stack.start_postgres()
        stack.start_redis()
        broker = redis.Redis(port=stack.redis_port, db=0)
        stack.migrate()
        stack.start_web()
        workers.start_fast()
        workers.start_background(paced=plan[0][1])
        stack.worker = workers.fast  # what run_rate reads the CPU of
        stack.start_beat()
        stack.start_dispatcher()
        events = faults.Events(fake, seed=16)  # type: ignore[arg-type]
        time.sleep(5)  # the workers and the dispatcher connect
        faults.log(f"warm-up: {args.rate:g} events/s for {args.warmup:g} s (not counted)")
        run_rate(stack, fake, events, args.rate, args.warmup, 1)
        first = int(args.rate * args.warmup) + 10
        for index, (path, paced) in enumerate(plan):
            faults.log(f"quiet: {args.rate:g} events/s for {args.seconds:g} s")
            with Profile(stack, workers, broker, fake.pid) as profile:
                row = run_rate(stack, fake, events, args.rate, args.seconds, first, from_first_event=True)
            windows.append(("quiet", row, "", profile.summary()))
            first += int(args.rate * args.seconds) + 10
            repository_id = queue_backfill(stack, path)
            time.sleep(3)  # the backfill is under way before the window opens
            before = pull_requests_stored(stack, repository_id)
            label = ("paced" if paced else "unpaced") if args.ab else "backfill"
            faults.log(f"{label} backfill of {path} ({before} stored): {args.rate:g} events/s for {args.seconds:g} s")
            with Profile(stack, workers, broker, fake.pid) as profile:
                row = run_rate(stack, fake, events, args.rate, args.seconds, first, from_first_event=True)
                after = pull_requests_stored(stack, repository_id)
            progress = f"{before}→{after} of {args.pulls} pull requests stored"
            windows.append((label, row, progress, profile.summary()))
            first += int(args.rate * args.seconds) + 10
            faults.log("cancelling the backfill")
            paced_next = plan[index + 1][1] if index + 1 < len(plan) else True
            cancel_backfill(stack, workers, broker, repository_id, paced_next=paced_next)
    finally:
        stack.stop()
        fake.stop()
    print()
    print(
        f"backfill_latency: webhook → tandem/review-policy at {args.rate:g} events/s, quiet vs a {args.pulls:,}-pull-"
        f"request backfill (machine busy before the run: {idle:.0%} of 2 cores; load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; background worker: "
        f"{' '.join(workers.prefix) or 'no prefix'})"
    )
    print(f"  {'window':<9} {'events':>7} {'heads':>6} {'status':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  backfill")
    for name, row, progress, profiled in windows:
        print(
            f"  {name:<9} {row['events']:>7.0f} {row['heads']:>6.0f} {row['with status']:>7.0f} {row['p50']:>7.2f} "
            f"{row['p95']:>7.2f} {row['max']:>7.2f}  {progress}"
        )
        print(f"            {profiled}")
    quiet = statistics.median(row["p95"] for name, row, _, _ in windows if name == "quiet")
    for label in dict.fromkeys(name for name, _, _, _ in windows if name != "quiet"):
        busy = statistics.median(row["p95"] for name, row, _, _ in windows if name == label)
        print(f"  median p95: quiet {quiet:.2f} s, {label} {busy:.2f} s, ratio {busy / quiet:.2f} (goal ≤ 1.20)")
    return 0


def backfill_plan(rounds: int, *, ab: bool) -> list[tuple[str, bool]]:
    """(repository, paced) for each backfill window: one per round, or with `ab` two, paced first in even rounds."""
    modes = (
        [[True]] * rounds
        if not ab
        else [[True, False] if round_ % 2 == 0 else [False, True] for round_ in range(rounds)]
    )
    paced = [mode for round_modes in modes for mode in round_modes]
    return [(f"acme/monolith-{index}", mode) for index, mode in enumerate(paced)]


if __name__ == "__main__":
    sys.exit(main())
