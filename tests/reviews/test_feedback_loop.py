"""One pass per event: a delivery is applied, and the verdicts it changed are evaluated and posted, in one task.

The change marks its pull request's evaluation debt in its own transaction; the pass settles it; waiting changes of
one pull request coalesce into one evaluation; a debt whose pass was lost is settled by the reconciler; and in
production the request that acknowledges a webhook never talks to the broker (the dispatcher hands it over)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.management.commands import dispatch_deliveries as dispatcher
from reviews.models import Connection, PolicyEvaluation, PullRequest, WebhookDelivery
from reviews.services import policies
from reviews.services import webhooks as webhook_services
from reviews.services.webhooks import DELIVERY_CHANNEL, DISPATCH_MAX_IN_FLIGHT, webhook_delivery_receive
from reviews.tasks import dispatch_due_deliveries, process_webhook_deliveries, reconcile_verdicts

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
SECRET = "loop-secret"

pytestmark = pytest.mark.django_db


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())}
    }


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(event: str, payload: dict):
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/webhooks/github/", data=body, content_type="application/json", HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()), HTTP_X_HUB_SIGNATURE_256=signature,
            )  # fmt: skip

    return post


@pytest.fixture
def by_dispatcher(monkeypatch):
    """Production's hand-over: the request stores the row; the dispatcher hands it to a worker."""
    monkeypatch.setattr("reviews.webhooks.deliveries_handed_over_by_request", lambda: False)


@pytest.fixture
def no_broker(monkeypatch):
    from reviews import tasks

    def down(*args, **kwargs):
        raise ConnectionError("the broker is not reachable")

    for task in (tasks.process_webhook_delivery, tasks.process_webhook_deliveries, tasks.evaluate_pull_request):
        monkeypatch.setattr(task, "delay", down)


@pytest.fixture
def evaluations(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = policies.pull_request_evaluate

    def spy(**kwargs):
        calls.append(kwargs["pull_request_id"])
        return real(**kwargs)

    monkeypatch.setattr("reviews.services.verdicts.pull_request_evaluate", spy)
    return calls


def _edits(count: int) -> list[dict]:
    opened = fixture("pull_request.opened")
    return [opened] + [
        {**opened, "action": "edited", "pull_request": {**opened["pull_request"], "title": f"Edit {n}"}}
        for n in range(1, count)
    ]


def test_acknowledging_in_production_never_touches_the_broker(deliver, by_dispatcher, no_broker):
    response = deliver("pull_request", fixture("pull_request.opened"))
    assert response.status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.next_attempt_at <= timezone.now()  # due at once: the dispatcher's next look takes it
    assert delivery.dispatches == 0


def test_a_backlog_of_one_pull_request_is_applied_in_one_task_and_evaluated_once(deliver, by_dispatcher, evaluations):
    for payload in _edits(5):
        assert deliver("pull_request", payload).status_code == 202
    assert PullRequest.objects.count() == 0  # stored, not processed: nothing happened in the requests
    ids = list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True))

    assert process_webhook_deliveries(ids) == {"processed": 5}
    pull_request = PullRequest.objects.get()
    assert pull_request.title == "Edit 4"
    assert evaluations == [pull_request.pk]  # five changes, one evaluation of the newest state
    assert PolicyEvaluation.objects.filter(pull_request=pull_request, head_sha=pull_request.head_sha).count() == 1
    assert pull_request.evaluation_owed_since is None


def test_a_pass_finds_nothing_owed_after_another_settled_it(deliver, by_dispatcher, evaluations):
    deliver("pull_request", fixture("pull_request.opened"))
    deliver("pull_request", {**fixture("pull_request.opened"), "action": "edited"})
    first, second = WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True)
    process_webhook_deliveries([first])
    process_webhook_deliveries([second])
    pull_request = PullRequest.objects.get()
    assert evaluations == [pull_request.pk, pull_request.pk]  # each change after the last evaluation counts
    from reviews.tasks import evaluate_pull_request

    assert evaluate_pull_request(pull_request.pk) == "settled"  # a late copy: no fetch, no evaluation
    assert len(evaluations) == 2


def test_the_dispatcher_hands_a_few_over_one_by_one_and_a_backlog_in_batches(deliver, by_dispatcher, monkeypatch):
    from reviews import tasks

    batches: list[list[int]] = []
    monkeypatch.setattr(tasks.process_webhook_deliveries, "delay", batches.append)
    deliver("pull_request", fixture("pull_request.opened"))
    assert dispatch_due_deliveries() == 1
    assert [len(batch) for batch in batches] == [1]  # a lone event goes to a worker alone, at once

    batches.clear()
    WebhookDelivery.objects.update(status=WebhookDelivery.Status.PROCESSED)  # the lone one was taken up
    for payload in _edits(60):
        deliver("pull_request", payload)
    assert dispatch_due_deliveries() == DISPATCH_MAX_IN_FLIGHT  # 40: the workers have not taken any up yet
    assert [len(batch) for batch in batches] == [10, 10, 10, 10]
    assert dispatch_due_deliveries() == 0  # the other 20 wait in the database, not in the broker
    handed = [pk for batch in batches for pk in batch]
    WebhookDelivery.objects.filter(pk__in=handed).update(status=WebhookDelivery.Status.PROCESSING)  # claimed
    assert dispatch_due_deliveries() == 20
    assert len({pk for batch in batches for pk in batch}) == 60


def test_a_change_whose_pass_was_lost_is_evaluated_by_the_reconciler(deliver, monkeypatch):
    from reviews import tasks

    deliver("pull_request", fixture("pull_request.opened"))
    pull_request = PullRequest.objects.get()
    verdict = PolicyEvaluation.objects.get(pull_request=pull_request)
    assert pull_request.evaluation_owed_since is None

    monkeypatch.setattr(tasks, "pull_request_verdict_pass", lambda **kwargs: None)  # the worker died mid-pass
    deliver("pull_request_review", fixture("pull_request_review.submitted.approved"))
    monkeypatch.undo()
    pull_request.refresh_from_db()
    assert pull_request.evaluation_owed_since is not None  # the debt was written with the review
    assert reconcile_verdicts() == "evaluated 0, reported 0"  # its pass may still be running
    PullRequest.objects.filter(pk=pull_request.pk).update(
        evaluation_owed_since=timezone.now() - dt.timedelta(minutes=2)
    )
    assert reconcile_verdicts() == "evaluated 1, reported 0"
    pull_request.refresh_from_db()
    assert pull_request.evaluation_owed_since is None
    newest = PolicyEvaluation.objects.filter(pull_request=pull_request).order_by("-pk").first()
    assert newest.last_evaluated_at > verdict.last_evaluated_at


def test_one_pass_queues_no_other_task_when_the_verdict_is_posted(deliver, by_dispatcher, monkeypatch):
    from reviews import tasks

    queued: list[str] = []
    for task in (tasks.evaluate_pull_request, tasks.report_evaluation, tasks.process_webhook_delivery):
        monkeypatch.setattr(task, "delay", lambda *args, name=task.name: queued.append(name))
    deliver("pull_request", fixture("pull_request.opened"))
    process_webhook_deliveries(list(WebhookDelivery.objects.values_list("pk", flat=True)))
    assert PolicyEvaluation.objects.count() == 1
    assert queued == []


# Per event, from claiming its delivery to storing the verdict: claim, apply (the upserts of its accounts, people and
# rows, one read of every identity the event names), mark the debt, finish; then read the pull request with its
# repository's and team's policy, lock it, evaluate it (overrides, the snapshot: files, checks, incidents,
# CODEOWNERS, reviews, commits, people in one query), store or confirm the verdict; whether its head has reviewer
# suggestions yet comes with the pass's first read (a query of its own until issue 15's sixth pass). Measured on
# PostgreSQL (main before issue 15's third pass: 40 / 34 / 39): the snapshot reads its people in one query and its
# commits once (pairing reuses them), the pass reads the policy with the pull request, and an event's accounts are
# read in one query. None grows with the pull request's reviews, files or commits: a query per row or per rule shows
# here first. A new pull request is stored in one INSERT … ON CONFLICT (was a read, a savepoint, an insert and a read
# again: 35). A new review is not written again right after its insert (worker15d: 31). A new pull request or review
# is inserted whole (`INSERT … ON CONFLICT DO NOTHING RETURNING`), not as a stub read back and updated (pass16: 30, 30).
QUERY_BUDGETS = {
    ("pull_request", "pull_request.opened"): 28,
    ("pull_request", "pull_request.synchronize"): 27,
    ("pull_request_review", "pull_request_review.submitted.approved"): 29,
}
# SQLite (`make run`, and `make test` without DATABASE_URL) claims a batch in two statements, its rows and then their
# connections (`test_a_batch_is_claimed_in_one_statement…`); every other statement is PostgreSQL's.
SQLITE_CLAIM_EXTRA = 1


@pytest.mark.parametrize(("event", "name"), list(QUERY_BUDGETS))
def test_each_event_is_applied_and_evaluated_within_its_query_budget(
    deliver, by_dispatcher, django_assert_max_num_queries, event, name
):
    opened = fixture("pull_request.opened")
    if name == "pull_request.opened":  # the repository and its people known already, as for all but the first
        pull = {**opened["pull_request"], "number": 1002, "id": 1279147437}
        opened = {**opened, "number": 1002, "pull_request": pull}
    deliver("pull_request", opened)
    process_webhook_deliveries(list(WebhookDelivery.objects.values_list("pk", flat=True)))
    deliver(event, fixture(name))
    pending = list(WebhookDelivery.objects.filter(status="pending").values_list("pk", flat=True))
    budget = QUERY_BUDGETS[(event, name)] + (0 if connection.vendor == "postgresql" else SQLITE_CLAIM_EXTRA)
    with django_assert_max_num_queries(budget):
        assert process_webhook_deliveries(pending) == {"processed": 1}


def test_the_pass_locks_the_pull_request_row_alone_and_reuses_what_it_read(deliver, by_dispatcher):
    """The pass reads the pull request with its repository, connection, team and policies; the evaluation's lock
    then reads the pull request's row alone (no second join of the same rows), and the verdict is the same."""
    if not connection.features.has_select_for_update:
        pytest.skip("SQLite locks the whole database, not rows: no FOR UPDATE to find")
    deliver("pull_request", fixture("pull_request.opened"))
    with CaptureQueriesContext(connection) as captured:
        process_webhook_deliveries(list(WebhookDelivery.objects.values_list("pk", flat=True)))
    locks = [query["sql"] for query in captured.captured_queries if "FOR UPDATE" in query["sql"]]
    evaluation_locks = [sql for sql in locks if '"reviews_pullrequest"' in sql.split("FROM", 1)[1][:40]]
    assert evaluation_locks and all("JOIN" not in sql for sql in evaluation_locks)
    evaluation = PolicyEvaluation.objects.get()
    assert evaluation.pull_request.repository.full_path == fixture("pull_request.opened")["repository"]["full_name"]
    assert evaluation.outcome in {"pending", "blocked", "error"}  # no approval yet: never a passing verdict


@pytest.mark.django_db(transaction=True)
def test_a_stored_delivery_is_announced_to_the_dispatcher(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    monkeypatch.setattr(webhook_services, "_notices", {})  # no notice sent lately by this process
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {DELIVERY_CHANNEL}")
    try:
        received = webhook_delivery_receive(
            provider="github", delivery_id="n-1", event="ping", action="", headers={}, body="{}",
            connection=github, hand_over_now=False,
        )  # fmt: skip
        notices = list(connection.connection.notifies(timeout=5, stop_after=1))
        assert [(n.channel, n.payload) for n in notices] == [(DELIVERY_CHANNEL, str(received.delivery.pk))]
        again = webhook_delivery_receive(
            provider="github", delivery_id="n-1", event="ping", action="", headers={}, body="{}",
            connection=github, hand_over_now=False,
        )  # fmt: skip
        assert not again.created
        assert list(connection.connection.notifies(timeout=0.5)) == []  # a duplicate is not announced
    finally:
        with connection.cursor() as cursor:
            cursor.execute("UNLISTEN *")


def _dispatch_while_storing(monkeypatch, stores: list[str], *, poll: float) -> tuple[dict[str, int], list, list]:
    """Run the dispatcher's loop; at its first wait for a notice store `stores[0]`, at its second `stores[1]`, … (each
    a list of delivery ids), with this process's notice clock stopped; end at the first wait for the poll after the
    first wait. What was stored, what was sent, and the waits' timeouts."""
    monkeypatch.setattr(webhook_services, "_notices", {})
    monkeypatch.setattr(webhook_services, "_notice_clock", lambda: 1000.0)  # every store within one window
    github = Connection.objects.create(provider="github", name="GitHub", base_url="https://api.github.com")
    stored: dict[str, int] = {}
    sent: list[list[int]] = []
    waits: list[float] = []
    real_wait = dispatcher._wait_for_notice
    done = [False]

    def wait(timeout: float, *, listening: bool) -> bool:
        waits.append(timeout)
        for delivery_id in stores[len(waits) - 1] if len(waits) <= len(stores) else []:
            stored[delivery_id] = webhook_delivery_receive(
                provider="github", delivery_id=delivery_id, event="ping", action="", headers={}, body="{}",
                connection=github, hand_over_now=False,
            ).pk  # fmt: skip
        if timeout >= poll and len(waits) > 1:
            done[0] = True  # the dispatcher would wait for the poll now: stop, without waiting an hour
            return False
        return real_wait(timeout, listening=listening)

    monkeypatch.setattr(dispatcher, "_wait_for_notice", wait)
    try:
        dispatcher.dispatch_until(lambda: done[0], send=sent.append, poll=poll, once=False)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("UNLISTEN *")
    return stored, sent, waits


@pytest.mark.django_db(transaction=True)
def test_a_delivery_stored_unannounced_after_a_notice_is_handed_over_without_waiting_for_the_poll(monkeypatch):
    """Deliveries stored less than a window apart: the second's notice asks for a look again after the window, and
    a third stored within it is not announced; the dispatcher's look after the window hands it over, not the next
    poll (an hour here)."""
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    stored, sent, waits = _dispatch_while_storing(monkeypatch, [["first", "second"], ["within"]], poll=3600.0)
    assert sent == [[stored["first"]], [stored["second"]], [stored["within"]]]
    assert waits[1] <= webhook_services.NOTICE_WINDOW  # the look after the notice came within its window


@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_comes_alone_costs_the_dispatcher_one_look(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    stored, sent, waits = _dispatch_while_storing(monkeypatch, [["alone"]], poll=3600.0)
    assert sent == [[stored["alone"]]]
    assert waits == [3600.0, 3600.0]  # handed over at its notice, then nothing until the poll
