from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _tasks_run_inline() -> Iterator[None]:
    """Tests run Celery tasks inline, even where REDIS_URL is set; the worker test starts a real worker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def python_env() -> dict[str, str]:
    """A copy of the environment for subprocesses that load Tandem's settings with variables of their own."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    env["PYTHONPATH"] = str(REPO_ROOT)
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
