"""Scale-out: two web processes and production's two workers on their own queues, against one PostgreSQL and Redis.

Starts the stack of bench/faults.py (private PostgreSQL and Redis on free ports, the fake GitHub in this process,
beat and the delivery dispatcher) with two gunicorn processes instead of one, and the two Celery workers the README's
"Queues and workers" runs (`make worker-fast`, `make worker-background`, their queues read from the Makefile). It
sends N signed webhooks (GitHub pull requests, pushes and reviews; GitLab merge requests; PagerDuty and Opsgenie
incidents; 10% redelivered) taking turns between the two web processes, so that a redelivery often reaches the other
process than its first, then waits for the backlog and checks that every event was processed once: every
acknowledged delivery stored once and processed, every effect there once (no duplicated row), every open pull
request's head with a verdict and its status accepted. No faults: bench/faults.py is the one that kills things.

    .venv/bin/python bench/scale_out.py [--events N]      # or: make scale-out

Environment: SCALE_OUT_EVENTS (300), SCALE_OUT_RATE (sends per second, 20), SCALE_OUT_DRAIN_TIMEOUT (seconds, 180),
FAULTS_KEEP=1 (keep the temporary directory with every log). Exits 1 unless every event was processed once, both
web processes acknowledged webhooks and both workers ran tasks (their logs say which).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faults import ROOT, Events, Sender, Stack, Tally, busy_share, log, tally  # noqa: E402

from tests.fakes.github import FakeGitHub  # noqa: E402


def makefile_queues(target: str) -> str:
    """The `-Q` of a worker target of the Makefile: the queues production's worker of that name consumes."""
    recipe = (ROOT / "Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    found = re.search(r"-Q (\S+)", recipe)
    if found is None:
        raise SystemExit(f"make {target} names no queues")
    return found.group(1)


def tasks_succeeded(log_file: Path) -> Counter[str]:
    """Task runs a worker logged as succeeded, by task name (its log at INFO, CELERY_TRACE_LOG_LEVEL=INFO)."""
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    return Counter(re.findall(r"Task ([\w.]+)\[[0-9a-f-]+\] succeeded", text))


def wait_for_backlog(stack: Stack, sender: Sender, events: Events, fake: FakeGitHub, timeout: float) -> Tally | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            counted = tally(stack.database_url, sender.acknowledged, events.expected, fake)
        except psycopg.Error as error:
            log(f"count failed: {error}")
        else:
            if counted.settled and not counted.lost_effects:
                return counted
        time.sleep(1.0)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=int(os.environ.get("SCALE_OUT_EVENTS", "300")))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SCALE_OUT_RATE", "20")))
    parser.add_argument("--drain-timeout", type=float, default=float(os.environ.get("SCALE_OUT_DRAIN_TIMEOUT", "180")))
    parser.add_argument("--keep", action="store_true", default=os.environ.get("FAULTS_KEEP", "") == "1")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    fast, background = makefile_queues("worker-fast"), makefile_queues("worker-background")

    idle_load = busy_share(2.0)
    fake = FakeGitHub(rate_limit=10**9).start()
    stack = Stack(fake, keep=args.keep)
    started = time.monotonic()
    try:
        log(f"private services in {stack.dir}")
        stack.start_postgres()
        stack.start_redis()
        stack.migrate()
        urls = [stack.start_web("web"), stack.start_web("web2")]
        stack.env["CELERY_TRACE_LOG_LEVEL"] = "INFO"  # each task run's line, to say which worker ran what
        stack.start_worker("fast", fast, loglevel="INFO")
        stack.start_worker("background", background, loglevel="INFO")
        stack.start_beat()
        stack.start_dispatcher()
        events = Events(fake, args.seed)
        sends, redelivered = events.build(args.events)
        log(f"stack up in {time.monotonic() - started:.0f} s; sending {len(sends)} webhooks to {' and '.join(urls)}")
        sender = Sender(urls, sends, args.rate, 4)
        sender.run()
        send_ended = time.monotonic()
        log(f"sent in {send_ended - sender.started:.0f} s; waiting for the backlog")
        settled = wait_for_backlog(stack, sender, events, fake, args.drain_timeout)
        drained = time.monotonic() - send_ended
        counted = settled or tally(stack.database_url, sender.acknowledged, events.expected, fake)
        ran = {name: tasks_succeeded(stack.dir / f"{name}.log") for name in ("fast", "background")}
        busy = busy_share(1.0)
    finally:
        stack.stop()
        fake.stop()

    lost = counted.missing_rows + len(counted.lost_effects) + len(sender.given_up)
    both_served = len(sender.acknowledged_by) == len(urls) and min(sender.acknowledged_by.values()) > 0
    both_worked = all(ran.values())
    rows = [
        ("web processes; workers (queues)", f"{len(urls)}; fast ({fast}), background ({background})"),
        ("webhooks sent (distinct + redelivered)", f"{len(sends)} ({len(sends) - redelivered} + {redelivered})"),
        ("acknowledged by each web process", ", ".join(str(n) for n in sender.acknowledged_by.values())),
        *[(f"tasks the {name} worker ran", _most_common(counts)) for name, counts in ran.items()],
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(sender.answers.items()))),
        ("deliveries by state", ", ".join(f"{k}: {v}" for k, v in sorted(counted.deliveries.items()))),
        ("LOST: acknowledged, no row / effects missing", f"{counted.missing_rows} / {len(counted.lost_effects)}"),
        ("DUPLICATED rows", ", ".join(counted.duplicated) or "0"),
        ("STUCK: not processed/ignored", str(counted.stuck)),
        ("open pull requests, head without a verdict", str(counted.no_verdict)),
        ("open GitHub pull requests, no status accepted", str(counted.no_status)),
        ("drain after the last send", "not drained" if settled is None else f"{drained:.0f} s"),
        ("machine busy before the run / at the end", f"{idle_load:.0%} / {busy:.0%} of the cores"),
        ("total wall time", f"{time.monotonic() - started:.0f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print(f"scale-out: {args.events} events")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for reason, count in counted.errors.most_common(8):
        print(f"    stuck: {count} x {reason}")
    for line in counted.lost_effects[:10]:
        print(f"    lost: {line}")
    ok = settled is not None and lost == 0 and not counted.duplicated and both_served and both_worked
    print(f"scale-out: {'every event processed once' if ok else 'FAILED'}: {lost} lost, {counted.stuck} stuck")
    return 0 if ok else 1


def _most_common(counts: Counter[str]) -> str:
    shown = ", ".join(f"{name.rsplit('.', 1)[-1]} {n}" for name, n in counts.most_common(4))
    return shown or "none"


if __name__ == "__main__":
    sys.exit(main())
