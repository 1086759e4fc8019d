"""Does the Celery worker (and beat) go on after Redis is killed and restarted empty?

A small, fast reproduction of what stopped the worker in bench/faults.py: a private redis-server on a free port
(nothing saved, so a restart is empty; a SQLite file for Django, never touched), the worker started as production
and bench/faults.py start it (`celery -A config worker -c 2` with config.broker.WORKER_OPTIONS, plus
`-I bench.redis_restart_probe`, the probe tasks), beat with a one-second schedule of a probe task, and a producer
that pushes trivial tasks straight into the queue at about 20/s (a raw LPUSH of a Celery message, so that the
producer shares no code with what is tested). Redis is then killed with SIGKILL and restarted empty, again and
again: down 2 s, down 0.3 s, twice within 3 s, down 5 s, per round. Within CHECK seconds of each restart:

- the queue drains: every task pushed in the first EARLY seconds after the restart has run;
- the hard time limit is still enforced: a task that sleeps through its soft limit is killed at its 3 s hard limit;
- beat still sends: its one-second task keeps running (counted; it needs the worker to run it).

A check missed is a stall: the stacks of the worker's processes and of beat are dumped with py-spy (when it is on
the PATH or beside this Python) next to the logs, the worker is killed and started again, and the next restart
follows. Each round takes about a minute.

    .venv/bin/python bench/redis_restart.py [--rounds 3] [--loglevel INFO] [--keep]

Exits 1 when any restart stalled. REDIS_RESTART_WORKER_ARGS and REDIS_RESTART_BEAT_ARGS add arguments (a second
`-I` replaces the first: name the probe module in it too).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.broker import WORKER_OPTIONS  # noqa: E402

BIN = Path(sys.executable).parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PY_SPY = shutil.which("py-spy") or str(BIN / "py-spy")
QUEUE = "celery"
TICK_RATE = 20.0
CHECK = 20.0  # seconds after a restart within which every check must pass
BEAT_WINDOW = 10.0  # the checks last at least this long after a restart, so that beat's runs can be counted
EARLY = 3.0  # the ticks pushed in these first seconds after a restart must all have run within CHECK
TIME_LIMIT = 3  # hard; the soft limit is 1 s (the hard limit's timer is only set when the soft one fires)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def celery_message(task: str, args: list[object], time_limit: int | None = None) -> tuple[str, str]:
    """A Celery protocol 2 message as the Redis transport stores it in the queue's list."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    message = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [time_limit, 1 if time_limit else None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": "redis_restart",
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return task_id, json.dumps(message)


class Stack:
    def __init__(self, loglevel: str, keep: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tandem-redis-restart-"))
        self.keep = keep
        self.loglevel = loglevel
        self.port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.worker_starts = 0
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_"))}
        self.env.update(
            DEBUG="false",
            SECRET_KEY=uuid.uuid4().hex * 2,
            CONNECTION_SECRET_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            DATABASE_URL=f"sqlite:///{self.dir / 'db.sqlite3'}",
            REDIS_URL=f"redis://127.0.0.1:{self.port}/0",
            REDIS_RESTART_PROBE_DIR=str(self.dir),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        (self.dir / "done").touch()

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(  # noqa: S603
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not listen")

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        output = (self.dir / f"{name}.log").open("ab")
        return subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_worker(self) -> None:
        self.worker_starts += 1
        extra = shlex.split(os.environ.get("REDIS_RESTART_WORKER_ARGS", ""))
        self.worker = self._spawn(
            "worker",
            [str(BIN / "celery"), "-A", "config", "worker", "-c", "2", f"--loglevel={self.loglevel}"]
            + ["-n", f"restart{self.worker_starts}@%h", *WORKER_OPTIONS, "-I", "bench.redis_restart_probe", *extra],
        )

    def start_beat(self) -> None:
        extra = shlex.split(os.environ.get("REDIS_RESTART_BEAT_ARGS", ""))
        self.beat = self._spawn(
            "beat",
            [str(BIN / "celery"), "-A", "bench.redis_restart_probe", "beat", "-s", str(self.dir / "beat-schedule")]
            + ["--loglevel=INFO", *extra],
        )

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def dump_stacks(self, label: str) -> Path:
        """py-spy dumps of the worker's MainProcess, its pool children and beat, into one file."""
        out = self.dir / f"stacks-{label}.txt"
        pids: list[tuple[str, int]] = []
        if self.worker is not None:
            pids.append(("worker MainProcess", self.worker.pid))
            children = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children")
            if children.exists():
                pids += [("worker child", int(pid)) for pid in children.read_text().split()]
        if self.beat is not None:
            pids.append(("beat", self.beat.pid))
        with out.open("w") as stream:
            for name, pid in pids:
                stream.write(f"===== {name} pid {pid}\n")
                stream.flush()
                if Path(PY_SPY).exists():
                    subprocess.run(  # noqa: S603
                        [PY_SPY, "dump", "--locals", "--pid", str(pid)],
                        stdout=stream,
                        stderr=subprocess.STDOUT,
                        check=False,
                        timeout=60,
                    )
                else:
                    stream.write("py-spy not found\n")
        return out

    def stop(self) -> None:
        for process in (self.beat, self.worker):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self.redis is not None and self.redis.poll() is None:
            self.kill_redis()
        if self.keep:
            log(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Producer(threading.Thread):
    """Pushes one tick every 1/TICK_RATE s; remembers when each push was accepted."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        self.pushed: dict[int, float] = {}  # tick number -> monotonic time its LPUSH was accepted
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        number = 0
        while not self.stopping.wait(1 / TICK_RATE):
            number += 1
            _, message = celery_message("probe.tick", [number])
            try:
                self.client.lpush(QUEUE, message)
            except redis.RedisError:
                continue
            with self._lock:
                self.pushed[number] = time.monotonic()

    def pushed_between(self, start: float, end: float) -> set[int]:
        with self._lock:
            return {number for number, at in self.pushed.items() if start <= at <= end}

    def push(self, task: str, args: list[object], time_limit: int | None = None) -> str:
        task_id, message = celery_message(task, args, time_limit)
        self.client.lpush(QUEUE, message)
        return task_id


def done_lines(stack: Stack) -> list[str]:
    return (stack.dir / "done").read_text().splitlines()


def ticks_done(stack: Stack) -> set[int]:
    return {int(line.split()[1]) for line in done_lines(stack) if line.startswith("tick ")}


def beats_since(stack: Stack, wall: float) -> int:
    return sum(1 for line in done_lines(stack) if line.startswith("beat ") and float(line.split()[1]) >= wall)


def worker_log(stack: Stack) -> str:
    return (stack.dir / "worker.log").read_text(errors="replace")


@dataclass
class Outcome:
    label: str
    drained: float | None = None  # seconds after the restart
    limit_enforced: float | None = None
    beats: int = 0  # beat's tasks run from 3 s after the restart until the checks ended
    beat_window: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def stalled(self) -> bool:
        return self.drained is None or self.limit_enforced is None


def check_after_restart(stack: Stack, producer: Producer, label: str, restarted: float) -> Outcome:
    """Within CHECK s of the restart: the early ticks ran, the hard time limit fired, beat kept sending."""
    outcome = Outcome(label)
    wall_restarted = time.time()
    time.sleep(2.0)
    try:
        sleeper = producer.push("probe.sleep", [label, 60], time_limit=TIME_LIMIT)
    except redis.RedisError as error:
        outcome.notes.append(f"could not push the sleeper: {error}")
        sleeper = ""
    limit_line = f"Hard time limit ({TIME_LIMIT}s) exceeded for probe.sleep[{sleeper}]"
    early: set[int] = set()
    while time.monotonic() < restarted + CHECK:
        now = time.monotonic()
        if now >= restarted + EARLY and not early:
            early = producer.pushed_between(restarted, restarted + EARLY)
        if outcome.drained is None and early and early <= ticks_done(stack):
            outcome.drained = now - restarted
        if outcome.limit_enforced is None and sleeper and limit_line in worker_log(stack):
            outcome.limit_enforced = now - restarted
        if outcome.drained is not None and outcome.limit_enforced is not None and now >= restarted + BEAT_WINDOW:
            break
        time.sleep(0.25)
    outcome.beats = beats_since(stack, wall_restarted + 3)
    outcome.beat_window = time.time() - (wall_restarted + 3)
    if not early:
        outcome.notes.append(f"no tick pushed in the {EARLY:g} s after the restart")
    else:
        missing = early - ticks_done(stack)
        if missing:
            outcome.notes.append(f"{len(missing)} of {len(early)} early ticks not run")
    return outcome


def restart_redis(stack: Stack, downtime: float) -> None:
    stack.kill_redis()
    time.sleep(downtime)
    stack.start_redis()


SCENARIOS: list[tuple[str, list[float]]] = [
    # (label, downtimes): more than one downtime means restarts 2.5 s apart.
    ("down 2 s", [2.0]),
    ("down 0.3 s", [0.3]),
    ("twice within 3 s", [0.5, 2.0]),
    ("down 5 s", [5.0]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("REDIS_RESTART_ROUNDS", "3")))
    parser.add_argument("--loglevel", default=os.environ.get("REDIS_RESTART_LOGLEVEL", "INFO"))
    parser.add_argument("--keep", action="store_true", default=os.environ.get("REDIS_RESTART_KEEP", "") == "1")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))  # so that `finally` stops what this started
    stack = Stack(args.loglevel, args.keep)
    outcomes: list[Outcome] = []
    restarts = 0
    try:
        log(f"private Redis on {stack.port}, logs in {stack.dir}")
        stack.start_redis()
        stack.start_worker()
        stack.start_beat()
        producer = Producer(stack.port)
        producer.start()
        deadline = time.monotonic() + 90
        while not ticks_done(stack) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not ticks_done(stack):
            log("the worker never ran a tick")
            return 2
        log("worker up; restarting Redis")
        for round_number in range(args.rounds):
            for name, downtimes in SCENARIOS:
                label = f"r{round_number + 1}-{name.replace(' ', '')}"
                for index, downtime in enumerate(downtimes):
                    if index:
                        time.sleep(2.5)
                    restart_redis(stack, downtime)
                    restarts += 1
                outcome = check_after_restart(stack, producer, label, time.monotonic())
                outcomes.append(outcome)
                state = "STALLED" if outcome.stalled else "ok"
                drained = f"{outcome.drained:.1f} s" if outcome.drained is not None else "never"
                limit = f"{outcome.limit_enforced:.1f} s" if outcome.limit_enforced is not None else "never"
                log(
                    f"{label}: {state}; drained {drained}, time limit enforced {limit}, "
                    f"beat ran {outcome.beats} in {outcome.beat_window:.0f} s {'; '.join(outcome.notes)}"
                )
                if outcome.stalled:
                    stacks = stack.dump_stacks(label)
                    log(f"stacks in {stacks}")
                    stack.kill_worker()
                    stack.start_worker()
                    time.sleep(5)
        producer.stopping.set()
    finally:
        stack.stop()
    stalls = [outcome.label for outcome in outcomes if outcome.stalled]
    beat_silent = [outcome.label for outcome in outcomes if outcome.beats == 0 and not outcome.stalled]
    log(
        f"{restarts} Redis restarts in {len(outcomes)} scenarios: {len(stalls)} stalled {stalls}; "
        f"beat silent after {len(beat_silent)} {beat_silent}"
    )
    return 1 if stalls else 0


if __name__ == "__main__":
    sys.exit(main())
