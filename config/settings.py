"""Tandem's settings: one set, read from the environment.

Fail closed: DEBUG is off unless DEBUG=true is set, and with DEBUG off Tandem refuses to start without a SECRET_KEY
of its own (and CONNECTION_SECRET_KEYS), so a deployment that forgets DEBUG never runs with debug on or with the
public development key. Development sets DEBUG=true itself: `make run`, `make test` and the other make targets do,
and pytest does through pyproject.toml. With DEBUG=true and nothing else, Tandem runs on the embedded default:
SQLite in var/, Celery tasks run inline (eagerly, errors propagated). Production sets DATABASE_URL, REDIS_URL,
SECRET_KEY and CONNECTION_SECRET_KEYS; the block at the end only hardens.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured
from kombu.entity import Queue

# Django's generic classes (ModelAdmin[Model], ModelForm[Model]) subscriptable at runtime, as the annotations use them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-tandem-development-only"  # noqa: S105 - used only when DEBUG is on
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (production): a long random value of your own. "
        "For development, set DEBUG=true (make run and make test do)."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Where Tandem is reached from outside; commit statuses link here.
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "reviews.admin_site.TandemAdminConfig",  # django.contrib.admin with Tandem's index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from the installed package: /api/docs/ needs no CDN
    "django_celery_beat",
    "reviews",
    "telemetry",
]

MIDDLEWARE = [
    "config.logs.RequestIdMiddleware",
    "config.json_errors.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.api_paths.ApiTrailingSlashMiddleware",  # before CommonMiddleware's APPEND_SLASH redirect
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "reviews.middleware.ViewerTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/teams/"
LOGOUT_REDIRECT_URL = "login"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "telemetry.context_processors.notices",
                "reviews.context_processors.team_switcher",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tandem.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)  # the embedded default's database and the tests' file live here
    # SQLite serialises writers; wait for the lock instead of failing while the dev server and a task write.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # Write-ahead logging: readers never wait for the writer, and a commit is one append synced at checkpoints
    # rather than a rollback journal synced on every commit (the demo seed waited ~90 s on those syncs). A crash
    # of the machine may lose the last commits, never corrupt the file: fine for the embedded default.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    # A file, not memory, so that a Celery worker started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Redis: the Celery broker and the shared cache, when configured -------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")


def _neighbour_database(url: str) -> str:
    """The same Redis server, the next database: a cache flush or eviction never touches queued tasks."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{number + 1 if number < 15 else number - 1}"))


REDIS_CACHE_URL = env.str("REDIS_CACHE_URL", default=_neighbour_database(REDIS_URL) if REDIS_URL else "")
if REDIS_URL and REDIS_CACHE_URL.rstrip("/") == REDIS_URL.rstrip("/"):
    raise ImproperlyConfigured(
        "REDIS_CACHE_URL must name another Redis database than REDIS_URL (the broker): a cache flush or eviction "
        "would drop queued tasks. Leave it unset to use the broker's next database."
    )
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_CACHE_URL,
            # A Redis that restarts or stalls must fail a call, never hang the process that made it.
            "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Without Redis, tasks run inline (below) and the broker is kombu's in-process memory transport. Celery still takes a
# producer from its pool for each inline task (to round-trip the arguments through JSON), and kombu's pool copies the
# connection's settings: a URL naming no host made it log "No hostname was supplied" on every task. The memory
# transport ignores the host, so it is named.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
if REDIS_URL:
    # kombu's Redis transport, with one defect fixed that made the worker exit after a Redis restart (see the module).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after each task unless told to keep them for
# this many tasks: a new PostgreSQL connection (a new server process, its caches cold) for every task, a large part
# of the worker's CPU per event (bench/README.md, issue 15). Kept instead, and closed as Django closes a request's
# (older than CONN_MAX_AGE, broken, left in a transaction) by config.celery_signals around each task.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No Redis pub/sub in the worker (with config.broker.WORKER_OPTIONS): after a Redis restart, redis-py 8 subscribed
# again and waited for a message with no timeout, inside the worker's event loop, which stopped for good (issue 11).
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# The same for the broker: a half-open connection after a Redis restart is noticed and replaced, not waited on.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 15,
    "retry_on_timeout": True,
}
CELERY_TIMEZONE = "UTC"
# Beat's housekeeping (the dispatcher, the verdict reconciler) has a queue of its own that every worker also
# consumes: behind a backlog in the one default queue, its messages expired before a worker reached them, so the
# dispatcher that re-queues what a broker lost never ran while it was needed most.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES: tuple[Queue, ...] = (Queue("celery"), Queue("housekeeping"))
CELERY_TASK_ROUTES = {
    "reviews.tasks.dispatch_due_deliveries": {"queue": "housekeeping"},
    "reviews.tasks.requeue_waiting_deliveries": {"queue": "housekeeping"},
    "reviews.tasks.reconcile_verdicts": {"queue": "housekeeping"},
    "telemetry.tasks.dispatch_due_chat_notices": {"queue": "housekeeping"},
    # Beat's look at the protection rules left waiting: the answers it queues go to `reports`; the look itself on
    # `reports` would mark the latency-critical lane busy every 30 s and hold background work back (pacing).
    "telemetry.tasks.recheck_protection_rules": {"queue": "housekeeping"},
}
# Queues that never wait behind each other (README "Queues and workers"): a webhook's pass and a verdict's report
# are latency-critical; a backfill, a CODEOWNERS refresh or an incident's ranking may take minutes and must never
# stand in front of them. A worker started without -Q consumes every queue listed here (the embedded default and
# `make worker` keep working); production runs one worker for `webhooks,reports,housekeeping` and one for the rest.
CELERY_TASK_QUEUES += (Queue("webhooks"), Queue("reports"), Queue("sync"), Queue("correlation"))
CELERY_TASK_ROUTES |= {
    "reviews.tasks.process_webhook_deliveries": {"queue": "webhooks"},
    "reviews.tasks.process_webhook_delivery": {"queue": "webhooks"},
    "reviews.tasks.evaluate_pull_request": {"queue": "webhooks"},
    # What a sync stored (a backfill: every open pull request) is evaluated behind the sync, on the background worker.
    "reviews.tasks.evaluate_pull_request_in_background": {"queue": "sync"},
    "reviews.tasks.report_evaluation": {"queue": "reports"},
    "reviews.tasks.sync_repository": {"queue": "sync"},
    "reviews.tasks.sync_all_repositories": {"queue": "sync"},
    "reviews.tasks.fetch_missing_facts": {"queue": "sync"},
    "reviews.tasks.refresh_codeowners": {"queue": "sync"},
    "reviews.tasks.reevaluate_closing_risk_windows": {"queue": "sync"},
    "reviews.tasks.refresh_pull_request_figures": {"queue": "sync"},
    "telemetry.tasks.link_deployment_changes": {"queue": "correlation"},
    "telemetry.tasks.correlate_incident": {"queue": "correlation"},
    "telemetry.tasks.notify_chat_of_cause": {"queue": "correlation"},
    "telemetry.tasks.answer_protection_rule": {"queue": "reports"},
    "telemetry.tasks.repair_telemetry": {"queue": "correlation"},
    # Reviewer suggestions read history and may call the VCS: background work, never in front of a verdict.
    "reviews.tasks.suggest_reviewers": {"queue": "sync"},
    # Alerts and digests are figures over history, like correlation; their chat and e-mail notices go with them.
    "telemetry.tasks.run_alerts": {"queue": "correlation"},
    "telemetry.tasks.send_weekly_digests": {"queue": "correlation"},
    "telemetry.tasks.notify_chat_of_alert": {"queue": "correlation"},
    "telemetry.tasks.notify_chat_of_alert_closed": {"queue": "correlation"},
    "telemetry.tasks.notify_chat_of_digest": {"queue": "correlation"},
    "telemetry.tasks.email_digest": {"queue": "correlation"},
}
# Beat reads its schedule from the database (django-celery-beat), so that a superuser changes it in the admin
# without a deploy. The dict below is the one source of the defaults: migration reviews.0022 and every start of beat
# create the entries missing from the database, and never overwrite one an admin edited (config/beat.py).
CELERY_BEAT_SCHEDULER = "config.beat:DefaultsOnceScheduler"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Webhooks bring changes within seconds; these incremental syncs repair whatever they missed.
    "sync-github": {"task": "reviews.tasks.sync_all_repositories", "schedule": 15 * 60, "args": ["github"]},
    "sync-gitlab": {"task": "reviews.tasks.sync_all_repositories", "schedule": 15 * 60, "args": ["gitlab"]},
    # The database is the source of truth for pending webhook work: every few seconds, whatever is due (a hand-over
    # lost with the broker, a retry whose backoff ran out, a delivery whose worker died) goes to a worker.
    "dispatch-due-deliveries": {
        "task": "reviews.tasks.dispatch_due_deliveries",
        "schedule": env.float("DELIVERY_DISPATCH_SECONDS", default=5.0),
        "options": {"expires": 30},
    },
    # Open pull requests whose head has no verdict, and verdicts the provider never accepted, are done again: often
    # enough that a verdict lost with the broker is back within two minutes (evaluating again is idempotent).
    "reconcile-verdicts": {
        "task": "reviews.tasks.reconcile_verdicts",
        "schedule": env.float("VERDICT_RECONCILE_SECONDS", default=30.0),
        "options": {"expires": 25},
    },
    # A team's chat notice that is due (new, or a retry whose backoff ran out) goes to a worker.
    "dispatch-due-chat-notices": {
        "task": "telemetry.tasks.dispatch_due_chat_notices",
        "schedule": 15,
        "options": {"expires": 14},
    },
    # Each team's figures against its own baseline (telemetry.drift): alerts open and close; recent days recomputed.
    "run-alerts": {"task": "telemetry.tasks.run_alerts", "schedule": 60 * 60, "options": {"expires": 55 * 60}},
    # Hourly, so a missed hour costs nothing: each team's digest of last week is recorded and sent once.
    "send-weekly-digests": {
        "task": "telemetry.tasks.send_weekly_digests",
        "schedule": 60 * 60,
        "options": {"expires": 55 * 60},
    },
    # A deployment protection rule left waiting because its sha was not synced yet is checked again (and answered).
    "recheck-protection-rules": {
        "task": "telemetry.tasks.recheck_protection_rules",
        "schedule": 30,
        "options": {"expires": 25},
    },
    # Re-queues deployments never linked and incidents never ranked (a lost task), so nothing stays behind.
    "repair-telemetry": {"task": "telemetry.tasks.repair_telemetry", "schedule": 10 * 60},
    # A verdict waits while a head's files, commits or reviews are missing: fetch them again after a backoff.
    "fetch-missing-facts": {"task": "reviews.tasks.fetch_missing_facts", "schedule": 15},
    # CODEOWNERS that could not be read, or was read long ago, is read again (conditionally: no quota if unchanged).
    "refresh-codeowners": {"task": "reviews.tasks.refresh_codeowners", "schedule": 60, "options": {"expires": 55}},
    # Stored review figures that a late event made owed (or that are missing) are computed before a page needs them.
    "refresh-pull-request-figures": {
        "task": "reviews.tasks.refresh_pull_request_figures",
        "schedule": 60,
        "options": {"expires": 55},
    },
    # An incident leaving a policy's window (`touches_incident_within_days`, extra approvals) changes verdicts.
    "reevaluate-closing-risk-windows": {
        "task": "reviews.tasks.reevaluate_closing_risk_windows",
        "schedule": 30 * 60,
        "options": {"expires": 25 * 60},
    },
}

# --- Untrusted JSON (webhooks and the REST API) ------------------------------------------------------------
# A larger body is refused (413), deeper nesting too (400); README "Limits". Django's own cap on a request body
# is the same figure, so the two never disagree.
JSON_MAX_BODY_BYTES = env.int("JSON_MAX_BODY_BYTES", default=25 * 1024 * 1024)
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=100)
DATA_UPLOAD_MAX_MEMORY_SIZE = JSON_MAX_BODY_BYTES

# --- Connection secrets, encrypted at rest (README "Connection secrets") -------------------------------------
# Fernet keys, comma-separated: the first encrypts, every one decrypts (rotation). Required in production; the
# embedded default derives one from the development SECRET_KEY.
CONNECTION_SECRET_KEYS = env.list("CONNECTION_SECRET_KEYS", default=[])
if not CONNECTION_SECRET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CONNECTION_SECRET_KEYS must be set when DEBUG is off: generate one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    CONNECTION_SECRET_KEYS = [
        base64.urlsafe_b64encode(hashlib.sha256(f"tandem-connection-secrets:{SECRET_KEY}".encode()).digest()).decode()
    ]

# --- VCS and webhooks -------------------------------------------------------------------------------------
# Instance-wide secrets; a Connection's own secret, when set, overrides them for its repositories.
# Who hands a new webhook delivery to a worker: "dispatcher" (the row is the queue; `manage.py dispatch_deliveries`
# hears of it through PostgreSQL NOTIFY, and beat's dispatcher every DELIVERY_DISPATCH_SECONDS is the fallback) or
# "request" (the web process queues it itself, a broker round trip in every acknowledgement).
WEBHOOK_HAND_OVER = env.str("WEBHOOK_HAND_OVER", default="dispatcher")
if WEBHOOK_HAND_OVER not in {"dispatcher", "request"}:
    raise ImproperlyConfigured("WEBHOOK_HAND_OVER must be 'dispatcher' or 'request'.")
GITHUB_WEBHOOK_SECRET = env.str("GITHUB_WEBHOOK_SECRET", default="")
GITLAB_WEBHOOK_TOKEN = env.str("GITLAB_WEBHOOK_TOKEN", default="")
GITHUB_TOKEN = env.str("GITHUB_TOKEN", default="")
GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com")
# The instance-wide connection as a GitHub App (README "Install Tandem as a GitHub App"): its id, and its private key
# in PEM, from the variable itself (a literal "\n" stands for a line break) or from a file.
GITHUB_APP_ID = env.str("GITHUB_APP_ID", default="")
GITHUB_APP_PRIVATE_KEY = env.str("GITHUB_APP_PRIVATE_KEY", default="").replace("\\n", "\n")
GITHUB_APP_PRIVATE_KEY_PATH = env.str("GITHUB_APP_PRIVATE_KEY_PATH", default="")
GITLAB_TOKEN = env.str("GITLAB_TOKEN", default="")
GITLAB_URL = env.str("GITLAB_URL", default="https://gitlab.com")
# Sync pauses when fewer API calls than this remain, so webhook-driven work (statuses) still has budget.
SYNC_RATE_LIMIT_RESERVE = env.int("SYNC_RATE_LIMIT_RESERVE", default=100)
# Sync reads pull requests' details through GraphQL, many to a call (REST for what GraphQL lacks); false: REST only.
SYNC_GRAPHQL = env.bool("SYNC_GRAPHQL", default=True)
# Likewise for GitHub's GraphQL budget, in points (a backfill page of 100 pull requests costs about 46).
SYNC_GRAPHQL_POINTS_RESERVE = env.int("SYNC_GRAPHQL_POINTS_RESERVE", default=200)

# Background work (each pull request a sync stores, each evaluation a sync queued) waits while the latency-critical
# worker is busy, at most this many seconds at a time (reviews.services.pacing): under sustained webhook load a
# backfill still stores a pull request every this-many seconds. 0 turns pacing off. At most 60: an evaluation's
# task has two minutes.
BACKGROUND_PACING_MAX_WAIT = env.float("BACKGROUND_PACING_MAX_WAIT", default=5.0)
if not 0 <= BACKGROUND_PACING_MAX_WAIT <= 60:
    raise ImproperlyConfigured("BACKGROUND_PACING_MAX_WAIT must be between 0 (pacing off) and 60 seconds")

# --- Outbound requests to URLs people typed (team chat webhooks) --------------------------------------------
# Only public addresses are reached unless listed here (addresses or CIDR networks, e.g. "10.20.0.0/16" for an
# internal Mattermost). Loopback, private, link-local and metadata addresses are refused otherwise.
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])

# --- Incidents and deployments -------------------------------------------------------------------------------
PAGERDUTY_WEBHOOK_SECRET = env.str("PAGERDUTY_WEBHOOK_SECRET", default="")  # comma-separated while rotating
OPSGENIE_WEBHOOK_TOKEN = env.str("OPSGENIE_WEBHOOK_TOKEN", default="")
# A GitHub deployment protection rule whose sha Tandem has not seen waits this long for the sync before it is
# rejected with the reason (README "GitHub deployment protection rules").
PROTECTION_RULE_WAIT_MINUTES = env.float("PROTECTION_RULE_WAIT_MINUTES", default=60.0)
if not 0 < PROTECTION_RULE_WAIT_MINUTES <= 43200:  # GitHub gives up on a request after 30 days
    raise ImproperlyConfigured("PROTECTION_RULE_WAIT_MINUTES must be more than 0 and at most 43200 minutes (30 days)")
TELEMETRY_SUSPECT_WINDOW_HOURS = env.float("TELEMETRY_SUSPECT_WINDOW_HOURS", default=72.0)
TELEMETRY_PRODUCTION_ENVIRONMENTS = env.list("TELEMETRY_PRODUCTION_ENVIRONMENTS", default=["production", "prod"])
TELEMETRY_FIRST_DEPLOYMENT_LOOKBACK_DAYS = env.float("TELEMETRY_FIRST_DEPLOYMENT_LOOKBACK_DAYS", default=14.0)

# --- Metrics (shared/METRICS.md) ----------------------------------------------------------------------------
RUBBER_STAMP_MINUTES_PER_100_LINES = env.float("RUBBER_STAMP_MINUTES_PER_100_LINES", default=5.0)
# METRICS.md leaves bots out of every figure, as authors and as reviewers; true counts them in.
METRICS_INCLUDE_BOTS = env.bool("METRICS_INCLUDE_BOTS", default=False)

# --- Tandem's own metrics (GET /metrics, Prometheus) ---------------------------------------------------------
# A scrape passes every check that is configured: the bearer token (`Authorization: Bearer …`) and the client's
# address (REMOTE_ADDR, not a forwarded header) in one of the networks. With neither set, the embedded default
# (DEBUG on) answers anyone and production answers 403 saying what to set. Under gunicorn and Celery, set
# PROMETHEUS_MULTIPROC_DIR (an empty directory shared by every process) so that one scrape sees them all.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not an address or network.") from _error

# --- REST API -----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "reviews.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "reviews.api.errors.json_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "reviews.api.renderers.SafeJSONRenderer",  # a lone surrogate echoed from a request is escaped, not a 500
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "reviews.api.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "reviews.api.fields.Pages",  # bounded page and page_size: a 400 naming them
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tandem API",
    "DESCRIPTION": "Code review and pairing workflow server.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Nothing but webhooks and the health probes answers without authentication; the schema neither.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Two choice sets share the field name "status": each gets a name of its own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStatusEnum": "telemetry.models.Deployment.Status",
        "IncidentStatusEnum": "telemetry.models.Incident.Status",
    },
}

# "plain" lines for people, or "json": one object per line with the request, delivery, task, team and repository
# where known (config/logs.py), for a log pipeline.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # One line per task run is noise when tasks run inline (the embedded default); workers log their own.
    "loggers": {"celery.app.trace": {"level": env.str("CELERY_TRACE_LOG_LEVEL", default="WARNING")}},
}

# --- Production hardening -----------------------------------------------------------------------------------
if not DEBUG:
    # Static files straight from the app server, compressed and cache-busted (run collectstatic first).
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    # HTTPS only. Behind a proxy that terminates TLS, it must send X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER).
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe over plain HTTP: a redirect would read as "down".
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
