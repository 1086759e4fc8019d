"""/healthz answers while the process is up; /readyz only when the database (and broker) answer."""

from __future__ import annotations

import json
import subprocess

import pytest

READYZ = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_when_the_database_answers(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True}
    if settings.REDIS_URL:
        assert body["checks"]["broker"] == {"ok": True}


def _readyz_with(python: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [python, "-c", READYZ],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_readyz_reports_a_broken_database_as_not_ready(python, python_env):
    # Nothing listens on port 1: a real connection failure, not a mock.
    shown = _readyz_with(python, {**python_env, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/tandem"})
    assert shown["status"] == 503
    assert shown["body"]["status"] == "not ready"
    assert shown["body"]["checks"]["database"]["ok"] is False
    assert "OperationalError" in shown["body"]["checks"]["database"]["error"]


def test_readyz_reports_an_unreachable_broker_as_not_ready(python, python_env, tmp_path):
    shown = _readyz_with(
        python,
        {**python_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert shown["status"] == 503
    assert shown["body"]["checks"]["database"] == {"ok": True}
    assert shown["body"]["checks"]["broker"]["ok"] is False


def test_health_endpoints_refuse_other_methods(client):
    assert client.post("/healthz").status_code == 405


def test_readyz_names_what_failed_never_the_servers_addresses_or_users(python, python_env, tmp_path):
    """/readyz answers anyone (a load balancer probes it without credentials): the failure's type is enough there;
    the message, with the database's host, port and user or the broker's address, goes to the log only."""
    shown = _readyz_with(python, {**python_env, "DATABASE_URL": "postgres://tandem_owner@127.0.0.1:1/tandem"})
    database = shown["body"]["checks"]["database"]
    assert "OperationalError" in database["error"]
    assert "127.0.0.1" not in json.dumps(shown) and "tandem_owner" not in json.dumps(shown)
    shown = _readyz_with(
        python,
        {**python_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert "ConnectionError" in shown["body"]["checks"]["broker"]["error"]
    assert "127.0.0.1" not in json.dumps(shown)
