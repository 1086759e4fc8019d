"""Tasks and a one-second beat schedule for bench/redis_restart.py (not part of Tandem).

The worker loads this module with `-I bench.redis_restart_probe` next to the project's own tasks; beat runs with
`-A bench.redis_restart_probe`, so that it schedules only the probe. Every probe task appends one line to a file
in REDIS_RESTART_PROBE_DIR: proof that the worker ran it, independent of Redis.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from config.celery import app

PROBE_DIR = Path(os.environ.get("REDIS_RESTART_PROBE_DIR", "/nonexistent"))


def _record(line: str) -> None:
    with (PROBE_DIR / "done").open("a") as out:
        out.write(f"{line} {time.time():.3f}\n")


@app.task(name="probe.tick", acks_late=True, ignore_result=True)
def tick(number: int) -> None:
    _record(f"tick {number}")


@app.task(name="probe.beat", acks_late=True, ignore_result=True)
def beat() -> None:
    _record("beat")


@app.task(name="probe.sleep", acks_late=True, ignore_result=True)
def sleep(name: str, seconds: float) -> None:
    """Sleeps through its soft time limit: only the hard limit (the worker's MainProcess killing it) ends it."""
    _record(f"sleep-start {name}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(max(0.0, deadline - time.monotonic()))
        except SoftTimeLimitExceeded:
            _record(f"sleep-soft-limit {name}")
    _record(f"sleep-end {name}")


PROBE_SCHEDULE = {"probe-beat": {"task": "probe.beat", "schedule": 1.0}}


@app.on_after_configure.connect
def _only_the_probe_schedule(sender: object, **kwargs: object) -> None:
    app.conf.beat_schedule = PROBE_SCHEDULE


app.conf.beat_schedule = PROBE_SCHEDULE
