from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from config.broker import WORKER_OPTIONS
from config.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def _tasks_run_inline() -> Iterator[None]:
    """Tests run Celery tasks inline, even where REDIS_URL is set; the worker test starts a real worker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True, scope="session")
def _loopback_reachable() -> Iterator[None]:
    """The fake chat and VCS servers listen on 127.0.0.1, which production refuses to send requests to."""
    allowed = ["127.0.0.1", "::1"]
    os.environ["OUTBOUND_ALLOWED_NETWORKS"] = ",".join(allowed)  # for the worker the worker test starts
    with override_settings(OUTBOUND_ALLOWED_NETWORKS=allowed):
        yield


@pytest.fixture
def python_env() -> dict[str, str]:
    """A copy of the environment for subprocesses that load Tandem's settings with variables of their own: the
    development settings (DEBUG=true, as make and pytest set) on the embedded default's database and broker."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["DEBUG"] = "true"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def fake_github():
    from tests.fakes.github import FakeGitHub

    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def fake_gitlab():
    from tests.fakes.gitlab import FakeGitLab

    with FakeGitLab() as fake:
        yield fake


@pytest.fixture
def github_connection(db, fake_github):
    from reviews.models import Connection

    return Connection.objects.create(
        provider="github", name="fake GitHub", base_url=fake_github.url, api_token=fake_github.token
    )


@pytest.fixture
def gitlab_connection(db, fake_gitlab):
    from reviews.models import Connection

    return Connection.objects.create(
        provider="gitlab", name="fake GitLab", base_url=fake_gitlab.url, api_token=fake_gitlab.token
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _test_database_url() -> str:
    """The URL of the database this test runs on, for a worker process to write to the same rows."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_queue(python, python_env, transactional_db):
    """A real Celery worker, started against Redis on a queue of its own; yields the queue's name.

    Use with `send_to_worker`. Needs REDIS_URL (tests that use it skip themselves where it is unset).
    """
    import subprocess
    import uuid

    from django.conf import settings

    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**python_env, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL}
    command = [python, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue]
    process = subprocess.Popen(
        [*command, *WORKER_OPTIONS, "--loglevel=INFO"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)  # shown by pytest when the test fails


def send_to_worker(task, args: list, queue: str) -> None:  # type: ignore[no-untyped-def]
    """Queue a task for the real worker (not inline, as every other test runs tasks)."""
    celery_app.conf.task_always_eager = False
    try:
        task.apply_async(args=args, queue=queue)
    finally:
        celery_app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _connections_forgotten() -> None:
    """Each test's connections are its own: the webhook views' in-process copy of them starts empty."""
    from reviews.services.connections import connections_forget

    connections_forget()
