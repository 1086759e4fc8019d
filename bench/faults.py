"""Faults against the production stack: does an acknowledged webhook survive a worker, Redis and PostgreSQL dying?

Starts private services on free ports of 127.0.0.1 (a PostgreSQL cluster and a Redis that keeps nothing on a
restart, both in a temporary directory), the fake GitHub in this process, then gunicorn, a Celery worker and
Celery beat exactly as production runs them (DEBUG off, secrets from the environment). It sends N signed webhooks
(GitHub pull requests, synchronize pushes and reviews; GitLab merge requests; PagerDuty and Opsgenie incidents) at
a steady rate from a few threads, 10% of them redelivered, retrying any non-2xx answer with backoff as the senders
do. During the send it SIGKILLs the worker (and restarts it), restarts Redis empty and restarts PostgreSQL. Then
it waits for the backlog and counts what was lost, duplicated or stuck, and how long the drain took.

    .venv/bin/python bench/faults.py [--events N] [--short]      # or: make faults / make faults-short

Environment: FAULTS_EVENTS (10000), FAULTS_SHORT=1 (one worker kill and one Redis restart, no PostgreSQL
restart), FAULTS_RATE (sends per second), FAULTS_SENDERS (4), FAULTS_DRAIN_TIMEOUT (seconds), FAULTS_KEEP=1
(keep the temporary directory with every log), FAULTS_WORKER_LOGLEVEL (WARNING; INFO logs every task received).
Exits 1 when the goal is missed: 0 lost, 0 duplicated, 0 stuck, every open pull request's head with a verdict (and,
on GitHub, its status accepted), drained within 2 minutes of the last fault.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.broker import WORKER_OPTIONS  # noqa: E402
from tests.fakes import tls  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402

BIN = Path(sys.executable).parent
PG_BIN = Path(
    os.environ.get("FAULTS_PG_BIN")
    or max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), default="/usr/bin")
)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
WORKER_LOGLEVEL = os.environ.get("FAULTS_WORKER_LOGLEVEL", "WARNING")
GITHUB_FIXTURES = ROOT / "tests" / "fixtures" / "github"
GITLAB_FIXTURES = ROOT / "tests" / "fixtures" / "gitlab_docs"
GITHUB_SECRET = "faults-github-secret"  # noqa: S105 - a throw-away stack's secrets
GITLAB_TOKEN = "faults-gitlab-token"  # noqa: S105
PAGERDUTY_SECRET = "faults-pagerduty-secret"  # noqa: S105
OPSGENIE_TOKEN = "faults-opsgenie-token"  # noqa: S105
STATUS_CONTEXT = "tandem/review-policy"
DRAIN_GOAL = 120.0
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sha(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


# --- the webhooks ----------------------------------------------------------------------------------------------


@dataclass
class Send:
    """One webhook as its sender posts it (a redelivery repeats the same object: same id, same bytes)."""

    provider: str
    delivery_id: str
    path: str
    headers: dict[str, str]
    body: bytes


def pushes_served_as_sent(fake: Any, sends: list[Send]) -> Any:
    """Have the fake serve each pushed pull request's opened head until its push (`synchronize`) is sent, as GitHub
    would, with the payloads' own `updated_at`. Returns the hook to call with each send just before it is sent.

    `Events.github_pull` adds a pull request at its final head: a pass that read it (the opened event's facts) then
    posted on the pushed head before the push was sent, which timed pushes below zero and spared the push's pass
    its facts and its status."""
    opened: dict[tuple[str, int], tuple[str, dt.datetime]] = {}
    pushed: set[tuple[str, int]] = set()
    for send in sends:
        if (found := _pull_event(send)) is not None:
            action, key, head, at = found
            if action == "opened":
                opened[key] = (head, at)
            elif action == "synchronize":
                pushed.add(key)
    for key in pushed & opened.keys():
        fake.update_pull(key[0], key[1], head_sha=opened[key][0], updated_at=opened[key][1])

    def before_sending(send: Send) -> None:
        found = _pull_event(send)
        if found is not None and found[0] == "synchronize":
            _, (repository, number), head, at = found
            fake.update_pull(repository, number, head_sha=head, updated_at=at)

    return before_sending


def _pull_event(send: Send) -> tuple[str, tuple[str, int], str, dt.datetime] | None:
    """(action, (repository, number), head, updated_at) of a GitHub pull_request webhook."""
    if send.headers.get("X-GitHub-Event") != "pull_request":
        return None
    payload = json.loads(send.body)
    pull = payload["pull_request"]
    at = dt.datetime.fromisoformat(str(pull["updated_at"]).replace("Z", "+00:00"))
    return payload.get("action", ""), (payload["repository"]["full_name"], payload["number"]), pull["head"]["sha"], at


@dataclass
class Expected:
    """What the sent webhooks must leave behind, keyed by their external ids."""

    github_pulls: dict[tuple[str, int], str] = field(default_factory=dict)  # (repo id, number) -> final head
    github_reviews: set[str] = field(default_factory=set)
    gitlab_pulls: dict[tuple[str, int], str] = field(default_factory=dict)  # (project id, iid) -> final head
    incidents: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, id) -> final status


def _load(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / f"{name}.json").read_text())


class Events:
    """Builds every webhook from the repository's fixtures, with new numbers, ids and shas."""

    def __init__(self, fake: FakeGitHub, seed: int) -> None:
        self.fake = fake
        self.rng = random.Random(seed)
        self.expected = Expected()
        self.opened = _load(GITHUB_FIXTURES, "pull_request.opened")
        self.synchronize = _load(GITHUB_FIXTURES, "pull_request.synchronize")
        self.review = _load(GITHUB_FIXTURES, "pull_request_review.submitted.approved")
        self.merge_request = _load(GITLAB_FIXTURES, "mr_ready")
        self.repos = [fake.add_repo(f"acme/service-{i}") for i in range(4)]
        self.people = ["alice", "bob", "carol", "dave", "erin", "frank"]
        self.counter = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    # GitHub: opened, then a push (synchronize), then an approving review, on one pull request.
    def github_pull(self, number: int, steps: int = 3) -> list[Send]:
        """`steps` < 3 only for the last pull request, so that exactly N events are sent."""
        repo = self.repos[number % len(self.repos)]
        author, reviewer = self.rng.sample(self.people, 2)
        first, second = sha(repo["full_name"], number, 1), sha(repo["full_name"], number, 2)
        head = second if steps > 1 else first
        opened_at = T0 + dt.timedelta(seconds=number)
        # As the webhooks describe it (title, body, labels, requested reviewers): GitHub's API and its webhooks agree,
        # and a fake that disagreed made every facts fetch rewrite the pull request and churn its reviewers.
        described = self.opened["pull_request"]
        self.fake.add_pull(
            repo["full_name"],
            number=number,
            author=author,
            head_sha=head,
            head=f"feature-{number}",
            base="main",
            created_at=opened_at,
            title=described["title"],
            body=described["body"] or "",
            labels=[label["name"] for label in described["labels"]],
            requested_reviewers=[user["login"] for user in described["requested_reviewers"]],
        )
        self.expected.github_pulls[(str(repo["id"]), number)] = head
        sends = [
            self._github("pull_request", self._pull_payload(self.opened, repo, number, author, first, opened_at, 0)),
            self._github(
                "pull_request", self._pull_payload(self.synchronize, repo, number, author, second, opened_at, 60)
            ),
        ]
        if steps < 3:
            return sends[:steps]
        review_id = 10_000_000 + number
        self.expected.github_reviews.add(str(review_id))
        payload = self._pull_payload(self.review, repo, number, author, second, opened_at, 120)
        payload["review"].update(
            id=review_id,
            node_id=f"PRR_{review_id}",
            commit_id=second,
            submitted_at=iso(opened_at + dt.timedelta(seconds=120)),
            user={**payload["review"]["user"], "login": reviewer, "id": 500 + self.people.index(reviewer)},
        )
        sends.append(self._github("pull_request_review", payload))
        return sends

    def _pull_payload(
        self, fixture: dict, repo: dict, number: int, author: str, head: str, opened_at: dt.datetime, later: int
    ) -> dict:
        payload = copy.deepcopy(fixture)
        repository = {
            **payload["repository"],
            "id": repo["id"],
            "name": repo["name"],
            "full_name": repo["full_name"],
            "owner": {**payload["repository"]["owner"], "login": repo["owner"]["login"]},
        }
        payload["repository"] = repository
        pull = payload["pull_request"]
        pull.update(
            number=number,
            id=20_000_000 + number,
            node_id=f"PR_{number}",
            state="open",
            draft=False,
            merged=False,
            merged_at=None,
            closed_at=None,
            created_at=iso(opened_at),
            updated_at=iso(opened_at + dt.timedelta(seconds=later)),
            user={**pull["user"], "login": author, "id": 500 + self.people.index(author)},
        )
        pull["head"] = {**pull["head"], "sha": head, "ref": f"feature-{number}", "repo": repository}
        pull["base"] = {**pull["base"], "ref": "main", "repo": repository}
        payload["number"] = number
        if "after" in payload:
            payload["before"], payload["after"] = sha(repo["full_name"], number, 1), head
        return payload

    def _github(self, event: str, payload: dict) -> Send:
        body = json.dumps(payload).encode()
        delivery = str(uuid.UUID(int=self.rng.getrandbits(128)))
        signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature,
        }
        return Send("github", delivery, "/webhooks/github/", headers, body)

    # GitLab: a merge request opened, then updated by a push.
    def gitlab_merge_request(self, iid: int) -> list[Send]:
        project_id = 7000 + iid % 3
        sends = []
        for step, action in enumerate(("open", "update")):
            payload = copy.deepcopy(self.merge_request)
            head = sha("gitlab", project_id, iid, step)
            path = f"acme/gitlab-{project_id}"
            payload["project"].update(id=project_id, path_with_namespace=path, default_branch="main")
            attributes = payload["object_attributes"]
            attributes.update(
                id=30_000_000 + iid,
                iid=iid,
                action=action,
                state="opened",
                draft=False,
                work_in_progress=False,
                source_branch=f"feature-{iid}",
                target_branch="main",
                source_project_id=project_id,
                target_project_id=project_id,
                created_at=iso(T0),
                updated_at=iso(T0 + dt.timedelta(seconds=iid * 10 + step)),
            )
            attributes["last_commit"] = {**attributes["last_commit"], "id": head}
            payload.pop("changes", None)
            body = json.dumps(payload).encode()
            delivery = str(uuid.UUID(int=self.rng.getrandbits(128)))
            headers = {
                "Content-Type": "application/json",
                "X-Gitlab-Event": "Merge Request Hook",
                "X-Gitlab-Token": GITLAB_TOKEN,
                "X-Gitlab-Event-UUID": delivery,
            }
            sends.append(Send("gitlab", delivery, "/webhooks/gitlab/", headers, body))
            self.expected.gitlab_pulls[(str(project_id), iid)] = head
        return sends

    # PagerDuty: an incident triggered, then resolved.
    def pagerduty_incident(self, number: int) -> list[Send]:
        incident_id = f"PFLT{number:06d}"
        sends = []
        for step, event_type in enumerate(("incident.triggered", "incident.resolved")):
            payload = {
                "event": {
                    "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                    "event_type": event_type,
                    "resource_type": "incident",
                    "occurred_at": iso(T0 + dt.timedelta(minutes=number, seconds=step * 30)),
                    "agent": {"id": "PLH1HKV", "summary": "Tenex Engineer", "type": "user_reference"},
                    "client": {"name": "PagerDuty"},
                    "data": {
                        "id": incident_id,
                        "type": "incident",
                        "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                        "number": number,
                        "status": event_type.split(".")[1],
                        "incident_key": sha("pd", number),
                        "created_at": iso(T0 + dt.timedelta(minutes=number)),
                        "title": f"Checkout errors {number}",
                        "service": {"id": "PF9KMXH", "summary": "API Service", "type": "service_reference"},
                        "assignees": [],
                        "priority": {"id": "PSO75BM", "summary": "P2", "type": "priority_reference"},
                        "urgency": "high",
                    },
                }
            }
            body = json.dumps(payload).encode()
            signature = "v1=" + hmac.new(PAGERDUTY_SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}
            delivery = "sha256:" + hashlib.sha256(body).hexdigest()
            sends.append(Send("pagerduty", delivery, "/webhooks/pagerduty/", headers, body))
        self.expected.incidents[("pagerduty", incident_id)] = "resolved"
        return sends

    # Opsgenie: an alert created, then closed.
    def opsgenie_alert(self, number: int) -> list[Send]:
        alert_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        created = T0 + dt.timedelta(minutes=number)
        sends = []
        for step, action in enumerate(("Create", "Close")):
            payload = {
                "source": {"name": "web", "type": "API"},
                "alert": {
                    "updatedAt": int((created + dt.timedelta(seconds=step * 30)).timestamp() * 1_000_000_000),
                    "tags": ["service:checkout", "prod"],
                    "teams": ["team1"],
                    "message": f"Checkout latency {number}",
                    "alertId": alert_id,
                    "alias": f"alias-{number}",
                    "tinyId": str(number),
                    "createdAt": int(created.timestamp() * 1000),
                    "entity": "",
                    "priority": "P2",
                },
                "action": action,
                "integrationId": "37c8f316-17c6-49d7-899b-9c7e540c048d",
                "integrationName": "Faults",
            }
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "X-Tandem-Token": OPSGENIE_TOKEN}
            delivery = "sha256:" + hashlib.sha256(body).hexdigest()
            sends.append(Send("opsgenie", delivery, "/webhooks/opsgenie/", headers, body))
        self.expected.incidents[("opsgenie", alert_id)] = "resolved"
        return sends

    def build(self, events: int) -> tuple[list[Send], int]:
        """`events` distinct deliveries (about 55% GitHub, 20% GitLab, 25% incidents), interleaved so that each
        entity's events arrive in order but far apart, then 10% of them sent again later (redelivered)."""
        sequences: list[list[Send]] = []
        total, number = 0, 0
        while total < events:
            number += 1
            roll = self.rng.random()
            if events - total < 3:
                sequence = self.github_pull(number, steps=events - total)
            elif roll < 0.55:
                sequence = self.github_pull(number)
            elif roll < 0.75:
                sequence = self.gitlab_merge_request(number)
            elif roll < 0.875:
                sequence = self.pagerduty_incident(number)
            else:
                sequence = self.opsgenie_alert(number)
            sequences.append(sequence)
            total += len(sequence)
        ordered: list[Send] = []
        window: list[list[Send]] = []
        pending = iter(sequences)
        while True:
            while len(window) < 64 and (nxt := next(pending, None)) is not None:
                window.append(list(nxt))
            if not window:
                break
            chosen = window[self.rng.randrange(len(window))]
            ordered.append(chosen.pop(0))
            if not chosen:
                window.remove(chosen)
        again = set(self.rng.sample(range(len(ordered)), len(ordered) // 10))
        final: list[Send] = []
        later: dict[int, list[Send]] = {}
        for index, send in enumerate(ordered):
            final.append(send)
            if index in again:
                later.setdefault(index + self.rng.randint(5, 300), []).append(send)
            final += later.pop(index, [])
        for sends in later.values():
            final += sends
        return final, len(again)


# --- the stack -------------------------------------------------------------------------------------------------


class Stack:
    """Private PostgreSQL and Redis, and Tandem's web, worker and beat processes, all under one temp dir."""

    def __init__(self, fake: FakeGitHub, keep: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tandem-faults-"))
        self.keep = keep
        os.chmod(self.dir, 0o777)  # noqa: S103 - the postgres user writes its cluster and socket here
        self.pg_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.database_url = f"postgres://postgres@127.0.0.1:{self.pg_port}/tandem_faults"
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.redis: subprocess.Popen[bytes] | None = None
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.dispatcher: subprocess.Popen[bytes] | None = None
        self.more: list[subprocess.Popen[bytes]] = []  # further web processes and workers (bench/scale_out.py)
        self.pg_options = ""  # more server settings (` -c name=value`), e.g. feedback.py's --statements
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "REDIS_", "GITHUB_", "GITLAB_", "PAGERDUTY_", "OPSGENIE_"))
        }
        self.env.update(
            DEBUG="false",
            SECRET_KEY=uuid.uuid4().hex * 2,
            # Production refuses to start without a key for connection secrets; a fresh one per run.
            CONNECTION_SECRET_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            # Plain HTTP on loopback: production's HTTPS redirect and HSTS would send the senders elsewhere.
            SECURE_SSL_REDIRECT="false",
            SECURE_HSTS_SECONDS="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PUBLIC_URL=self.url,
            DATABASE_URL=self.database_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            GITHUB_WEBHOOK_SECRET=GITHUB_SECRET,
            GITHUB_TOKEN=fake.token,
            GITHUB_API_URL=fake.url,
            GITLAB_WEBHOOK_TOKEN=GITLAB_TOKEN,
            PAGERDUTY_WEBHOOK_SECRET=PAGERDUTY_SECRET,
            OPSGENIE_WEBHOOK_TOKEN=OPSGENIE_TOKEN,
            DELIVERY_DISPATCH_SECONDS=os.environ.get("DELIVERY_DISPATCH_SECONDS", "2"),
            SESSION_COOKIE_SECURE="false",
            CSRF_COOKIE_SECURE="false",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )

    def _as_postgres(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.pg_port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        options += self.pg_options
        command = self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "pg"), "-l", str(self.dir / "pg.log"), "-w", "-o", options
        )
        subprocess.run([*command, *args], check=True, stdout=subprocess.DEVNULL)  # noqa: S603

    def start_postgres(self) -> None:
        subprocess.run(  # noqa: S603
            self._as_postgres(
                str(PG_BIN / "initdb"), "-D", str(self.dir / "pg"), "-A", "trust", "-U", "postgres", "--no-sync"
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._pg_ctl("start")
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.pg_port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE tandem_faults")

    def restart_postgres(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(  # noqa: S603
            [
                REDIS_SERVER,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ]
        )
        self._wait_for_port(self.redis_port)

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        output = (self.dir / f"{name}.log").open("ab")
        # Its own session, so that a SIGKILL reaches the pool's children too, as when a container dies.
        return subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )

    def migrate(self) -> None:
        subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start_web(self, name: str = "web") -> str:
        """gunicorn as production runs it; `web` on `self.url`, any other name on a port of its own. Its URL, once
        it answers."""
        port = self.web_port if name == "web" else free_port()
        url = f"http://127.0.0.1:{port}"
        process = self._spawn(
            name,
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--timeout",
                "60",
            ],
        )
        if name == "web":
            self.web = process
        else:
            self.more.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer; see {self.dir / f'{name}.log'}")

    def start_worker(
        self, name: str = "worker", queues: str = "", loglevel: str = WORKER_LOGLEVEL, app: str = "config"
    ) -> None:
        """A Celery worker (`-c 2`); `worker` consumes every queue and is the one the faults kill, any other name
        consumes `queues` (comma-separated), as production's two workers do. `app`: the Celery app's module
        (`bench/worker_probe.py` is Tandem's with the worker's CPU counted by where it goes)."""
        node = "faults" if name == "worker" else name
        process = self._spawn(
            name,
            [str(BIN / "celery"), "-A", app, "worker", "-c", "2", f"--loglevel={loglevel}"]
            + ["-n", f"{node}@%h", *(["-Q", queues] if queues else []), *WORKER_OPTIONS],
        )
        if name == "worker":
            self.worker = process
        else:
            self.more.append(process)

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def start_beat(self) -> None:
        self.beat = self._spawn(
            "beat",
            [str(BIN / "celery"), "-A", "config", "beat", "-s", str(self.dir / "beat-schedule"), "--loglevel=WARNING"],
        )

    def start_dispatcher(self) -> None:
        """The process that hears of each stored delivery (PostgreSQL NOTIFY) and hands it to the worker."""
        self.dispatcher = self._spawn("dispatcher", [sys.executable, "manage.py", "dispatch_deliveries"])

    def _wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {port}")

    def stop(self) -> None:
        for process in (self.dispatcher, self.beat, self.worker, self.web, *self.more):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        if self.redis is not None and self.redis.poll() is None:
            self.kill_redis()
        if (self.dir / "pg" / "postmaster.pid").exists():
            self._pg_ctl("-m", "fast", "stop")
        if self.keep:
            log(f"logs and data kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- sending, with faults --------------------------------------------------------------------------------------


class Sender:
    """Sends every webhook at a steady rate from a few threads; a non-2xx answer or a refused connection is retried
    with backoff (0.5 s doubling to 8 s, for up to 5 minutes), as GitHub's redelivery and PagerDuty do. With several
    URLs (web processes), the sends take turns among them: a redelivery may reach another process than its first."""

    def __init__(self, url: str | list[str], sends: list[Send], rate: float, threads: int) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        self.sends, self.rate, self.threads = sends, rate, threads
        self.acknowledged: set[tuple[str, str]] = set()
        self.answers: Counter[str] = Counter()
        self.acknowledged_by: Counter[str] = Counter()  # 2xx answers by URL
        self.given_up: list[Send] = []
        self.progress = 0
        self._next = 0
        self._lock = threading.Lock()
        self.started = 0.0

    def run(self) -> None:
        self.started = time.monotonic()
        workers = [threading.Thread(target=self._work, daemon=True) for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _work(self) -> None:
        session = requests.Session()
        while True:
            with self._lock:
                index = self._next
                self._next += 1
            if index >= len(self.sends):
                return
            wait = self.started + index / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._deliver(session, self.sends[index], self.urls[index % len(self.urls)])
            with self._lock:
                self.progress += 1

    def _deliver(self, session: requests.Session, send: Send, url: str) -> None:
        backoff, deadline = 0.5, time.monotonic() + 300
        while True:
            try:
                response = session.post(url + send.path, data=send.body, headers=send.headers, timeout=30)
                answer = str(response.status_code)
            except requests.RequestException as error:
                answer = type(error).__name__
            with self._lock:
                self.answers[answer] += 1
                if answer.startswith("2"):
                    self.acknowledged.add((send.provider, send.delivery_id))
                    self.acknowledged_by[url] += 1
            if answer.startswith("2"):
                return
            if time.monotonic() > deadline:
                with self._lock:
                    self.given_up.append(send)
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, 8.0)


@dataclass
class Fault:
    at: float  # share of the sends done
    name: str
    seconds: float = 0.0  # how long it took until the service was back
    ended: float = 0.0  # monotonic time it was back


def run_faults(stack: Stack, sender: Sender, faults: list[Fault], redis_down: float) -> None:
    for fault in faults:
        while sender.progress < fault.at * len(sender.sends):
            time.sleep(0.05)
        began = time.monotonic()
        log(f"fault: {fault.name} (after {sender.progress} sends)")
        if fault.name == "worker SIGKILL":
            stack.kill_worker()
            time.sleep(1.0)
            stack.start_worker()
        elif fault.name == "Redis restart (empty)":
            stack.kill_redis()
            time.sleep(redis_down)
            stack.start_redis()
        elif fault.name == "PostgreSQL restart":
            stack.restart_postgres()
        fault.ended = time.monotonic()
        fault.seconds = fault.ended - began


# --- counting --------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    deliveries: Counter[str] = field(default_factory=Counter)
    missing_rows: int = 0
    lost_effects: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    no_verdict: int = 0
    no_status: int = 0
    multi_attempts: int = 0

    @property
    def settled(self) -> bool:
        return self.missing_rows == 0 and self.stuck == 0 and self.no_verdict == 0 and self.no_status == 0


def serve_over_tls(fake: FakeGitHub) -> None:
    """Serve the fake over TLS with a certificate for 127.0.0.1 that this process trusts (REQUESTS_CA_BUNDLE: certifi's
    roots and it, as large a bundle to load as GitHub's clients load; the stack's processes inherit it). Production
    reaches GitHub over HTTPS: opening a connection there costs a CA bundle load and a handshake. An RSA key, as the
    bench has measured with."""
    bundle = tls.serve_over_tls(fake, Path(tempfile.mkdtemp(prefix="worker-cost-tls-")), rsa=True)
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)


def tally(database_url: str, acknowledged: set[tuple[str, str]], expected: Expected, fake: FakeGitHub) -> Tally:
    result = Tally()
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT provider, delivery_id, status, error, attempts FROM reviews_webhookdelivery")
        stored = set()
        for provider, delivery_id, status, error, attempts in rows:
            stored.add((provider, delivery_id))
            result.deliveries[status] += 1
            if status not in ("processed", "ignored"):
                result.stuck += 1
                result.errors[f"{status}: {(error or '')[:110]}"] += 1
            if attempts > 1:
                result.multi_attempts += 1
        result.missing_rows = len(acknowledged - stored)
        pulls = {
            (provider, external_id, number): (head, state)
            for provider, external_id, number, head, state in conn.execute(
                "SELECT c.provider, r.external_id, p.number, p.head_sha, p.state FROM reviews_pullrequest p "
                "JOIN reviews_repository r ON r.id = p.repository_id "
                "JOIN reviews_connection c ON c.id = r.connection_id"
            )
        }
        for provider, wanted in (("github", expected.github_pulls), ("gitlab", expected.gitlab_pulls)):
            for (external_id, number), head in wanted.items():
                found = pulls.get((provider, external_id, number))
                if found is None:
                    result.lost_effects.append(f"{provider} pull request {external_id}#{number} missing")
                elif found[0] != head:
                    result.lost_effects.append(f"{provider} {external_id}#{number} head {found[0][:8]} != {head[:8]}")
        reviews = {row[0] for row in conn.execute("SELECT external_id FROM reviews_review")}
        result.lost_effects += [f"github review {r} missing" for r in sorted(expected.github_reviews - reviews)]
        incidents = {
            (source, external_id): status
            for source, external_id, status in conn.execute(
                "SELECT source, external_id, status FROM telemetry_incident"
            )
        }
        for key, status in expected.incidents.items():
            if incidents.get(key) != status:
                result.lost_effects.append(f"{key[0]} incident {key[1]}: {incidents.get(key, 'missing')}")
        for label, query in (
            ("deliveries", "SELECT provider, delivery_id FROM reviews_webhookdelivery"),
            ("pull requests", "SELECT repository_id, number FROM reviews_pullrequest"),
            ("reviews", "SELECT pull_request_id, external_id FROM reviews_review"),
            ("incidents", "SELECT source, external_id FROM telemetry_incident"),
        ):
            counts = Counter(tuple(row) for row in conn.execute(query))
            extra = sum(n - 1 for n in counts.values() if n > 1)
            if extra:
                result.duplicated.append(f"{label}: {extra}")
        result.no_verdict = conn.execute(
            "SELECT count(*) FROM reviews_pullrequest p JOIN reviews_repository r ON r.id = p.repository_id "
            "WHERE p.state = 'open' AND r.is_active AND p.head_sha <> '' AND NOT EXISTS "
            "(SELECT 1 FROM reviews_policyevaluation e WHERE e.pull_request_id = p.id AND e.head_sha = p.head_sha)"
        ).fetchone()[0]  # type: ignore[index]
        github_heads = conn.execute(
            "SELECT r.full_path, p.head_sha FROM reviews_pullrequest p JOIN reviews_repository r "
            "ON r.id = p.repository_id JOIN reviews_connection c ON c.id = r.connection_id "
            "WHERE c.provider = 'github' AND p.state = 'open'"
        ).fetchall()
    posted = {(s["repo"], s["sha"]) for s in list(fake.statuses_posted) if s.get("context") == STATUS_CONTEXT}
    result.no_status = sum(1 for head in github_heads if tuple(head) not in posted)
    return result


def busy_share(seconds: float) -> float:
    """The share of the machine's CPU time spent outside idle over `seconds` (how noisy the machine is)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=int(os.environ.get("FAULTS_EVENTS", "10000")))
    parser.add_argument("--short", action="store_true", default=os.environ.get("FAULTS_SHORT", "") == "1")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("FAULTS_RATE", "0")))
    parser.add_argument("--senders", type=int, default=int(os.environ.get("FAULTS_SENDERS", "4")))
    parser.add_argument("--drain-timeout", type=float, default=float(os.environ.get("FAULTS_DRAIN_TIMEOUT", "0")))
    parser.add_argument("--keep", action="store_true", default=os.environ.get("FAULTS_KEEP", "") == "1")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rate = args.rate or (25.0 if args.short else 15.0)
    drain_timeout = args.drain_timeout or (100.0 if args.short else 480.0)
    if args.short:
        faults = [Fault(0.3, "worker SIGKILL"), Fault(0.6, "Redis restart (empty)")]
    else:
        faults = [
            Fault(0.2, "worker SIGKILL"),
            Fault(0.4, "Redis restart (empty)"),
            Fault(0.6, "worker SIGKILL"),
            Fault(0.8, "PostgreSQL restart"),
        ]

    idle_load = busy_share(2.0)
    fake = FakeGitHub(rate_limit=10**9).start()
    stack = Stack(fake, keep=args.keep)
    started = time.monotonic()
    try:
        log(f"private services in {stack.dir}")
        stack.start_postgres()
        stack.start_redis()
        stack.migrate()
        stack.start_web()
        stack.start_worker()
        stack.start_beat()
        stack.start_dispatcher()
        events = Events(fake, args.seed)
        sends, redelivered = events.build(args.events)
        log(f"stack up in {time.monotonic() - started:.0f} s; sending {len(sends)} webhooks at {rate:g}/s")
        sender = Sender(stack.url, sends, rate, args.senders)
        chaos = threading.Thread(target=run_faults, args=(stack, sender, faults, 2.0), daemon=True)
        chaos.start()
        sender.run()
        send_ended = time.monotonic()
        send_seconds = send_ended - sender.started
        chaos.join()
        last_fault = max(fault.ended for fault in faults)
        # The drain is timed from when both the faults and the intake are over: a fault before the last send
        # cannot drain before the sends after it do.
        quiet_from = max(last_fault, send_ended)
        log(f"sent in {send_seconds:.0f} s; waiting for the backlog")
        counted, drained_at = None, None
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            try:
                counted = tally(stack.database_url, sender.acknowledged, events.expected, fake)
            except psycopg.Error as error:
                log(f"count failed: {error}")
                time.sleep(1)
                continue
            if counted.settled and not counted.lost_effects:
                drained_at = time.monotonic()
                break
            time.sleep(1.0)
        counted = tally(stack.database_url, sender.acknowledged, events.expected, fake)
        busy = busy_share(1.0)
    finally:
        stack.stop()
        fake.stop()

    drain = None if drained_at is None else drained_at - quiet_from
    lost = counted.missing_rows + len(counted.lost_effects)
    dups = len(counted.duplicated)
    rows = [
        ("webhooks sent (distinct + redelivered)", f"{len(sends)} ({len(sends) - redelivered} + {redelivered})"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(sender.answers.items()))),
        ("acknowledged (distinct delivery ids)", str(len(sender.acknowledged))),
        ("never acknowledged (sender gave up)", str(len(sender.given_up))),
        ("send rate, senders, send time", f"{rate:g}/s, {args.senders}, {send_seconds:.0f} s"),
        *[(f"fault: {f.name}", f"at {f.at:.0%} of the send, back in {f.seconds:.1f} s") for f in faults],
        ("deliveries by state", ", ".join(f"{k}: {v}" for k, v in sorted(counted.deliveries.items()))),
        ("deliveries that took more than one attempt", str(counted.multi_attempts)),
        ("LOST: acknowledged, no row", str(counted.missing_rows)),
        ("LOST: effects missing or wrong", str(len(counted.lost_effects))),
        ("DUPLICATED rows", ", ".join(counted.duplicated) or "0"),
        ("STUCK: not processed/ignored", str(counted.stuck)),
        ("open pull requests, head without a verdict", str(counted.no_verdict)),
        ("open GitHub pull requests, no status accepted", str(counted.no_status)),
        (
            "drain after the last fault and send",
            "not drained" if drain is None else f"{drain:.0f} s (goal {DRAIN_GOAL:.0f} s)",
        ),
        (
            "drain after the last fault alone",
            "not drained" if drained_at is None else f"{drained_at - last_fault:.0f} s",
        ),
        ("machine busy before the run / at the end", f"{idle_load:.0%} / {busy:.0%} of 2 cores"),
        ("total wall time", f"{time.monotonic() - started:.0f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print(f"faults: {args.events} events{' (short)' if args.short else ''}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for reason, count in counted.errors.most_common(8):
        print(f"    stuck: {count} x {reason}")
    for line in counted.lost_effects[:10]:
        print(f"    lost: {line}")
    ok = lost == 0 and dups == 0 and counted.settled and drain is not None and drain <= DRAIN_GOAL
    print(f"faults: {'goal met' if ok else 'GOAL MISSED'}: {lost} lost, {dups} duplicated, {counted.stuck} stuck")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
