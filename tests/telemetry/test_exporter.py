"""`GET /metrics`: who may scrape it, what the database says at scrape time, and figures summed across processes."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import textwrap

import pytest
from django.utils import timezone

from reviews.models import PullRequest, WebhookDelivery
from tests.factories import PullRequestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def scrapeable(settings):
    """Scrapes from the test client's address (127.0.0.1) are allowed, as in production with an allow-list."""
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", ["127.0.0.1/32"]


def scrape(client, **headers) -> tuple[int, str]:
    response = client.get("/metrics", **headers)
    return response.status_code, response.content.decode()


def sample(text: str, line_start: str) -> float:
    """The value of the one exposition line starting with `line_start` (a name and its labels)."""
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(line_start + " ")]
    assert len(values) == 1, f"{line_start} in:\n{text}"
    return float(values[0])


# --- who may scrape -------------------------------------------------------------------------------------------------


def test_production_refuses_metrics_until_a_token_or_networks_are_set(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    response = client.get("/metrics")
    assert response.status_code == 403
    assert "METRICS_TOKEN" in response.json()["error"]


def test_the_embedded_default_answers_without_configuration(client, settings):
    settings.DEBUG = True
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    status, text = scrape(client)
    assert status == 200
    assert "# TYPE tandem_webhooks_received_total counter" in text


def test_a_token_is_required_when_set(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "s3cret-scrape", []
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in missing.json()["error"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-scrape").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape").status_code == 200


def test_an_allow_list_admits_only_its_networks(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", ["10.20.0.0/16", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.20.3.4").status_code == 200  # IPv4 seen through IPv6
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::7").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="10.21.0.1")
    assert refused.status_code == 403
    assert "METRICS_ALLOWED_NETWORKS" in refused.json()["error"]
    # A forwarded header is not an address: only the connection's counts.
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.20.3.4").status_code == 403


def test_with_both_set_a_scrape_needs_both(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "s3cret-scrape", ["127.0.0.0/8"]
    token = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape"}
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", **token).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", **token).status_code == 403


# --- read from the database at scrape time --------------------------------------------------------------------------


def _delivery(n: int, status: str, *, received_ago: float = 0.0, due_ago: float | None = None) -> WebhookDelivery:
    now = timezone.now()
    return WebhookDelivery.objects.create(
        provider="github",
        delivery_id=f"d-{n}",
        event="push",
        body="{}",
        status=status,
        received_at=now - dt.timedelta(seconds=received_ago),
        next_attempt_at=None if due_ago is None else now - dt.timedelta(seconds=due_ago),
    )


def test_deliveries_by_state_and_the_oldest_pending_ones_age_are_read_at_scrape_time(client, scrapeable):
    status, text = scrape(client)
    assert sample(text, 'tandem_webhook_deliveries{status="pending"}') == 0
    assert sample(text, "tandem_webhook_delivery_oldest_pending_age_seconds") == 0
    assert sample(text, "tandem_database_up") == 1

    _delivery(1, "pending", received_ago=600, due_ago=400)  # waited out its retry's backoff 400 s ago
    _delivery(2, "pending", received_ago=30, due_ago=-60)  # leased: due in a minute
    _delivery(3, "processing")
    _delivery(4, "failed")
    _delivery(5, "dead")
    _delivery(6, "dead")
    _delivery(7, "processed", received_ago=9999)
    status, text = scrape(client)
    assert status == 200
    assert sample(text, 'tandem_webhook_deliveries{status="pending"}') == 2
    assert sample(text, 'tandem_webhook_deliveries{status="processing"}') == 1
    assert sample(text, 'tandem_webhook_deliveries{status="failed"}') == 1
    assert sample(text, 'tandem_webhook_deliveries{status="dead"}') == 2
    assert 600 <= sample(text, "tandem_webhook_delivery_oldest_pending_age_seconds") < 660
    assert 400 <= sample(text, "tandem_webhook_delivery_overdue_seconds") < 460


def test_the_oldest_evaluation_debt_is_read_at_scrape_time(client, scrapeable):
    pull_request = PullRequestFactory()
    PullRequest.objects.filter(pk=pull_request.pk).update(
        evaluation_owed_since=timezone.now() - dt.timedelta(seconds=120)
    )
    _, text = scrape(client)
    assert 120 <= sample(text, "tandem_evaluation_debt_oldest_age_seconds") < 180


def test_the_queue_lengths_come_from_the_broker(client, settings, scrapeable):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    import redis

    settings.CELERY_BROKER_URL = settings.REDIS_URL
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete("sync")
    broker.rpush("sync", "a", "b")
    broker.rpush("sync\x06\x163", "c")  # a prioritised message of the same queue
    try:
        _, text = scrape(client)
    finally:
        broker.delete("sync", "sync\x06\x163")
    assert sample(text, "tandem_broker_up") == 1
    assert sample(text, 'tandem_celery_queue_length{queue="sync"}') == 3


def test_a_broker_that_does_not_answer_is_reported_down_and_the_rest_is_served(client, settings, scrapeable):
    settings.REDIS_URL = settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    status, text = scrape(client)
    assert status == 200
    assert sample(text, "tandem_broker_up") == 0
    assert sample(text, "tandem_database_up") == 1


# --- several processes ----------------------------------------------------------------------------------------------


def test_figures_of_several_processes_are_added_up(python, python_env, tmp_path):
    """gunicorn's and Celery's processes each write their own files into PROMETHEUS_MULTIPROC_DIR; one scrape, from
    any process, adds them up."""
    env = {
        **python_env,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
    }
    record = textwrap.dedent(
        """
        import django
        django.setup()
        from reviews.instruments import TASK_DURATION, WEBHOOKS_RECEIVED
        WEBHOOKS_RECEIVED.labels("github", "push", "accepted").inc(3)
        TASK_DURATION.labels("reviews.tasks.evaluate_pull_request").observe(0.2)
        """
    )
    # Both at once, as a gunicorn worker and a Celery worker record side by side.
    recorders = [subprocess.Popen([python, "-c", record], env=env) for _ in range(2)]
    try:
        assert [recorder.wait(timeout=60) for recorder in recorders] == [0, 0]
    finally:
        for recorder in recorders:
            recorder.kill()  # nothing left running when the wait gave up
    scrape_there = textwrap.dedent(
        """
        import django
        django.setup()
        from telemetry.exporter import metrics_exposition
        print(metrics_exposition().decode())
        """
    )
    text = subprocess.run(
        [python, "-c", scrape_there], env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    assert sample(text, 'tandem_webhooks_received_total{event="push",outcome="accepted",provider="github"}') == 6
    assert sample(text, 'tandem_task_duration_seconds_count{task="reviews.tasks.evaluate_pull_request"}') == 2
    assert sample(text, "tandem_database_up") == 0  # an empty database: said, not a failed scrape
    # One file per process, named after its host and pid: containers sharing the directory never share a file.
    written = sorted(path.name for path in (tmp_path / "metrics").glob("counter_*.db"))
    assert len(written) == 3  # the two that recorded, and the one that scraped
    assert all(re.fullmatch(r"counter_[A-Za-z0-9.-]+-\d+\.db", name) for name in written)


def test_a_scrape_reads_the_database_in_four_queries_whatever_it_holds(client, scrapeable, django_assert_num_queries):
    for n in range(30):
        _delivery(100 + n, "pending" if n % 2 else "dead", received_ago=n)
    # Deliveries by state, the oldest pending one, the most overdue one, the oldest evaluation debt: each on an index.
    with django_assert_num_queries(4):
        status, _ = scrape(client)
    assert status == 200
