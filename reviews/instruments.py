"""Every Prometheus instrument Tandem records into, defined once (README "Watching Tandem").

It lives in reviews, the app every other module may import, so that the webhook views, the VCS clients, the policy
engine's caller, telemetry's services and config's Celery signal handlers all record into the same instruments;
telemetry serves them at `GET /metrics` together with the figures read from the database at scrape time
(`telemetry.exporter`).

Under gunicorn and Celery several processes record at once: with PROMETHEUS_MULTIPROC_DIR set, each writes its own
files there and the scrape adds them up. Each process names its files after its host and pid, so that processes of
several containers can share one directory without two of them writing the same file (pids repeat across
containers). Labels take only bounded values: providers, task names, endpoint templates, outcomes — never an id.
"""

from __future__ import annotations

import os
import re
import socket

from prometheus_client import Counter, Gauge, Histogram, values

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def process_identifier() -> str:
    """Distinct for every process writing into the shared directory: host and pid, without underscores (the
    multiprocess collector splits file names on them)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64]
    return f"{host}-{os.getpid()}"


if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)
    # Chosen before the first instrument below is made: every value is then an mmapped file of this process's own.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

# Seconds: from a fraction of a second (an evaluation, an API call) to hours (a delivery waiting for its retries).
_SHORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LOOP_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 3 * 3600.0)
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0)

# --- webhooks ---------------------------------------------------------------------------------------------
WEBHOOKS_RECEIVED = Counter(
    "tandem_webhooks_received",
    "Webhook requests answered, by provider, event (only once the sender is verified; 'unverified' before) and "
    "outcome (accepted, duplicate, rejected, invalid, refused, error).",
    ["provider", "event", "outcome"],
)
WEBHOOK_TO_VERDICT = Histogram(
    "tandem_webhook_to_verdict_seconds",
    "From a webhook's receipt (WebhookDelivery.received_at) to the provider accepting the verdict it changed, "
    "observed once per delivery behind a posted verdict (by the delivery's pass or its report's retries).",
    ["provider"],
    buckets=_LOOP_BUCKETS,
)

# --- Celery tasks -----------------------------------------------------------------------------------------
TASK_RUNS = Counter(
    "tandem_task_runs",
    "Celery task runs by task and how they ended (success, failure, retry).",
    ["task", "state"],
)
TASK_DURATION = Histogram(
    "tandem_task_duration_seconds", "Time a Celery task run took, by task.", ["task"], buckets=_TASK_BUCKETS
)

# --- pacing of background work (reviews.services.pacing) ---------------------------------------------------
BACKGROUND_YIELDS = Counter(
    "tandem_background_yields",
    "Times background work (a sync's pull request, a sync's evaluation) found the latency-critical lane busy and "
    "waited, by work and how the wait ended ('lane idle', or 'ceiling': BACKGROUND_PACING_MAX_WAIT ran out).",
    ["work", "ended"],
)
BACKGROUND_YIELD_SECONDS = Counter(
    "tandem_background_yield_seconds",
    "Seconds background work spent waiting for the latency-critical lane to go idle, by work.",
    ["work"],
)

# --- GitHub and GitLab APIs -------------------------------------------------------------------------------
VCS_API_CALLS = Counter(
    "tandem_vcs_api_calls",
    "Requests to GitHub and GitLab by provider, method, endpoint template and HTTP status ('unreachable' when "
    "nothing answered). GitHub's 304s (conditional requests) cost no quota.",
    ["provider", "method", "endpoint", "status"],
)
VCS_RATE_LIMIT_REMAINING = Gauge(
    "tandem_vcs_rate_limit_remaining",
    "API calls (GraphQL: points) left in the current rate-limit window, as the provider said last, by provider, "
    "host and the resource whose budget it is (GitHub's X-RateLimit-Resource: core, graphql, search; GitLab's "
    "RateLimit-Name: throttle_authenticated_api; 'unnamed' when the answer did not say).",
    ["provider", "host", "resource"],
    multiprocess_mode="mostrecent",
)
_RESOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def rate_limit_resource(said: object, default: str = "unnamed") -> str:
    """The rate-limit resource a provider named in its answer, as a label: its own budgets (GraphQL's points, core
    REST calls, search) each keep their headroom. Only a plain name is a label; anything else is `default`."""
    name = said.strip().lower() if isinstance(said, str) else ""
    return name if _RESOURCE_NAME.match(name) else default


# --- verdicts ---------------------------------------------------------------------------------------------
EVALUATIONS = Counter(
    "tandem_evaluations",
    "Policy evaluations by outcome and whether the verdict changed for its head.",
    ["outcome", "changed"],
)
EVALUATION_DURATION = Histogram(
    "tandem_evaluation_duration_seconds",
    "Time to evaluate a pull request (read its snapshot, run the policy, store the verdict).",
    buckets=_SHORT_BUCKETS,
)
VERDICT_REPORTS = Counter(
    "tandem_verdict_reports",
    "Attempts to post a verdict as a commit status, by provider and result (reported, unchanged, failed, "
    "rate limited, no token, superseded).",
    ["provider", "result"],
)

# --- production's side ------------------------------------------------------------------------------------
DEPLOYMENTS_LINKED = Counter(
    "tandem_deployments_linked",
    "Deployments linked to the changes they shipped, by method (compare, merge order, none).",
    ["method"],
)
INCIDENTS_CORRELATED = Counter("tandem_incidents_correlated", "Incidents whose suspect changes were ranked (again).")
