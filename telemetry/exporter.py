"""`GET /metrics`: Tandem's own metrics in Prometheus' text format (README "Watching Tandem").

Two kinds of figures:
- what the processes counted (`reviews.instruments`): webhooks, task runs, API calls, evaluations, the feedback
  loop. With PROMETHEUS_MULTIPROC_DIR set, every process (gunicorn's, Celery's, the dispatcher) wrote its own files
  there and they are added up here; without it, this process's own figures.
- what the database and the broker hold at the moment of the scrape: deliveries pending, processing, failed and
  dead-lettered, the oldest pending one's age, how overdue the most overdue one is, the evaluation debt, and the
  length of each Celery queue. Each is one query on an index (or one Redis round trip), whatever the history's
  size; a database or broker that does not answer is reported as down, and the rest is still served.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from reviews.access import metrics_scrape_refusal
from reviews.instruments import MULTIPROCESS_DIR
from reviews.models import PullRequest, WebhookDelivery

logger = logging.getLogger(__name__)

# The delivery states worth watching; processed and ignored ones are history.
WATCHED_STATES = (
    WebhookDelivery.Status.PENDING,
    WebhookDelivery.Status.PROCESSING,
    WebhookDelivery.Status.FAILED,
    WebhookDelivery.Status.DEAD,
)
# kombu's Redis transport keeps a queue's prioritised messages in lists of their own: "<queue>\x06\x16<priority>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = metrics_scrape_refusal(request)
    if refusal is not None:
        response = JsonResponse({"error": refusal.reason}, status=refusal.status)
        if refusal.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="tandem-metrics"'
        return response
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


def metrics_exposition() -> bytes:
    """Every figure, in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS_DIR:
        MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    registry.register(BrokerCollector())
    return generate_latest(registry)


class _ThisProcess:
    """This process's instruments (and its CPU, memory and garbage collector), when processes share no directory."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class DatabaseCollector:
    """The delivery queue and the evaluation debt as the database holds them now."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tandem_database_up", "Whether the database answered the scrape's queries.")
        try:
            figures = list(_database_figures())
        except Exception as error:  # noqa: BLE001 - a scrape must say the database is down, not fail
            logger.warning("metrics: the database did not answer: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures


def _database_figures() -> Iterator[Metric]:
    now = timezone.now()
    counts = dict(
        WebhookDelivery.objects.filter(status__in=WATCHED_STATES)
        .values_list("status")
        .annotate(count=Count("id"))
        .order_by()
    )
    deliveries = GaugeMetricFamily(
        "tandem_webhook_deliveries",
        "Webhook deliveries by state: pending (waiting for a worker or a retry), processing, failed (for good: the "
        "payload) and dead (retries exhausted). Processed and ignored ones are not counted.",
        labels=["status"],
    )
    for status in WATCHED_STATES:
        deliveries.add_metric([str(status)], counts.get(status, 0))
    yield deliveries

    oldest = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    yield GaugeMetricFamily(
        "tandem_webhook_delivery_oldest_pending_age_seconds",
        "Age of the oldest pending delivery (received, not yet processed; a retry's backoff counts), 0 when none.",
        value=(now - oldest).total_seconds() if oldest else 0.0,
    )
    most_overdue = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    yield GaugeMetricFamily(
        "tandem_webhook_delivery_overdue_seconds",
        "How long past its due time the most overdue pending delivery is: grows only while no dispatcher hands "
        "deliveries to workers, or no worker takes them.",
        value=(now - most_overdue).total_seconds() if most_overdue else 0.0,
    )
    owed = PullRequest.objects.filter(evaluation_owed_since__isnull=False).order_by("evaluation_owed_since")
    oldest_debt = owed.values_list("evaluation_owed_since", flat=True).first()
    yield GaugeMetricFamily(
        "tandem_evaluation_debt_oldest_age_seconds",
        "Age of the oldest change still waiting for its verdict pass, 0 when none.",
        value=(now - oldest_debt).total_seconds() if oldest_debt else 0.0,
    )


class BrokerCollector:
    """How many messages wait in each Celery queue, read from Redis at scrape time (nothing without a broker)."""

    def collect(self) -> Iterator[Metric]:
        if not settings.REDIS_URL:
            return
        up = GaugeMetricFamily("tandem_broker_up", "Whether the Celery broker (Redis) answered the scrape.")
        queued = GaugeMetricFamily(
            "tandem_celery_queue_length",
            "Messages waiting in each Celery queue (not yet taken by a worker); none while the broker is down.",
            labels=["queue"],
        )
        try:
            lengths = _queue_lengths(settings.CELERY_BROKER_URL, [queue.name for queue in settings.CELERY_TASK_QUEUES])
        except redis.RedisError as error:
            logger.warning("metrics: the broker did not answer: %s", error)
            lengths = {}
        up.add_metric([], 1 if lengths else 0)
        for name, length in lengths.items():
            queued.add_metric([name], length)
        yield up
        yield queued


def _queue_lengths(url: str, queues: list[str]) -> dict[str, int]:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        pipeline = client.pipeline(transaction=False)
        for queue in queues:
            for suffix in _PRIORITY_SUFFIXES:
                pipeline.llen(queue + suffix)
        replies = pipeline.execute()
    finally:
        client.close()
    step = len(_PRIORITY_SUFFIXES)
    return {queue: sum(int(n) for n in replies[i * step : (i + 1) * step]) for i, queue in enumerate(queues)}
