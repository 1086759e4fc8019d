"""Background work yields to the latency-critical lane (issue 16, reviews.services.pacing): a backfill's pull
requests and evaluations wait while a webhook's run is under way or just ended, each wait has a ceiling (so a
backfill progresses under sustained load), and a Redis that does not answer never stalls nor fails either lane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from config import celery_signals
from reviews import tasks
from reviews.models import PullRequest
from reviews.services import pacing
from reviews.services.pacing import (
    BUSY_LINGER_SECONDS,
    BUSY_RUN_SECONDS,
    POLL_SECONDS,
    background_lane_yield,
    lane_idle_wait,
    latency_critical_lane_busy,
    latency_critical_run_ended,
    latency_critical_run_started,
)
from reviews.services.sync import repository_for_sync
from tests.test_broker import PrivateRedis, needs_redis_server

pytestmark = needs_redis_server


class FakeTime:
    """The pacing module's clock: sleeping moves it on at once, and `on_sleep` lets the world change meanwhile."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep()


@pytest.fixture
def lane(tmp_path: Path, settings) -> Iterator[PrivateRedis]:
    """Pacing's Redis: a private server, never the shared one."""
    server = PrivateRedis(tmp_path)
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
    settings.REDIS_CACHE_URL = f"redis://127.0.0.1:{server.port}/1"
    pacing.pacing_unavailable_forget()
    yield server
    server.kill()
    pacing.pacing_unavailable_forget()


@pytest.fixture
def clock(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(pacing, "time", fake)
    return fake


def yields(work: str, ended: str) -> float:
    return REGISTRY.get_sample_value("tandem_background_yields_total", {"work": work, "ended": ended}) or 0.0


def yield_seconds(work: str) -> float:
    return REGISTRY.get_sample_value("tandem_background_yield_seconds_total", {"work": work}) or 0.0


def test_background_work_goes_on_at_once_while_the_lane_is_idle(lane, clock):
    assert lane_idle_wait(work="sync", ceiling=5) == 0.0
    assert clock.slept == []


def test_background_work_waits_while_a_webhook_run_is_under_way_and_goes_on_once_it_has_ended(lane, clock):
    latency_critical_run_started("delivery-batch")
    before, seconds_before = yields("sync", "lane idle"), yield_seconds("sync")

    def the_run_ends_after_three_polls() -> None:
        if len(clock.slept) == 3:
            latency_critical_run_ended("delivery-batch", now=clock.now - BUSY_LINGER_SECONDS - 0.01)

    clock.on_sleep = the_run_ends_after_three_polls
    waited = lane_idle_wait(work="sync", ceiling=5)
    assert waited == pytest.approx(3 * POLL_SECONDS)
    assert yields("sync", "lane idle") == before + 1
    assert yield_seconds("sync") == pytest.approx(seconds_before + waited)  # what /metrics shows


def test_a_run_that_just_ended_keeps_the_lane_busy_a_moment_then_frees_it(lane, clock):
    latency_critical_run_started("report")
    latency_critical_run_ended("report")
    assert latency_critical_lane_busy(now=clock.now + BUSY_LINGER_SECONDS / 2)  # the next delivery is due
    assert not latency_critical_lane_busy(now=clock.now + BUSY_LINGER_SECONDS + 0.01)


def test_under_sustained_load_each_wait_ends_at_the_ceiling(lane, clock):
    latency_critical_run_started("delivery-batch")  # never ends while the wait lasts
    before = yields("evaluation", "ceiling")
    assert lane_idle_wait(work="evaluation", ceiling=5) == pytest.approx(5)
    assert latency_critical_lane_busy()
    assert yields("evaluation", "ceiling") == before + 1


def test_a_killed_workers_run_stops_counting_as_busy(lane, clock):
    latency_critical_run_started("killed", now=clock.now - BUSY_RUN_SECONDS - 1)  # its end never came
    assert not latency_critical_lane_busy()


def test_a_backfill_under_sustained_load_stores_every_pull_request_one_per_ceiling(
    lane, clock, fake_github, github_connection, settings, monkeypatch
):
    settings.BACKGROUND_PACING_MAX_WAIT = 5
    monkeypatch.setattr(pacing, "pacing_applies", lambda: True)  # as on a worker (tests run tasks inline)
    fake_github.seed_repository("octocat/Hello-World", n_pulls=6)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    latency_critical_run_started("endless-webhooks")
    before = yields("sync", "ceiling")
    started = clock.now

    assert tasks.sync_repository.run(repository.pk) == "synced 6 pull requests in 1 API calls"

    assert PullRequest.objects.filter(repository=repository).count() == 6
    assert yields("sync", "ceiling") == before + 6  # one wait per pull request, none longer than the ceiling
    assert clock.now - started >= 6 * 5


def test_a_sync_evaluation_waits_for_the_lane_before_it_evaluates(lane, clock, settings, monkeypatch):
    settings.BACKGROUND_PACING_MAX_WAIT = 3
    monkeypatch.setattr(pacing, "pacing_applies", lambda: True)
    order: list[str] = []
    monkeypatch.setattr(tasks, "pull_request_verdict_pass", lambda **_: order.append("evaluated") or "settled")
    latency_critical_run_started("delivery-batch")
    clock.on_sleep = lambda: order.append("waited") if not order else None

    assert tasks.evaluate_pull_request_in_background.run(123) == "settled"
    assert order == ["waited", "evaluated"]
    assert clock.slept and sum(clock.slept) == pytest.approx(3)


def test_with_redis_down_neither_lane_stalls_nor_fails(lane, clock):
    lane.kill()
    latency_critical_run_started("delivery-batch")  # the fast lane's mark is lost, quietly
    assert not latency_critical_lane_busy()  # towards progress: the background lane counts it idle
    assert lane_idle_wait(work="sync", ceiling=5) == 0.0
    assert clock.slept == []


def test_pacing_is_off_where_every_task_runs_inline_or_when_switched_off(lane, clock, settings):
    latency_critical_run_started("delivery-batch")
    assert background_lane_yield(work="sync") == 0.0  # the tests run tasks inline, as the embedded default
    settings.BACKGROUND_PACING_MAX_WAIT = 0
    assert not pacing.pacing_applies()
    assert clock.slept == []


def _task(queue: str, *, eager: bool = False) -> SimpleNamespace:
    request = SimpleNamespace(is_eager=eager, delivery_info={"routing_key": queue})
    return SimpleNamespace(name="reviews.tasks.some_task", request=request)


@pytest.mark.parametrize(("queue", "eager", "marks"), [("webhooks", False, True), ("reports", False, True),
                                                         ("sync", False, False), ("housekeeping", False, False),
                                                         ("webhooks", True, False)])  # fmt: skip
def test_a_worker_run_from_a_latency_critical_queue_marks_the_lane_busy(lane, clock, queue, eager, marks, monkeypatch):
    # The signals also close a worker's obsolete database connection (test_delivery_batches tests that). This test has
    # no database: when an earlier test on the same pytest worker left a connection open, that check would touch it.
    monkeypatch.setattr(celery_signals, "_database_connections_kept_if_usable", lambda task: None)
    task = _task(queue, eager=eager)
    celery_signals._task_started(task_id="run-1", task=task)
    assert latency_critical_lane_busy() is marks
    celery_signals._task_ended(task_id="run-1", task=task, state="SUCCESS")
    assert latency_critical_lane_busy() is marks  # for a moment after its end
    assert not latency_critical_lane_busy(now=clock.now + BUSY_LINGER_SECONDS + 0.01)
