"""One inbox for every provider's webhooks (reviews/inbox.py): receive → verify → store → claim → apply → finish.

The four views are adapters over the one path: each request's database work is pinned here per provider, so the
shared path can neither grow a query nor lose a step for one provider."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from reviews.models import Connection, WebhookDelivery
from reviews.services import connections as connection_cache
from reviews.services import webhooks as webhook_services
from reviews.services.webhooks import DELIVERY_CHANNEL, Received, webhook_delivery_receive
from tests.conftest import FIXTURES_DIR

pytestmark = pytest.mark.django_db

GITHUB = Path(__file__).resolve().parent.parent / "fixtures" / "github"
T0 = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.GITHUB_WEBHOOK_SECRET = "gh-secret"
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"
    settings.PAGERDUTY_WEBHOOK_SECRET = "pd-secret"
    settings.OPSGENIE_WEBHOOK_TOKEN = "og-token"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }


def _hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _github(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = (GITHUB / "pull_request.opened.json").read_bytes()
    return body, {
        "HTTP_X_HUB_SIGNATURE_256": "sha256=" + _hmac("gh-secret", body),
        "HTTP_X_GITHUB_EVENT": "pull_request",
        "HTTP_X_GITHUB_DELIVERY": delivery,
    }


def _gitlab(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = (FIXTURES_DIR / "gitlab" / "mr_open_real.json").read_bytes()
    return body, {
        "HTTP_X_GITLAB_TOKEN": "gl-token",
        "HTTP_X_GITLAB_EVENT": "Merge Request Hook",
        "HTTP_X_GITLAB_EVENT_UUID": delivery,
    }


def _pagerduty(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": {
                "id": f"event-{delivery}",
                "event_type": "incident.triggered",
                "resource_type": "incident",
                "occurred_at": "2025-03-10T12:00:00Z",
                "data": {
                    "id": f"P-{delivery}",
                    "type": "incident",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "status": "triggered",
                    "created_at": "2025-03-10T12:00:00Z",
                    "title": "A little bump in the road",
                    "service": {"id": "PF9KMXH", "summary": "API Service", "type": "service_reference"},
                    "urgency": "high",
                },
            }
        }
    ).encode()
    return body, {"HTTP_X_PAGERDUTY_SIGNATURE": "v1=" + _hmac("pd-secret", body)}


def _opsgenie(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "action": "Create",
            "alert": {
                "alertId": f"alert-{delivery}",
                "message": "Checkout latency over 2 s",
                "createdAt": int(T0.timestamp() * 1000),
                "updatedAt": int(T0.timestamp() * 1_000_000_000),
                "priority": "P2",
            },
        }
    ).encode()
    return body, {"HTTP_X_TANDEM_TOKEN": "og-token"}


REQUESTS = {"github": _github, "gitlab": _gitlab, "pagerduty": _pagerduty, "opsgenie": _opsgenie}

# Queries of one request once the connections are known, per provider: (a new delivery, the same one again).
# GitHub and GitLab store the row in one statement and leave the rest to a worker; a duplicate is read back.
# PagerDuty and Opsgenie apply the incident before answering: store, claim, read the claimed row, the incident's
# upsert and its services, finish. Measured before the views became adapters over one inbox; they may only fall.
QUERY_BUDGETS = {"github": (1, 2), "gitlab": (1, 2), "pagerduty": (21, 2), "opsgenie": (20, 2)}


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def send(provider: str, delivery: str):
        body, headers = REQUESTS[provider](delivery)
        with django_capture_on_commit_callbacks(execute=False):
            return client.post(f"/webhooks/{provider}/", data=body, content_type="application/json", **headers)

    return send


@pytest.mark.parametrize("provider", REQUESTS)
def test_each_provider_stays_within_its_query_budget(post, provider, django_assert_max_num_queries):
    Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    Connection.objects.create(provider="gitlab", name="GitLab", base_url="https://gitlab.com")
    assert post(provider, "warm-up").status_code in {200, 201, 202}  # reads the connections once
    new, again = QUERY_BUDGETS[provider]
    with django_assert_max_num_queries(new):
        first = post(provider, "first")
    assert first.status_code in {201, 202}, first.content
    with django_assert_max_num_queries(again):
        second = post(provider, "first")
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert WebhookDelivery.objects.filter(provider=provider).count() == 2


@pytest.mark.parametrize("provider", REQUESTS)
def test_a_rejected_sender_costs_no_query_and_stores_nothing(client, provider, django_assert_num_queries):
    body, _ = REQUESTS[provider]("x")
    with django_assert_num_queries(0):
        response = client.post(f"/webhooks/{provider}/", data=body, content_type="application/json")
    assert response.status_code == 401
    assert "error" in response.json()
    assert not WebhookDelivery.objects.exists()


# --- storing and announcing -----------------------------------------------------------------------------------------


@pytest.fixture
def listener(monkeypatch):
    """A second PostgreSQL session LISTENing on the dispatcher's channel, as `manage.py dispatch_deliveries` does;
    this process has sent no notice yet (none within its window)."""
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    monkeypatch.setattr(webhook_services, "_notices", {})
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"],
        host=params["HOST"],
        port=params["PORT"] or None,
        autocommit=True,
    ) as session:
        session.execute(f"LISTEN {DELIVERY_CHANNEL}")
        yield session


def _receive(github: Connection, delivery_id: str) -> Received:
    return webhook_delivery_receive(
        provider="github", delivery_id=delivery_id, event="ping", action="", headers={}, body="{}",
        connection=github, hand_over_now=False,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_new_delivery_is_announced_after_its_commit_outside_the_storing_transaction(listener):
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        received = _receive(github, "a-1")
        assert list(listener.notifies(timeout=0.3)) == []  # nothing to hand over before the row is committed
    notices = list(listener.notifies(timeout=5, stop_after=1))
    assert [(notice.channel, notice.payload) for notice in notices] == [(DELIVERY_CHANNEL, str(received.delivery.pk))]
    # What the dispatcher reads when woken: the row is there.
    stored = listener.execute("SELECT status FROM reviews_webhookdelivery WHERE id = %s", [received.delivery.pk])
    assert stored.fetchone() == ("pending",)
    statements = [query["sql"] for query in captured.captured_queries]
    (store,) = [sql for sql in statements if sql.startswith("INSERT")]
    (announce,) = [sql for sql in statements if "pg_notify" in sql]
    # PostgreSQL serialises the commits of notifying transactions through their WAL flush: the storing one must not
    # notify, or concurrent webhooks wait for each other's flush. The notice's own commit does not wait for the disk.
    assert "pg_notify" not in store
    assert "synchronous_commit" in announce


@pytest.mark.django_db(transaction=True)
def test_a_delivery_rolled_back_is_never_announced(listener):
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    with pytest.raises(RuntimeError), transaction.atomic():
        _receive(github, "r-1")
        raise RuntimeError("the caller's transaction fails")
    assert list(listener.notifies(timeout=0.5)) == []
    assert not WebhookDelivery.objects.filter(delivery_id="r-1").exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_announcement_still_stores_the_delivery(monkeypatch):
    def broken(alias: str, pk: int) -> None:
        raise OperationalError("the notice could not be sent")

    monkeypatch.setattr(webhook_services, "_announce", broken)
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    received = _receive(github, "f-1")
    assert received.created  # stored and answered: the dispatcher's own look finds it
    assert WebhookDelivery.objects.get(delivery_id="f-1").status == WebhookDelivery.Status.PENDING


@pytest.fixture
def notice_clock(monkeypatch):
    """The clock of this process's notice window, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(webhook_services, "_notice_clock", lambda: now[0])
    return now


@pytest.mark.django_db(transaction=True)
def test_deliveries_stored_less_than_a_window_apart_ask_for_a_look_again_and_are_not_announced_within_it(
    listener, notice_clock
):
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    window = webhook_services.NOTICE_WINDOW
    alone = _receive(github, "w-1")  # announced; the dispatcher need not look again
    notice_clock[0] += window / 5
    close = _receive(github, "w-2")  # announced, asking for a look again after the window
    notice_clock[0] += window / 5
    within = _receive(github, "w-3")  # stored, not announced: that look hands it over
    notice_clock[0] += window * 1.2
    after = _receive(github, "w-4")  # the window has passed, and the last delivery came a window ago: alone again
    assert within.created
    notices = [notice.payload for notice in listener.notifies(timeout=1)]
    assert notices == [str(alone.pk), f"{close.pk} {webhook_services.NOTICE_LOOK_AGAIN}", str(after.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_notice_that_could_not_be_sent_spares_no_other(listener, notice_clock, monkeypatch):
    def broken(alias: str, pk: int) -> None:
        raise OperationalError("the notice could not be sent")

    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    real = webhook_services._announce
    monkeypatch.setattr(webhook_services, "_announce", broken)
    _receive(github, "x-1")
    monkeypatch.setattr(webhook_services, "_announce", real)
    second = _receive(github, "x-2")  # at the same moment: announced, as no notice was sent
    assert [notice.payload for notice in listener.notifies(timeout=1)] == [str(second.pk)]


def _terminate_backend(listener: psycopg.Connection, pid: int) -> None:
    """End a PostgreSQL session from another one, as a restart or a proxy's idle timeout does, and wait until it is
    gone."""
    listener.execute("SELECT pg_terminate_backend(%s)", [pid])
    for _ in range(100):
        if listener.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is None:
            return
        listener.execute("SELECT pg_sleep(0.05)")
    raise AssertionError("the session was not terminated")


@pytest.mark.django_db(transaction=True)
def test_the_store_skips_the_health_check_and_is_run_again_on_a_new_connection_when_the_kept_one_died(listener):
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    db = connections["default"]
    checks: list[bool] = []
    real_check = db.is_usable
    db.is_usable = lambda: checks.append(True) or real_check()  # type: ignore[method-assign]
    try:
        db.health_check_enabled, db.health_check_done = True, False  # a new request on a kept connection
        assert _receive(github, "h-1").created
        assert checks == []  # no `SELECT 1` round trip before the store
        _terminate_backend(listener, db.connection.info.backend_pid)
        db.health_check_enabled, db.health_check_done = True, False
        assert _receive(github, "h-2").created  # stored on a new connection, once
    finally:
        del db.is_usable
        db.health_check_enabled = db.settings_dict["CONN_HEALTH_CHECKS"]
    assert sorted(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == ["h-1", "h-2"]


@pytest.mark.django_db(transaction=True)
def test_a_store_whose_answer_was_lost_after_its_commit_is_still_a_new_delivery_and_announced(listener, monkeypatch):
    """The connection dies after PostgreSQL committed the store and before its answer came: the store's second run
    finds the row its first run stored. It is this request's delivery, new (handed over, answered "accepted"), not a
    duplicate left to the poll or to its lease running out."""
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    db = connections["default"]
    db.ensure_connection()
    real_fetch = webhook_services._fetch_one
    runs: list[bool] = []

    def answer_lost_once(*args: object) -> object:
        row = real_fetch(*args)
        runs.append(True)
        if len(runs) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return row

    monkeypatch.setattr(webhook_services, "_fetch_one", answer_lost_once)
    try:
        db.health_check_enabled, db.health_check_done = True, False  # a new request on a kept connection
        received = _receive(github, "l-1")
    finally:
        db.health_check_enabled = db.settings_dict["CONN_HEALTH_CHECKS"]
    assert len(runs) == 2
    assert received.created
    assert [notice.payload for notice in listener.notifies(timeout=1)] == [str(received.pk)]
    assert WebhookDelivery.objects.filter(delivery_id="l-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_retried_store_that_finds_a_delivery_another_request_stored_is_a_duplicate(listener, monkeypatch):
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    first = _receive(github, "l-2")
    list(listener.notifies(timeout=0.2))
    db = connections["default"]
    real_fetch = webhook_services._fetch_one
    runs: list[bool] = []

    def dead_once(*args: object) -> object:
        runs.append(True)
        if len(runs) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_fetch(*args)

    monkeypatch.setattr(webhook_services, "_fetch_one", dead_once)
    try:
        db.health_check_enabled, db.health_check_done = True, False
        again = _receive(github, "l-2")
    finally:
        db.health_check_enabled = db.settings_dict["CONN_HEALTH_CHECKS"]
    assert len(runs) == 2
    assert (again.created, again.pk) == (False, first.pk)


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_made_due_again_is_announced_as_a_new_one_is(listener):
    """A sender's retry of a delivery waiting for its own retry is answered "requeued" and due now: the dispatcher is
    told, as of a new delivery, instead of finding it at its next poll."""
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    first = _receive(github, "r-1")
    list(listener.notifies(timeout=0.2))
    WebhookDelivery.objects.filter(pk=first.pk).update(attempts=1, next_attempt_at=T0 + dt.timedelta(days=3650))
    again = _receive(github, "r-1")
    assert again.requeued
    assert [notice.payload for notice in listener.notifies(timeout=1)] == [str(first.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_a_connection_knows_now_is_due_at_once_and_announced_when_the_dispatcher_hands_it_over(
    listener,
):
    """Refused for an instance no Connection knew, then sent again once one does: without a hand-over by the request
    it is due now and announced, not leased for a hand-over nobody makes."""
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    refused = webhook_delivery_receive(
        provider="github", delivery_id="c-1", event="ping", action="", headers={}, body="{}", connection=None,
        hand_over_now=False,
    )  # fmt: skip
    WebhookDelivery.objects.filter(pk=refused.pk).update(status=WebhookDelivery.Status.FAILED)
    list(listener.notifies(timeout=0.2))
    again = _receive(github, "c-1")
    assert again.requeued
    stored = WebhookDelivery.objects.get(pk=refused.pk)
    assert (stored.connection_id, stored.dispatches) == (github.pk, 0)
    assert stored.next_attempt_at <= dt.datetime.now(dt.UTC)
    assert [notice.payload for notice in listener.notifies(timeout=1)] == [str(refused.pk)]


# --- the connections' secrets, cached per process --------------------------------------------------------------------


def _signed_post(client, body: bytes, secret: str, delivery: str):
    return client.post(
        "/webhooks/github/",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256="sha256=" + _hmac(secret, body),
        HTTP_X_GITHUB_EVENT="pull_request",
        HTTP_X_GITHUB_DELIVERY=delivery,
    )


@pytest.fixture
def clock(monkeypatch):
    """The connection cache's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(connection_cache, "_clock", lambda: now[0])
    connection_cache.connections_forget()
    return now


def _rotate_elsewhere(github: Connection, secret: str) -> None:
    """A lead rotates the secret in another process: the row changes, and no signal reaches this one."""
    Connection.objects.filter(pk=github.pk).update(webhook_secret=secret)


def test_a_secret_rotated_in_another_process_is_accepted_at_once_and_the_old_one_within_the_bound(
    client, settings, clock, django_capture_on_commit_callbacks
):
    settings.GITHUB_WEBHOOK_SECRET = ""
    body = (GITHUB / "pull_request.opened.json").read_bytes()
    github = Connection.objects.create(
        provider="github", name="GitHub", base_url="https://api.github.com", webhook_secret="old-secret"
    )
    with django_capture_on_commit_callbacks(execute=False):
        assert _signed_post(client, body, "old-secret", "s-1").status_code == 202  # cached now
        _rotate_elsewhere(github, "new-secret")
        clock[0] += connection_cache.REFRESH_ON_MISS_SECONDS + 0.1
        # No cached secret verifies it: read again before refusing, and taken.
        assert _signed_post(client, body, "new-secret", "s-2").status_code == 202
        # The copy was read again: the old secret no longer verifies anything.
        assert _signed_post(client, body, "old-secret", "s-3").status_code == 401


def test_a_stale_copy_accepts_the_old_secret_no_longer_than_the_cache_lives(
    client, settings, clock, django_capture_on_commit_callbacks
):
    settings.GITHUB_WEBHOOK_SECRET = "instance-secret"
    body = (GITHUB / "pull_request.opened.json").read_bytes()
    github = Connection.objects.create(
        provider="github", name="GitHub", base_url="https://api.github.com", webhook_secret="old-secret"
    )
    with django_capture_on_commit_callbacks(execute=False):
        assert _signed_post(client, body, "old-secret", "o-1").status_code == 202
        _rotate_elsewhere(github, "new-secret")
        clock[0] += connection_cache.CACHE_SECONDS + 0.1
        assert _signed_post(client, body, "old-secret", "o-2").status_code == 401
        assert _signed_post(client, body, "new-secret", "o-3").status_code == 202


def test_a_secret_changed_in_this_process_is_used_by_the_next_request(
    client, settings, clock, django_capture_on_commit_callbacks
):
    settings.GITHUB_WEBHOOK_SECRET = ""
    body = (GITHUB / "pull_request.opened.json").read_bytes()
    github = Connection.objects.create(
        provider="github", name="GitHub", base_url="https://api.github.com", webhook_secret="old-secret"
    )
    with django_capture_on_commit_callbacks(execute=False):
        assert _signed_post(client, body, "old-secret", "p-1").status_code == 202
        github.webhook_secret = "new-secret"
        github.save()
        assert _signed_post(client, body, "old-secret", "p-2").status_code == 401
        assert _signed_post(client, body, "new-secret", "p-3").status_code == 202
        github.delete()
        assert _signed_post(client, body, "new-secret", "p-4").status_code == 401


def test_bad_signatures_read_the_connections_at_most_once_a_refresh_interval(
    client, settings, clock, django_assert_num_queries
):
    settings.GITHUB_WEBHOOK_SECRET = "instance-secret"
    body = (GITHUB / "pull_request.opened.json").read_bytes()
    Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com", webhook_secret="s")
    assert _signed_post(client, body, "wrong", "b-0").status_code == 401  # the first read
    with django_assert_num_queries(0):
        for attempt in range(5):
            assert _signed_post(client, body, "wrong", f"b-{attempt + 1}").status_code == 401
    clock[0] += connection_cache.REFRESH_ON_MISS_SECONDS + 0.1
    with django_assert_num_queries(1):
        assert _signed_post(client, body, "wrong", "b-9").status_code == 401


def test_a_body_is_stored_byte_for_byte_whatever_it_holds():
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    body = json.dumps({"text": "it's 100% \\\\ done; $1 %s %(x)s -- ' é ✓ \U0001f600", "n": [1, 2.5, None]})
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping's"}
    first = webhook_delivery_receive(
        provider="github", delivery_id="b-1", event="ping", action="it's", headers=headers, body=body,
        connection=github, hand_over_now=True,
    )  # fmt: skip
    stored = WebhookDelivery.objects.get(pk=first.delivery.pk)
    assert (stored.body, stored.headers, stored.action, stored.connection_id) == (body, headers, "it's", github.pk)
    for _ in range(6):  # past psycopg's threshold for preparing a statement: still one row, the duplicate seen
        again = webhook_delivery_receive(
            provider="github", delivery_id="b-1", event="ping", action="", headers={}, body="{}",
            connection=github, hand_over_now=True,
        )  # fmt: skip
        assert not again.created and again.delivery.pk == first.delivery.pk
    assert WebhookDelivery.objects.filter(delivery_id="b-1").count() == 1


def test_the_stores_parameters_are_what_each_field_prepares_for_the_database():
    """Plain strings go to the text columns as given; anything else (a lazy string here) is prepared by its field."""
    from django.utils import timezone
    from django.utils.functional import lazy

    now = timezone.now()
    values = {
        "provider": "github",
        "delivery_id": "d-1",
        "event": lazy(lambda: "pull_request", str)(),
        "action": "opened",
        "headers": {"X-GitHub-Event": "pull_request"},
        "body": '{"action": "opened"}',
        "connection_id": None,
        "received_at": now,
        "next_attempt_at": now,
        "dispatches": 1,
    }
    statement = webhook_services._insert_statement(connection.alias)
    prepared = [
        *statement.defaults,
        *[
            model_field.get_db_prep_save(values[model_field.attname], connection=connection)
            for model_field in statement.fields
        ],
    ]

    def seen(params: list) -> list:
        return [(type(param), getattr(param, "obj", param)) for param in params]  # psycopg's Jsonb keeps .obj

    assert seen(webhook_services._insert_params(statement, values, connection)) == seen(prepared)
    assert sum(statement.text) == 5  # provider, delivery id, event, action, body
