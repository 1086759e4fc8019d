"""Settings come from the environment: the embedded default with none, PostgreSQL and Redis when set."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FERNET_KEY = "DXnmhdpXv7ZxPbpc6prq5GDbxgxl0RBJpNX_ULl3ffA="

SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
from config.celery import app
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "host": settings.DATABASES["default"].get("HOST", ""),
    "eager": app.conf.task_always_eager,
    "propagates": app.conf.task_eager_propagates,
    "broker": app.conf.broker_url,
    "transport": app.conf.broker_transport,
    "remote_control": app.conf.worker_enable_remote_control,
    "cache": settings.CACHES["default"].get("LOCATION", ""),
    "debug": settings.DEBUG,
}))
"""


def _settings_with(python: str, env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [python, "-c", SHOW_SETTINGS],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _bare(python_env: dict[str, str]) -> dict[str, str]:
    """The environment of a deployment that set nothing of Tandem's: no DEBUG, no keys, no URLs."""
    tandem = {"DEBUG", "SECRET_KEY", "CONNECTION_SECRET_KEYS", "DATABASE_URL", "REDIS_URL"}
    return {key: value for key, value in python_env.items() if key not in tandem}


# The served app and anything that loads the settings outside manage.py; manage.py in a bare checkout is a
# developer's (see the test below).
@pytest.mark.parametrize("command", [["-c", SHOW_SETTINGS], ["-c", "import config.wsgi"]])
def test_a_bare_environment_refuses_to_start_rather_than_run_with_debug_and_a_public_key(python, python_env, command):
    result = subprocess.run(
        [python, *command],
        env={**_bare(python_env), "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert "set DEBUG=true" in result.stderr  # says how to run for development


def test_debug_is_off_unless_set_even_with_a_secret_key(python, python_env):
    env = {**_bare(python_env), "SECRET_KEY": "s3cret-" + "x" * 50, "CONNECTION_SECRET_KEYS": FERNET_KEY}
    assert _settings_with(python, env)["debug"] is False


def test_the_public_development_key_is_refused_with_debug_off(python, python_env):
    env = {**_bare(python_env), "SECRET_KEY": "django-insecure-tandem-development-only", "DEBUG": "false"}
    result = subprocess.run(
        [python, "-c", SHOW_SETTINGS],
        env={**env, "CONNECTION_SECRET_KEYS": FERNET_KEY, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_development_targets_of_make_set_debug_themselves_and_production_ones_do_not():
    makefile = (REPO_ROOT / "Makefile").read_text()
    [line] = [line for line in makefile.splitlines() if line.endswith("export DEBUG ?= true")]
    targets = set(line.split(":", 1)[0].split())
    assert {"run", "test", "typecheck", "schema"} <= targets
    assert not {"worker", "beat", "faults"} & targets


def test_debug_true_alone_runs_on_sqlite_with_inline_tasks(python, python_env):
    shown = _settings_with(python, {**_bare(python_env), "DEBUG": "true"})
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["name"].endswith("var/tandem.sqlite3")
    assert shown["eager"] is True
    assert shown["propagates"] is True
    assert shown["debug"] is True


RUN_AN_INLINE_TASK = """
import django
django.setup()
from config.celery import app

@app.task
def add(a, b):
    return a + b

print("result", add.delay(2, 3).get())
"""


def test_an_inline_task_logs_no_broker_warning_when_no_broker_is_configured(python, python_env):
    # Celery takes a producer from kombu's pool even for an inline task; a broker URL naming no host made kombu warn
    # "No hostname was supplied" on every task that `make run` ran.
    result = subprocess.run(
        [python, "-c", RUN_AN_INLINE_TASK],
        env={**_bare(python_env), "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "result 5" in result.stdout
    assert "hostname" not in result.stderr + result.stdout


def test_database_and_redis_urls_switch_to_postgresql_and_a_redis_broker(python, python_env):
    shown = _settings_with(
        python,
        {
            **python_env,
            "DATABASE_URL": "postgres://postgres@db.internal:5432/tandem",
            "REDIS_URL": "redis://cache.internal:6379/0",
        },
    )
    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["name"] == "tandem"
    assert shown["host"] == "db.internal"
    assert shown["eager"] is False
    assert shown["broker"] == "redis://cache.internal:6379/0"
    assert shown["cache"] == "redis://cache.internal:6379/1"  # its own database: a flush never drops tasks
    # A Redis restart must not stop the worker: kombu's transport with two defects fixed, and no pub/sub (issue 11).
    assert shown["transport"] == "config.broker:Transport"
    assert shown["remote_control"] is False


@pytest.mark.parametrize(
    ("broker", "cache"), [("redis://r:6379/0", "redis://r:6379/1"), ("redis://r:6379/15", "redis://r:6379/14")]
)
def test_the_cache_lives_in_another_redis_database_than_the_broker(python, python_env, broker, cache):
    shown = _settings_with(python, {**python_env, "REDIS_URL": broker})
    assert (shown["broker"], shown["cache"]) == (broker, cache)


def _settings_refused(python: str, env: dict[str, str]) -> str:
    """Why the settings refused to load with this environment (their error output)."""
    result = subprocess.run(
        [python, "-c", SHOW_SETTINGS],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result.stderr


def test_a_cache_configured_on_the_brokers_database_is_refused(python, python_env):
    env = {**python_env, "REDIS_URL": "redis://r:6379/2", "REDIS_CACHE_URL": "redis://r:6379/2"}
    assert "REDIS_CACHE_URL must name another Redis database" in _settings_refused(python, env)


def test_production_refuses_to_start_without_a_secret_key(python, python_env):
    env = {key: value for key, value in python_env.items() if key != "SECRET_KEY"}
    result = subprocess.run(
        [python, "-c", SHOW_SETTINGS],
        env={**env, "DEBUG": "false", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("debug", ["false", "0", "off"])
def test_production_starts_with_a_secret_key_and_hardens_cookies(python, python_env, debug):
    code = SHOW_SETTINGS.replace(
        '"debug": settings.DEBUG,', '"debug": settings.DEBUG, "secure": settings.SESSION_COOKIE_SECURE,'
    )
    result = subprocess.run(
        [python, "-c", code],
        env={
            **python_env,
            "DEBUG": debug,
            "SECRET_KEY": "s3cret-for-test",
            "CONNECTION_SECRET_KEYS": "DXnmhdpXv7ZxPbpc6prq5GDbxgxl0RBJpNX_ULl3ffA=",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["debug"] is False
    assert shown["secure"] is True


def test_production_refuses_to_start_without_a_key_for_connection_secrets(python, python_env):
    env = {key: value for key, value in python_env.items() if key != "CONNECTION_SECRET_KEYS"}
    result = subprocess.run(
        [python, "-c", SHOW_SETTINGS],
        env={**env, "DEBUG": "false", "SECRET_KEY": "s3cret-for-test", "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CONNECTION_SECRET_KEYS must be set" in result.stderr


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-key-" + "x" * 40,
    "CONNECTION_SECRET_KEYS": "DXnmhdpXv7ZxPbpc6prq5GDbxgxl0RBJpNX_ULl3ffA=",
    "ALLOWED_HOSTS": "tandem.example.com,testserver",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}


def test_check_deploy_is_clean_in_production_mode(python, python_env):
    # Every tag, the API schema's included: a warning anywhere is a finding.
    result = subprocess.run(
        [python, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        # The browser test lets Playwright's event loop share the test database; a deployment never does.
        env={**{k: v for k, v in python_env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}, **PRODUCTION},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


REDIRECTS = """
import json, django
django.setup()
from django.test import Client
client = Client()
print(json.dumps({path: [r.status_code, r.get("Location", "")] for path in ["/healthz", "/teams/", "/api/v1/teams"]
                  for r in [client.get(path)]}))
"""


def test_production_redirects_to_https_except_the_health_probes(python, python_env):
    result = subprocess.run(
        [python, "-c", REDIRECTS], env={**python_env, **PRODUCTION}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["/healthz"] == [200, ""]
    assert shown["/teams/"] == [301, "https://testserver/teams/"]
    assert shown["/api/v1/teams"] == [301, "https://testserver/api/v1/teams"]


def test_manage_py_works_in_a_bare_checkout_and_the_served_app_still_fails_closed(python, python_env):
    import subprocess

    bare = {key: value for key, value in python_env.items() if key not in ("DEBUG", "SECRET_KEY")}
    checked = subprocess.run(
        [python, "manage.py", "makemigrations", "--check", "--dry-run"], env=bare, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    deployed = subprocess.run(  # a deployment names its SECRET_KEY or DEBUG: manage.py sets nothing for it
        [python, "manage.py", "check"], env={**bare, "DEBUG": "false"}, capture_output=True, text=True
    )
    assert deployed.returncode != 0
    assert "SECRET_KEY must be set" in deployed.stderr


@pytest.mark.parametrize("seconds", ["-1", "61"])
def test_a_pacing_wait_longer_than_an_evaluation_may_take_or_negative_is_refused(python, python_env, seconds):
    refused = _settings_refused(python, {**python_env, "BACKGROUND_PACING_MAX_WAIT": seconds})
    assert "BACKGROUND_PACING_MAX_WAIT must be between 0 (pacing off) and 60 seconds" in refused


@pytest.mark.parametrize("minutes", ["0", "-5", "43201"])
def test_a_protection_rule_wait_that_could_never_end_in_an_answer_is_refused(python, python_env, minutes):
    # 0 or less left no request in the re-check's window: never answered. (nan and inf are refused by env.float.)
    # GitHub gives up on a request after 30 days, so a longer wait never answers either.
    refused = _settings_refused(python, {**python_env, "PROTECTION_RULE_WAIT_MINUTES": minutes})
    assert "PROTECTION_RULE_WAIT_MINUTES must be more than 0 and at most 43200 minutes (30 days)" in refused
