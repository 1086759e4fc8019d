from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.test import override_settings

from config.broker import WORKER_OPTIONS
from config.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"

REDIS_DATABASES = 16  # a Redis server's default number of databases
CONFIGURED_REDIS_URLS: list[str] = []  # in an xdist worker: REDIS_URL and the cache's, as configured


def _redis_database(url: str) -> int:
    return int(urlsplit(url).path.strip("/") or 0)


def _with_redis_database(url: str, number: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


def worker_redis_urls(broker_url: str, cache_url: str, worker: int) -> tuple[str, str]:
    """The broker and cache Redis URLs of xdist worker `worker` (gw0 is 0): the first keeps the configured ones,
    each other one takes a pair of databases (2m, 2m + 1) that neither they nor another worker use.

    The cache is the broker's next database, as the settings derive it, so that a Celery worker a test starts with
    this REDIS_URL alone shares the test's cache.
    """
    if worker == 0:
        return broker_url, cache_url
    configured = {_redis_database(broker_url), _redis_database(cache_url)}
    after_configured = _redis_database(broker_url) // 2 + 1
    pair_count = REDIS_DATABASES // 2
    free_pairs = [
        pair
        for pair in ((after_configured + step) % pair_count for step in range(pair_count))
        if configured.isdisjoint({2 * pair, 2 * pair + 1})
    ]
    if worker > len(free_pairs):
        raise pytest.UsageError(f"{worker + 1} xdist workers need more than the {REDIS_DATABASES} Redis databases")
    broker = 2 * free_pairs[worker - 1]
    return _with_redis_database(broker_url, broker), _with_redis_database(cache_url, broker + 1)


def pytest_configure(config: pytest.Config) -> None:
    """Each xdist worker has a PostgreSQL (or SQLite) test database of its own (pytest-django's suffix) and here
    Redis databases of its own: a cache flush, a queued-task mark or a counter of one worker never reaches another.
    """
    from django.conf import settings

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not settings.REDIS_URL:
        return
    CONFIGURED_REDIS_URLS.extend([settings.REDIS_URL, settings.REDIS_CACHE_URL])
    broker, cache = worker_redis_urls(settings.REDIS_URL, settings.REDIS_CACHE_URL, int(worker.removeprefix("gw")))
    os.environ["REDIS_URL"] = broker  # for the Celery workers and other processes tests start
    if "REDIS_CACHE_URL" in os.environ:
        os.environ["REDIS_CACHE_URL"] = cache
    caches = {"default": {**settings.CACHES["default"], "LOCATION": cache}}
    # For the whole session; override_settings also replaces any cache connection already opened.
    override_settings(REDIS_URL=broker, REDIS_CACHE_URL=cache, CELERY_BROKER_URL=broker, CACHES=caches).enable()
    celery_app.conf.broker_url = broker


def _slow_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return float(marker.args[0]) if marker and marker.args else 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In xdist workers, the tests marked slow go first, the longest first: handed out last, one of them (the full
    demo seed takes minutes) would leave the other worker idle at the end. Serially the order stays as collected."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: -_slow_seconds(item))  # stable: the rest keep their order


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
