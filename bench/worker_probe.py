"""A Celery app for benches: Tandem's own (`config.celery`), with the worker's CPU split by where it went.

`bench/feedback.py` starts the stack's worker as `celery -A worker_probe worker` (this folder on PYTHONPATH), so the
worker runs Tandem's code unchanged, with these handlers added. Each process of the worker (the main process and each
pool process) writes, after every task run, what it counted to `$WORKER_PROBE_DIR/<pid>.json`:

- `body`: CPU inside `reviews.tasks.deliveries_process` (what `bench/worker_cost.py` measures in-process);
- `tasks`: per task name, runs and CPU from the end of the task-prerun handlers to the start of the postrun ones
  (the task's own work, whatever it is);
- with WORKER_PROBE_SAMPLE=1, where each thread's CPU went outside the body, sampled every few milliseconds, by
  innermost frames of interest, in microseconds (`feedback.py --where` prints them): a poor man's py-spy.

CPU is each thread's own clock (`time.thread_time`): a pool with threads counts each task on its thread. What the
process spends outside both (Celery's message handling, its pool, the signal handlers) is the process's CPU, read from
/proc by the bench, less these.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from celery import signals

from config.celery import app

__all__ = ["app"]

_DIR = Path(os.environ.get("WORKER_PROBE_DIR", "/tmp"))  # noqa: S108 - the bench always sets it
_SAMPLE = os.environ.get("WORKER_PROBE_SAMPLE", "") == "1"
_SAMPLE_SECONDS = 0.003

_lock = threading.Lock()
_body = {"cpu": 0.0, "calls": 0}
_tasks: dict[str, list[float]] = {}  # name → [runs, cpu]
_started: dict[str, float] = {}  # task id → thread CPU at its start
_in_body: set[int] = set()  # thread ids inside the body now
_samples: Counter[str] = Counter()
_sampler_pid = 0
_running: dict[int, str] = {}  # thread id → the task it runs
_connects: Counter[str] = Counter()  # database connections opened, by the task that opened them


def _write() -> None:
    with _lock:
        state = {
            "body": dict(_body),
            "tasks": {k: list(v) for k, v in _tasks.items()},
            "samples": dict(_samples),
            "connects": dict(_connects),
        }
    path = _DIR / f"{os.getpid()}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)


def _patch_body() -> None:
    import reviews.tasks

    original = reviews.tasks.deliveries_process
    if getattr(original, "_probed", False):
        return

    def probed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        _in_body.add(threading.get_ident())
        try:
            return original(*args, **kwargs)
        finally:
            _in_body.discard(threading.get_ident())
            with _lock:
                _body["cpu"] += time.thread_time() - started
                _body["calls"] += 1

    probed._probed = True  # type: ignore[attr-defined]
    reviews.tasks.deliveries_process = probed  # type: ignore[assignment]

    from django.db.backends.base.base import BaseDatabaseWrapper

    connect = BaseDatabaseWrapper.connect

    def counted_connect(self: Any) -> None:
        with _lock:
            _connects[_running.get(threading.get_ident(), "(no task)")] += 1
        connect(self)

    BaseDatabaseWrapper.connect = counted_connect  # type: ignore[method-assign]


@signals.task_prerun.connect(weak=False)
def _started_run(task_id: str = "", task: Any = None, **_: Any) -> None:
    _patch_body()
    _sampler_start()
    _started[task_id] = time.thread_time()
    _running[threading.get_ident()] = getattr(task, "name", "unknown")


@signals.task_postrun.connect(weak=False)
def _ended_run(task_id: str = "", task: Any = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    _running.pop(threading.get_ident(), None)
    if started is None:
        return
    with _lock:
        runs = _tasks.setdefault(getattr(task, "name", "unknown"), [0, 0.0])
        runs[0] += 1
        runs[1] += time.thread_time() - started
    _write()


@signals.worker_ready.connect(weak=False)
def _main_process_ready(**_: Any) -> None:
    _sampler_start()
    _write()


def _sampler_start() -> None:
    global _sampler_pid
    if not _SAMPLE or _sampler_pid == os.getpid():
        return
    _sampler_pid = os.getpid()
    threading.Thread(target=_sample_forever, daemon=True).start()


_INTERESTING = ("/reviews/", "/telemetry/", "/config/", "/celery/", "/kombu/", "/billiard/", "/redis/", "/django/")


def _sample_forever() -> None:
    """Every few milliseconds, each thread that ran since the last look (its own CPU clock moved) is counted where
    it is now, weighted by the CPU it used: a thread waiting for PostgreSQL or Redis counts nothing."""
    me = threading.get_ident()
    last_write = time.monotonic()
    clocks: dict[int, float] = {}
    while True:
        time.sleep(_SAMPLE_SECONDS)
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            try:
                cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
            except OSError:
                continue
            used, clocks[ident] = cpu - clocks.get(ident, cpu), cpu
            if used <= 0 or ident in _in_body:
                continue
            names = []
            current = frame
            while current is not None and len(names) < 4:
                filename = current.f_code.co_filename
                if any(part in filename for part in _INTERESTING):
                    short = filename.rsplit("/site-packages/", 1)[-1].rsplit("/wt-", 1)[-1]
                    names.append(f"{short}:{current.f_code.co_name}")
                current = current.f_back
            with _lock:
                _samples[" < ".join(names) or "(other)"] += round(used * 1e6)  # microseconds
        if time.monotonic() - last_write > 2:
            last_write = time.monotonic()
            _write()
