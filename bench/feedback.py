"""The feedback loop at load: how long from a webhook to `tandem/review-policy` accepted by GitHub?

Runs the production stack exactly as `bench/faults.py` does (private PostgreSQL and Redis, gunicorn, the delivery
dispatcher, a Celery worker and beat, DEBUG off) against the project's fake GitHub, which records when each status
arrives. Open-loop senders post GitHub pull-request webhooks at each rate for a fixed time, whatever the answers
take (a sender that waited for answers would hide a backlog): each pull request is opened, pushed to (a new head)
and approved. For every push that brings a new head, the latency is from its send to the first status on that
head. Prints p50 / p95 / max per rate, and the worker's CPU time per event, split by where it went (`bench/
worker_probe.py`): in the delivery's processing itself (`reviews.tasks.deliveries_process`, what `worker_cost.py`
measures in-process), in other tasks (beat's), and outside any task body (Celery's message handling and pool, the
signal handlers, the task wrapper) — the overhead, as a figure; and the dispatcher's CPU per event.

    .venv/bin/python bench/feedback.py [--rates 20,50,100] [--seconds 30] [--https] [--root CHECKOUT] [--where]

`--root` runs the stack from another checkout (main's, say) with this bench, so that base and branch are measured
alike. `--where` samples the worker's stacks outside the delivery's processing and prints where its CPU went.

Environment: FEEDBACK_RATES, FEEDBACK_SECONDS, FEEDBACK_KEEP=1 (keep the logs). Issue 15's goal on this machine:
p95 < 0.5 s at 20 events/s, < 2 s at 50 events/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402  (the stack, the fake and the webhook builders are the fault bench's)

WAIT_FOR_STATUSES = 120.0
BENCH = Path(__file__).resolve().parent


def probe_read(folder: Path) -> dict[str, float | Counter[str]]:
    """What the worker's processes counted so far (`bench/worker_probe.py`), added up."""
    body = others = deliveries_tasks = 0.0
    deliveries_runs = 0
    samples: Counter[str] = Counter()
    by_task: Counter[str] = Counter()
    connects: Counter[str] = Counter()
    for path in folder.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        body += state["body"]["cpu"]
        for name, (runs, cpu) in state["tasks"].items():
            if name.startswith("reviews.tasks.process_webhook_deliver"):
                deliveries_tasks += cpu
                deliveries_runs += runs
            else:
                others += cpu
            by_task[name] += round(cpu * 1e6)
        samples.update(state.get("samples", {}))
        connects.update(state.get("connects", {}))
    return {
        "connects": connects,
        "body": body,
        "other tasks": others,
        "deliveries tasks": deliveries_tasks,
        "deliveries runs": deliveries_runs,
        "samples": samples,
        "by task": by_task,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (the worker's pool), from /proc: the live ones', and
    the exited ones' that their parents reaped (PostgreSQL's closed sessions, a pool's replaced children)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / ticks  # its own and its reaped children's
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending += [int(child) for child in children]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def stack_cpu(stack: faults.Stack) -> dict[str, float]:
    """CPU seconds used so far by each part of the stack: Tandem's processes, PostgreSQL and Redis, and this bench's
    own process (the open-loop senders and the fake GitHub's threads), which real traffic would not run here."""
    parts: dict[str, float] = {"bench (senders, fake GitHub)": resource_self_cpu()}
    named = {"web": stack.web, "worker": stack.worker, "dispatcher": stack.dispatcher, "beat": stack.beat}
    for name, process in named.items():
        if process is not None:
            parts[name] = cpu_seconds(process.pid)
    if stack.redis is not None:
        parts["redis"] = cpu_seconds(stack.redis.pid)
    postmaster = stack.dir / "pg" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        parts["postgres"] = cpu_seconds(int(postmaster.read_text().split()[0]))
    return parts


def statements_sql(stack: faults.Stack, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        cursor = conn.execute(sql)  # type: ignore[arg-type]  # the bench's own constant statements
        return cursor.fetchall() if cursor.description else []


def statements_costliest(stack: faults.Stack, *, events: int, top: int = 20) -> list[str]:
    """PostgreSQL's costliest statements since the last reset (pg_stat_statements), per event."""
    rows = statements_sql(
        stack,
        "SELECT total_plan_time + total_exec_time, total_plan_time, calls, query FROM pg_stat_statements "  # noqa: S608
        f"ORDER BY 1 DESC LIMIT {int(top)}",
    )
    return [
        f"{float(total) / events:6.2f} (plan {float(plan) / events:4.2f}) {int(calls) / events:5.2f}  "  # type: ignore[arg-type]
        f"{_shortened(str(query))}"
        for total, plan, calls, query in rows
    ]


def _shortened(query: str, width: int = 400) -> str:
    """The statement on one line, its first select list elided: what it reads from and how is what tells it apart."""
    text = " ".join(query.split())
    head, separator, rest = text.partition(" FROM ")
    if separator and head.startswith("SELECT ") and len(head) > 60:
        text = f"{head[:40]} … FROM {rest}"
    return text[:width]


def resource_self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _schedule(events: faults.Events, rate: float, seconds: float, first_number: int) -> list[faults.Send]:
    """Pull requests in waves of one second: every opened, then every push, then every review, so that each pull
    request's events arrive in order and about a second apart."""
    per_wave = max(1, int(rate / 3))
    sends: list[faults.Send] = []
    number = first_number
    while len(sends) < rate * seconds:
        wave = [events.github_pull(number + i) for i in range(per_wave)]
        number += per_wave
        for step in range(3):
            sends += [pull[step] for pull in wave]
    return sends[: int(rate * seconds)]


def _new_head(send: faults.Send) -> str | None:
    """The head a push brings (`synchronize`)."""
    if send.headers.get("X-GitHub-Event") != "pull_request":
        return None
    payload = json.loads(send.body)
    return str(payload["pull_request"]["head"]["sha"]) if payload.get("action") == "synchronize" else None


def _pushed_heads(sends: list[faults.Send]) -> dict[tuple[str, int], str]:
    """(repository, number) → the head its push brings, for each pull request pushed to."""
    heads = {}
    for send in sends:
        if (head := _new_head(send)) is not None:
            payload = json.loads(send.body)
            heads[(payload["repository"]["full_name"], payload["number"])] = head
    return heads


def _head_timed_from_its_first_event(send: faults.Send, pushed: dict[tuple[str, int], str]) -> str | None:
    """The pushed head, for its pull request's first webhook (opened): the fake serves that head from the start, so
    the opened event's pass may post on it before the push is even sent (a negative latency, timed from the push)."""
    if send.headers.get("X-GitHub-Event") != "pull_request":
        return None
    payload = json.loads(send.body)
    if payload.get("action") not in {"opened", "synchronize"}:
        return None
    return pushed.get((payload["repository"]["full_name"], payload["number"]))


def run_rate(
    stack: faults.Stack,
    fake: faults.FakeGitHub,
    events: faults.Events,
    rate: float,
    seconds: float,
    first_number: int,
    *,
    from_first_event: bool = False,
) -> dict[str, float]:
    """`from_first_event`: each head's latency from its pull request's first webhook, not from the push, the fake
    serving the pushed head from the start (`backfill_latency.py`); else from the push, the fake serving the opened
    head until the push is sent."""
    sends = _schedule(events, rate, seconds, first_number)
    pushed = _pushed_heads(sends)
    before_sending = None if from_first_event else faults.pushes_served_as_sent(fake, sends)
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    answers: list[int] = []

    def post(send: faults.Send) -> None:
        head = _head_timed_from_its_first_event(send, pushed) if from_first_event else _new_head(send)
        if before_sending is not None:
            before_sending(send)
        moment = time.monotonic()
        if head is not None:
            with lock:
                sent_at.setdefault(head, moment)
        try:
            answers.append(
                session.post(stack.url + send.path, data=send.body, headers=send.headers, timeout=30).status_code
            )
        except requests.RequestException:
            answers.append(0)

    assert stack.worker is not None and stack.dispatcher is not None
    cpu_before = cpu_seconds(stack.worker.pid)
    parts_before = stack_cpu(stack)
    dispatcher_before = cpu_seconds(stack.dispatcher.pid)
    probe_before = probe_read(stack.dir / "probe")
    statuses_before = len(fake.statuses_posted)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for index, send in enumerate(sends):
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pool.submit(post, send)
    deadline = time.monotonic() + WAIT_FOR_STATUSES
    latencies: dict[str, float] = {}
    while time.monotonic() < deadline:
        for status, arrived in zip(
            fake.statuses_posted[statuses_before:], fake.status_arrivals[statuses_before:], strict=False
        ):
            head = status["sha"]
            if head in sent_at and head not in latencies:
                latencies[head] = arrived - sent_at[head]
        if len(latencies) == len(sent_at):
            break
        time.sleep(0.5)
    time.sleep(2)  # let the worker finish what it does after the last status before reading its CPU
    cpu = cpu_seconds(stack.worker.pid) - cpu_before
    parts = {name: seconds - parts_before.get(name, 0.0) for name, seconds in stack_cpu(stack).items()}
    dispatcher = cpu_seconds(stack.dispatcher.pid) - dispatcher_before
    probe = probe_read(stack.dir / "probe")
    body = float(probe["body"]) - float(probe_before["body"])
    other_tasks = float(probe["other tasks"]) - float(probe_before["other tasks"])
    wrapper = float(probe["deliveries tasks"]) - float(probe_before["deliveries tasks"]) - body
    where = Counter(probe["samples"])
    where.subtract(Counter(probe_before["samples"]))
    by_task = Counter(probe["by task"])
    by_task.subtract(Counter(probe_before["by task"]))
    connects = Counter(probe["connects"])
    connects.subtract(Counter(probe_before["connects"]))
    values = sorted(latencies.values())
    return {
        "events": len(sends),
        "accepted": sum(1 for code in answers if 200 <= code < 300),
        "heads": len(sent_at),
        "with status": len(values),
        "p50": statistics.median(values) if values else float("nan"),
        "p95": values[int(0.95 * (len(values) - 1))] if values else float("nan"),
        "max": values[-1] if values else float("nan"),
        "worker ms per event": 1000 * cpu / len(sends),
        "body ms": 1000 * body / len(sends),
        "other tasks ms": 1000 * other_tasks / len(sends),
        "outside ms": 1000 * (cpu - body - other_tasks) / len(sends),
        "wrapper ms": 1000 * wrapper / len(sends),
        "dispatcher ms": 1000 * dispatcher / len(sends),
        "events per task": len(sends) / max(1, int(probe["deliveries runs"]) - int(probe_before["deliveries runs"])),
        "stack ms per event": {name: 1000 * seconds / len(sends) for name, seconds in parts.items()},  # type: ignore[dict-item]
        "where": where,  # type: ignore[dict-item]
        "by task": by_task,  # type: ignore[dict-item]
        "connects": connects,  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=os.environ.get("FEEDBACK_RATES", "20,50,100"))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FEEDBACK_SECONDS", "30")))
    parser.add_argument("--keep", action="store_true", default=os.environ.get("FEEDBACK_KEEP", "") == "1")
    parser.add_argument("--https", action="store_true", help="serve the fake GitHub over TLS, as GitHub is reached")
    parser.add_argument("--root", type=Path, help="run the stack from this checkout (default: this bench's)")
    parser.add_argument("--where", action="store_true", help="sample and print where the worker's overhead goes")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="print where PostgreSQL's time per event goes, by statement (pg_stat_statements; adds its own overhead)",
    )
    args = parser.parse_args()
    if args.root is not None:
        faults.ROOT = args.root.resolve()
    rates = [float(rate) for rate in args.rates.split(",")]
    idle = faults.busy_share(2.0)
    fake = faults.FakeGitHub(rate_limit=10**9)
    if args.https:
        faults.serve_over_tls(fake)
    fake.start()
    stack = faults.Stack(fake, keep=args.keep)
    if args.statements:
        stack.pg_options = " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on"
    (stack.dir / "probe").mkdir()
    stack.env.update(
        PYTHONPATH=str(BENCH),
        WORKER_PROBE_DIR=str(stack.dir / "probe"),
        WORKER_PROBE_SAMPLE="1" if args.where else "",
    )
    rows = []
    statements: dict[float, list[str]] = {}
    try:
        faults.log(f"private services in {stack.dir}")
        stack.start_postgres()
        stack.start_redis()
        stack.migrate()
        if args.statements:
            statements_sql(stack, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        stack.start_web()
        stack.start_worker(app="worker_probe")
        stack.start_beat()
        stack.start_dispatcher()
        events = faults.Events(fake, seed=15)
        time.sleep(5)  # the worker and the dispatcher connect
        first = 1
        for rate in rates:
            faults.log(f"{rate:g} events/s for {args.seconds:g} s")
            if args.statements:
                statements_sql(stack, "SELECT pg_stat_statements_reset()")
            rows.append((rate, run_rate(stack, fake, events, rate, args.seconds, first)))
            if args.statements:
                statements[rate] = statements_costliest(stack, events=int(rows[-1][1]["events"]))
            first += int(rate * args.seconds) + 10
    finally:
        stack.stop()
        fake.stop()
    print()
    print(f"feedback: {faults.ROOT}: webhook → tandem/review-policy accepted (busy before: {idle:.0%} of 2 cores)")
    print(
        f"  {'rate':>6} {'events':>7} {'2xx':>6} {'heads':>6} {'status':>7} {'p50 s':>7} {'p95 s':>7} "
        f"{'max s':>7} {'worker ms/event':>16}"
    )
    for rate, row in rows:
        print(
            f"  {rate:>6g} {row['events']:>7.0f} {row['accepted']:>6.0f} {row['heads']:>6.0f} "
            f"{row['with status']:>7.0f} {row['p50']:>7.2f} {row['p95']:>7.2f} {row['max']:>7.2f} "
            f"{row['worker ms per event']:>16.1f}"
        )
    print("  worker CPU per event, ms: in deliveries_process | in other tasks (beat's) | outside task bodies")
    print("  (of which the delivery tasks' wrapper and signals inside the task span) | dispatcher process")
    for rate, row in rows:
        print(
            f"  {rate:>6g}  {row['body ms']:6.1f} | {row['other tasks ms']:6.1f} | {row['outside ms']:6.1f} "
            f"({row['wrapper ms']:.1f}) | {row['dispatcher ms']:6.1f}   ({row['events per task']:.2f} events per task)"
        )
    for rate, row in rows:
        tasks: Counter[str] = row["by task"]  # type: ignore[assignment]
        listed = ", ".join(
            f"{name.rsplit('.', 1)[-1]} {us / 1000 / row['events']:.1f}" for name, us in tasks.most_common(6)
        )
        print(f"  {rate:>6g}  by task, ms per event: {listed}")
        opened: Counter[str] = row["connects"]  # type: ignore[assignment]
        listed = ", ".join(f"{name.rsplit('.', 1)[-1]} {count}" for name, count in opened.most_common(6) if count)
        print(f"  {rate:>6g}  database connections opened in the worker: {listed or 'none'}")
    print("  CPU per event by process, ms (each with its children):")
    for rate, row in rows:
        parts: dict[str, float] = row["stack ms per event"]  # type: ignore[assignment]
        tandem = sum(ms for name, ms in parts.items() if not name.startswith("bench"))
        listed = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(parts.items(), key=lambda item: -item[1]))
        budget = 2000 / rate  # two cores' milliseconds per event at this rate
        print(f"  {rate:>6g}  {listed}; Tandem's stack {tandem:.1f} (2 cores give {budget:.0f} at this rate)")
    for rate, lines in statements.items():
        heading = "ms with lock waits, of it planning; calls; per event"
        print(f"\n  PostgreSQL's longest statements at {rate:g}/s ({heading}):")
        for line in lines:
            print(f"    {line}")
    if args.where:
        for rate, row in rows:
            where: Counter[str] = row["where"]  # type: ignore[assignment]
            total = sum(where.values()) or 1
            print(f"\n  where the worker's CPU went outside deliveries_process at {rate:g}/s ({total / 1e6:.1f} s):")
            for stack_names, count in where.most_common(40):
                print(f"    {100 * count / total:5.1f}%  {stack_names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
