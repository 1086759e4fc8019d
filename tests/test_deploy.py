"""The Dockerfile, compose.yaml and the monitoring files under deploy/, checked without Docker: what compose runs is
what the README documents, every queue has a worker, the image is multi-stage and not root, and the dashboard and
alerts read metrics that exist. (`make docker-lint` runs hadolint and docker-compose too, where installed.)"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parent.parent
TANDEM_SERVICES = ("init", "web", "dispatcher", "worker-fast", "worker-background", "beat")
# Set by compose for the processes, not by the operator (README "Running with Docker" says what each does).
COMPOSE_ONLY = {"PROMETHEUS_MULTIPROC_DIR", "SEED_DEMO", "WEB_CONCURRENCY"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def queues_of(service: dict) -> set[str]:
    (option,) = [part for part in command_of(service) if part.startswith("--queues=")]
    return set(option.removeprefix("--queues=").split(","))


def documented_variables() -> set[str]:
    """Every variable named in the README's table of environment variables."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return {name for row in table.splitlines() if row.startswith("| `") for name in re.findall(r"`([A-Z_]+)`", row)}


# --- compose.yaml -------------------------------------------------------------------------------------------------


def test_compose_runs_every_part_of_production(compose):
    services = compose["services"]
    assert set(TANDEM_SERVICES) | {"db", "redis"} <= set(services)
    assert command_of(services["web"])[:2] == ["gunicorn", "config.wsgi"]
    assert command_of(services["dispatcher"]) == ["python", "manage.py", "dispatch_deliveries"]
    assert command_of(services["beat"])[:4] == ["celery", "-A", "config", "beat"]
    for worker in ("worker-fast", "worker-background"):
        assert command_of(services[worker])[:4] == ["celery", "-A", "config", "worker"]
    init = " ".join(command_of(services["init"]))
    assert "manage.py migrate --noinput" in init
    assert '"$$SEED_DEMO" = "true"' in init or "$SEED_DEMO" in init
    assert "seed_demo --if-empty" in init  # the demo only into an empty database: a restart never reseeds


@pytest.mark.parametrize("service", ["prometheus", "grafana"])
def test_the_monitoring_ports_listen_on_this_machine_only(compose, service):
    """/metrics wants METRICS_TOKEN; Prometheus, which scraped it with that token, answers every query without one,
    and Grafana starts with admin/admin: published on every interface, they handed anyone what the token guards."""
    for port in compose["services"][service]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port


def test_the_fast_worker_takes_the_latency_critical_queues_and_every_queue_has_a_worker(compose):
    fast = queues_of(compose["services"]["worker-fast"])
    background = queues_of(compose["services"]["worker-background"])
    routed = {name: route["queue"] for name, route in settings.CELERY_TASK_ROUTES.items()}
    critical = ("process_webhook_deliveries", "process_webhook_delivery", "evaluate_pull_request", "report_evaluation")
    for task in critical:
        assert routed[f"reviews.tasks.{task}"] in fast
    assert routed["reviews.tasks.sync_repository"] not in fast  # a backfill never delays a verdict
    assert routed["telemetry.tasks.correlate_incident"] not in fast
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert fast | background == declared, "every queue is consumed, and only declared ones"
    assert "housekeeping" in fast & background  # the dispatcher and reconciler run while either worker is busy


def test_every_tandem_process_gets_the_same_documented_environment(compose):
    services = compose["services"]
    environments = {name: services[name]["environment"] for name in TANDEM_SERVICES}
    shared = set(environments["web"]) - COMPOSE_ONLY
    for name, environment in environments.items():
        assert set(environment) - COMPOSE_ONLY == shared, name
    undocumented = (shared | COMPOSE_ONLY) - documented_variables()
    assert undocumented == set(), "README's table of environment variables names each"
    web = environments["web"]
    assert web["DEBUG"] == "false"
    assert web["SECRET_KEY"].startswith("${SECRET_KEY:?")  # required: compose refuses to start without it
    assert web["CONNECTION_SECRET_KEYS"].startswith("${CONNECTION_SECRET_KEYS:?")
    assert "@db:5432/" in web["DATABASE_URL"]
    assert web["REDIS_URL"].startswith("redis://redis:6379/")


def test_every_process_writes_its_metrics_into_one_shared_directory(compose):
    services = compose["services"]
    directory = services["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    for name in TANDEM_SERVICES:
        assert services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == directory
        assert f"metrics:{directory}" in services[name]["volumes"], name
    assert "metrics" in compose["volumes"]


def test_redis_keeps_queued_tasks_and_never_evicts_them(compose):
    redis = compose["services"]["redis"]
    command = " ".join(command_of(redis))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in compose["services"]["db"]["volumes"])


def test_health_checks_and_start_order(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "config/healthcheck.py"]
    assert (REPO_ROOT / "config" / "healthcheck.py").is_file()
    from config.broker import WORKER_OPTIONS

    for worker in ("worker-fast", "worker-background"):
        # No pub/sub in a worker (a Redis restart stopped it for good), so no `inspect ping` health check either.
        assert set(WORKER_OPTIONS) <= set(services[worker]["command"]), worker
        assert services[worker]["healthcheck"] == {"disable": True}, worker
    assert services["init"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "dispatcher", "worker-fast", "worker-background", "beat"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully", name


# --- Dockerfile ---------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def test_the_image_is_built_in_stages_on_slim_python_3_11():
    built = stages()
    assert len(built) >= 2
    for stage in built:
        assert stage[0][1].split()[0] == "python:3.11-slim"
    build_steps = " ".join(arguments for stage in built[:-1] for keyword, arguments in stage if keyword == "RUN")
    assert "manage.py collectstatic --noinput" in build_steps
    runtime = built[-1]
    assert any(keyword == "COPY" and arguments.startswith("--from=build") for keyword, arguments in runtime)
    assert not any(keyword == "RUN" and "pip install" in arguments for keyword, arguments in runtime)


def test_the_image_runs_as_a_user_that_is_not_root():
    users = [arguments for keyword, arguments in stages()[-1] if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_running_user_cannot_rewrite_the_code_it_runs():
    """Not root is half of it: the code and the collected static files belong to root, so a process that is made
    to write files cannot change what every later request runs. Only var/ (the embedded database) is its own."""
    runtime = stages()[-1]
    code = [arguments for keyword, arguments in runtime if keyword == "COPY" and arguments.split()[-1] == "/app"]
    assert code and not any("--chown" in arguments for arguments in code)
    assert any(keyword == "RUN" and "chown tandem:tandem /app/var" in arguments for keyword, arguments in runtime)


def test_the_image_checks_its_own_health_on_healthz():
    (healthcheck,) = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["python", "config/healthcheck.py"]
    assert '"/healthz"' in (REPO_ROOT / "config" / "healthcheck.py").read_text().replace("/healthz", '"/healthz"')
    assert ("EXPOSE", "8000") in dockerfile_instructions()


def test_the_health_check_names_a_host_django_accepts(monkeypatch):
    from config import healthcheck

    monkeypatch.setenv("ALLOWED_HOSTS", ".example.com,*,tandem.example.com")
    assert healthcheck.allowed_host() == "tandem.example.com"
    monkeypatch.setenv("ALLOWED_HOSTS", "*")
    assert healthcheck.allowed_host() == "localhost"


def test_the_build_context_leaves_out_the_virtualenv_and_local_data():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


@pytest.mark.parametrize("path", [".env", ".env.production", "deploy/github-app.private-key.pem", "node_modules"])
def test_the_image_never_copies_the_operators_secrets_or_node_modules(path):
    """`COPY . .` takes the build context: the README keeps SECRET_KEY and CONNECTION_SECRET_KEYS in `.env` beside
    compose.yaml, and GitHub hands an App's private key over as a .pem a person saves where they work."""
    ignored = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in ignored if line and not line.startswith("#")]
    assert any(fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[-1], pattern) for pattern in patterns)


# --- the dashboard and the alerts read metrics that exist -----------------------------------------------------------


def exported_families() -> set[str]:
    """The metric families /metrics serves: the broker's too, reported down here (nothing listens on port 1)."""
    from django.test import override_settings

    from telemetry.exporter import metrics_exposition

    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        text = metrics_exposition().decode()
    return set(re.findall(r"^# HELP (\w+)", text, flags=re.MULTILINE))


def metrics_in(expression: str) -> set[str]:
    return set(re.findall(r"\btandem_[a-z_]+", expression))


def unknown(expressions: list[str], families: set[str]) -> set[str]:
    used = set().union(*(metrics_in(expression) for expression in expressions))
    return {name for name in used if name not in families and re.sub(r"_(bucket|count|sum)$", "", name) not in families}


@pytest.mark.django_db
def test_the_dashboard_reads_only_metrics_tandem_exports():
    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "dashboards" / "tandem.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert any("tandem_webhook_to_verdict_seconds_bucket" in expression for expression in expressions)
    assert unknown(expressions, exported_families()) == set()


@pytest.mark.django_db
def test_the_alerts_read_only_metrics_tandem_exports():
    prometheus = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/metrics"
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    recommended = {"TandemWebhooksNotProcessed", "TandemDeadLetters", "TandemRateLimitLow", "TandemTaskFailures"}
    assert recommended <= set(alerts)
    assert unknown(list(alerts.values()), exported_families()) == set()
