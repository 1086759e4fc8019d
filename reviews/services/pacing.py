"""Cooperative pacing: background work yields while the latency-critical lane is busy (issue 16).

The OS cannot be relied on to keep a backfill off the cores the webhook → verdict path needs (`nice` and cgroup
weights are not honoured everywhere: in some VMs a niced busy loop gets as much CPU as any other), so the background
lane steps aside itself, as GitLab's background migrations and Sidekiq throttles do. The fast worker marks each run
of a task from a latency-critical queue in Redis (`latency_critical_run_started` / `_ended`, from Celery's signals);
the background lane, between two pieces of work (each pull request a sync stores, each evaluation a sync queued),
waits while a run is under way or ended less than `BUSY_LINGER_SECONDS` ago.

Progress has a floor: one wait lasts at most `settings.BACKGROUND_PACING_MAX_WAIT` seconds, so under sustained
webhook load a backfill still stores a pull request every that many seconds (plus its own work). Pacing concerns
latency, never correctness, so every failure leans towards progress: without Redis, or with Redis down or slow, the
lane counts as idle and background work goes on at once. A wait holds no database transaction and no message
state that a killed worker could lose: the sync and the evaluations are idempotent and resume.
"""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from reviews.instruments import BACKGROUND_YIELD_SECONDS, BACKGROUND_YIELDS

logger = logging.getLogger(__name__)

# The queues whose runs make the lane busy: a webhook's pass and a verdict's post (README "Queues and workers").
# Housekeeping runs every few seconds on both workers and is not latency-critical itself.
LATENCY_CRITICAL_QUEUES = frozenset({"webhooks", "reports"})

# A run counts as busy from its start to this long after its end: the gap between two deliveries of a steady stream
# (the dispatcher's hand-over, the next batch) is busy too, so a backfill does not slip its work into it.
BUSY_LINGER_SECONDS = 1.0
# A run whose end never comes (its worker was killed) stops counting as busy after this long: the process time limit
# of a delivery batch, with room.
BUSY_RUN_SECONDS = 90.0
# How often a waiting background task looks again.
POLL_SECONDS = 0.2
# After Redis failed to answer, it is not asked again for this long: a stalled Redis costs the fast lane one short
# timeout, not one per run.
UNAVAILABLE_BACKOFF_SECONDS = 5.0
_TIMEOUT_SECONDS = 0.2
# Sorted set: run id → until when (epoch seconds) it counts as busy.
BUSY_KEY = "pacing:latency-critical-runs"

_clients: dict[str, redis.Redis] = {}  # by URL
_unavailable_until = 0.0


def latency_critical_run_started(run_id: str, *, now: float | None = None) -> None:
    """A run on a latency-critical queue began: the lane is busy until it ends (or `BUSY_RUN_SECONDS` pass)."""
    _busy_until_mark(run_id, (time.time() if now is None else now) + BUSY_RUN_SECONDS)


def latency_critical_run_ended(run_id: str, *, now: float | None = None) -> None:
    """The run ended: the lane stays busy for `BUSY_LINGER_SECONDS` more."""
    _busy_until_mark(run_id, (time.time() if now is None else now) + BUSY_LINGER_SECONDS)


def latency_critical_lane_busy(*, now: float | None = None) -> bool:
    """Whether a latency-critical run is under way or just ended. False when Redis cannot say (towards progress)."""
    client = _available_client()
    if client is None:
        return False
    try:
        return int(client.zcount(BUSY_KEY, time.time() if now is None else now, "+inf")) > 0
    except redis.RedisError as error:
        _unavailable(error)
        return False


def background_lane_yield(*, work: str) -> float:
    """Before a piece of background work (`work`: its kind, a metric label): wait while the latency-critical lane
    is busy, at most `settings.BACKGROUND_PACING_MAX_WAIT` seconds. Returns the seconds waited. Nothing to wait for
    where every lane runs inline (no Redis, the embedded default and the tests) or with pacing off (0)."""
    if not pacing_applies():
        return 0.0
    return lane_idle_wait(work=work, ceiling=settings.BACKGROUND_PACING_MAX_WAIT)


def pacing_applies() -> bool:
    from config.celery import app

    return bool(settings.REDIS_URL) and settings.BACKGROUND_PACING_MAX_WAIT > 0 and not app.conf.task_always_eager


def lane_idle_wait(*, work: str, ceiling: float) -> float:
    """Wait until the latency-critical lane is idle, or `ceiling` seconds have passed (the floor on progress)."""
    started = time.monotonic()
    if not latency_critical_lane_busy():
        return 0.0
    ended = "ceiling"
    while (remaining := started + ceiling - time.monotonic()) > 0:
        time.sleep(min(POLL_SECONDS, remaining))
        if not latency_critical_lane_busy():
            ended = "lane idle"
            break
    waited = time.monotonic() - started
    BACKGROUND_YIELDS.labels(work, ended).inc()
    BACKGROUND_YIELD_SECONDS.labels(work).inc(waited)
    return waited


def _busy_until_mark(run_id: str, until: float) -> None:
    client = _available_client()
    if client is None:
        return
    try:
        pipeline = client.pipeline(transaction=False)
        pipeline.zadd(BUSY_KEY, {run_id: until})
        pipeline.zremrangebyscore(BUSY_KEY, "-inf", time.time() - BUSY_RUN_SECONDS)  # runs long over
        pipeline.expire(BUSY_KEY, int(BUSY_RUN_SECONDS * 2))
        pipeline.execute()
    except redis.RedisError as error:
        _unavailable(error)  # the fast lane never fails for its mark


def _available_client() -> redis.Redis | None:
    if not settings.REDIS_URL or time.monotonic() < _unavailable_until:
        return None
    url = settings.REDIS_CACHE_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(
            url, socket_timeout=_TIMEOUT_SECONDS, socket_connect_timeout=_TIMEOUT_SECONDS
        )
    return _clients[url]


def _unavailable(error: Exception) -> None:
    global _unavailable_until
    _unavailable_until = time.monotonic() + UNAVAILABLE_BACKOFF_SECONDS
    logger.warning("pacing: Redis did not answer (%s); background work goes on unpaced for a while", error)


def pacing_unavailable_forget() -> None:
    """Ask Redis again at once, as if it had never failed (the tests)."""
    global _unavailable_until
    _unavailable_until = 0.0
