"""Alerts on a team's own telemetry: raised by a sustained departure with the pull requests behind it, one per team
and figure, closed on recovery (on the record), shown on the team page, told to the chat once, acknowledged by a
lead only; "not enough history" instead of an alert when the data is thin."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from reviews.models import AuditEvent, PullRequest, RecordImmutable
from reviews.services.figures import pull_request_figures_refresh
from telemetry.models import AlertClosedNotice, AlertSettings, FigureDay, TeamAlert
from telemetry.services.alerts import ALERT_CLOSED_CHAT, alerts_run
from telemetry.services.chat import chats_dispatch
from telemetry.tasks import notify_chat_of_alert, notify_chat_of_alert_closed
from tests.telemetry.conftest import approve

FRIDAY = dt.datetime(2025, 6, 13, 18, 0, tzinfo=dt.UTC)
NOW = FRIDAY + dt.timedelta(hours=8)  # Saturday: Friday is the last complete day
WEEKS = 10


class Year:
    """Weekdays of merged pull requests, each approved `pickup` hours after it was ready."""

    def __init__(self, history, reviewer) -> None:
        self.history, self.reviewer, self.number = history, reviewer, 0
        self.by_day: dict[dt.date, list[int]] = {}

    def day(self, day: dt.date, pickups: list[float]) -> None:
        for index, pickup in enumerate(pickups):
            self.number += 1
            merged_at = dt.datetime.combine(day, dt.time(9 + index), tzinfo=dt.UTC) + dt.timedelta(hours=pickup)
            pull_request = self.history.merge(self.number, at=merged_at, ready=dt.timedelta(hours=pickup + 0.5))
            approve(pull_request, self.reviewer, at=merged_at - dt.timedelta(minutes=30), body="looks right")
            self.by_day.setdefault(day, []).append(pull_request.pk)

    def weekdays(self, *, weeks: int, slow_days: int = 0, per_day: int = 3, slow: float = 8.0) -> None:
        last = FRIDAY.date()
        day = last - dt.timedelta(days=7 * weeks - 1)
        weekdays = [d for d in (day + dt.timedelta(days=n) for n in range(7 * weeks)) if d.weekday() < 5]
        for position, current in enumerate(weekdays):
            is_slow = position >= len(weekdays) - slow_days
            base = slow if is_slow else 2.0 + (position % 3) * 0.25
            self.day(current, [base + 0.1 * i for i in range(per_day)])


@pytest.fixture
def year(history, actors) -> Year:
    return Year(history, actors.lead)


def run(now: dt.datetime = NOW):
    # A fresh install backfills at most two weeks a run: run until the stored history is complete.
    for _ in range(10):
        result = alerts_run(now=now)
        if not result.days_computed:
            return result
    return result


def test_a_doubled_pickup_raises_one_alert_with_the_pull_requests_behind_it(year, actors):
    year.weekdays(weeks=WEEKS, slow_days=3)
    run()
    alert = TeamAlert.objects.get(team=actors.team, figure="pickup_time")
    assert alert.closed_at is None
    assert alert.baseline == pytest.approx(2.25, abs=0.5)
    assert alert.value >= 8.0
    assert alert.departure >= 3.0
    assert [day["day"] for day in alert.days] == ["2025-06-13", "2025-06-12", "2025-06-11"]
    slow = {pk for day in sorted(year.by_day)[-3:] for pk in year.by_day[day]}
    assert alert.evidence_kind == "pull_request"
    assert {item_id for item_id, _ in alert.evidence} == slow

    again = alerts_run(now=NOW)  # beat runs it every hour: still one alert
    assert again.opened == []
    assert TeamAlert.objects.filter(team=actors.team, figure="pickup_time").count() == 1


def test_a_team_whose_habits_did_not_change_hears_nothing(year, actors):
    year.weekdays(weeks=WEEKS)
    result = run()
    assert result.assessed >= 5
    assert not TeamAlert.objects.filter(team=actors.team).exists()


def test_two_days_of_a_three_day_rule_raise_nothing(year, actors):
    year.weekdays(weeks=WEEKS, slow_days=2)
    run()
    assert not TeamAlert.objects.filter(team=actors.team, figure="pickup_time").exists()


def test_a_more_sensitive_team_hears_after_two_days(year, actors):
    AlertSettings.objects.create(team=actors.team, sustained_days=2)
    year.weekdays(weeks=WEEKS, slow_days=2)
    run()
    assert TeamAlert.objects.filter(team=actors.team, figure="pickup_time").exists()


def test_too_little_history_raises_nothing_and_the_page_says_so(year, actors):
    year.weekdays(weeks=3, slow_days=3)
    run()
    assert not TeamAlert.objects.filter(team=actors.team).exists()
    client = Client()
    client.force_login(actors.member.user)
    page = client.get("/teams/payments/").content.decode()
    assert 'id="alerts"' in page
    assert "not enough history" in page


def test_recovery_closes_the_alert_and_keeps_it_on_the_record(year, actors):
    year.weekdays(weeks=WEEKS, slow_days=3)
    run()
    alert = TeamAlert.objects.get(team=actors.team, figure="pickup_time")
    for offset in (3, 4, 5):  # Mon, Tue, Wed of the next week, back to normal
        year.day(FRIDAY.date() + dt.timedelta(days=offset), [2.0, 2.2, 2.4])
    later = FRIDAY + dt.timedelta(days=6)
    result = alerts_run(now=later)
    alert.refresh_from_db()
    assert alert.pk in result.closed
    assert alert.closed_at is not None and alert.recovered is True
    assert alert.closing_value < 3
    with pytest.raises(RecordImmutable):
        alert.delete()
    with pytest.raises(RecordImmutable):
        TeamAlert.objects.filter(pk=alert.pk).update(value=1.0)


def test_a_recovery_is_told_to_the_chat_once_after_a_502_and_shown_on_the_page(year, actors, fake_chat, run_on_commit):
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    year.weekdays(weeks=WEEKS, slow_days=3)
    with run_on_commit():
        run()
    alert = TeamAlert.objects.get(team=actors.team, figure="pickup_time")
    assert [m["text"] for m in fake_chat.messages if "recovered" in m["text"]] == []
    for offset in (3, 4, 5):  # Mon, Tue, Wed of the next week, back to normal
        year.day(FRIDAY.date() + dt.timedelta(days=offset), [2.0, 2.2, 2.4])
    later = FRIDAY + dt.timedelta(days=6)
    fake_chat.status = 502  # the chat is down once
    with run_on_commit():
        closed = alerts_run(now=later)
    assert alert.pk in closed.closed
    notice = AlertClosedNotice.objects.get(alert=alert)
    assert notice.chat_notified_at is None and notice.chat_attempts == 1 and "502" in notice.chat_error
    assert notice.chat_next_attempt_at is not None  # due again after a backoff

    fake_chat.status = 200
    sent: list[int] = []
    retry_at = notice.chat_next_attempt_at + dt.timedelta(seconds=1)
    assert chats_dispatch(kind=ALERT_CLOSED_CHAT, send=sent.append, now=retry_at) >= 1
    assert notice.pk in sent
    assert [notify_chat_of_alert_closed(notice_id) for notice_id in sent] == ["sent"] * len(sent)
    recovered = [m["text"] for m in fake_chat.messages if "Pickup time has recovered" in m["text"]]
    assert len(recovered) == 1 and "Payments" in recovered[0]
    # Beat runs again, a task is retried, the alerting run repeats: nothing more is said.
    assert chats_dispatch(kind=ALERT_CLOSED_CHAT, send=sent.append, now=retry_at + dt.timedelta(hours=2)) == 0
    assert notify_chat_of_alert_closed(notice.pk) == "skipped: already sent"
    with run_on_commit():
        assert alerts_run(now=later).closed == []
    assert AlertClosedNotice.objects.filter(alert=alert).count() == 1
    assert len([m for m in fake_chat.messages if "Pickup time has recovered" in m["text"]]) == 1

    client = Client()
    client.force_login(actors.member.user)
    page = client.get("/teams/payments/").content.decode()
    assert f'data-recovered="{alert.pk}"' in page


def test_the_database_refuses_a_second_open_alert_per_team_and_figure(actors):
    fields = dict(
        team=actors.team, figure="pickup_time", direction="up", first_day=FRIDAY.date(), last_day=FRIDAY.date(),
        value=8, baseline=2, scale=0.5, departure=12, samples=3, deviations=3, sustained_days=3,
        evidence_kind="pull_request",
    )  # fmt: skip
    TeamAlert.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        TeamAlert.objects.create(**fields)
    TeamAlert.objects.create(**{**fields, "figure": "time_to_first_review"})


@pytest.mark.parametrize(
    ("field", "value"), [("deviations", 1.4), ("deviations", 10.1), ("sustained_days", 0), ("sustained_days", 15)]
)
def test_sensitivity_one_past_each_limit_is_refused(actors, field, value):
    settings = AlertSettings(team=actors.team, **{field: value})
    with pytest.raises(ValidationError) as refused:
        settings.full_clean()
    assert field in refused.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        settings.save()


def test_the_chat_hears_of_an_alert_once(year, actors, fake_chat, run_on_commit):
    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    year.weekdays(weeks=WEEKS, slow_days=3)
    with run_on_commit():
        run()
    alert = TeamAlert.objects.get(team=actors.team, figure="pickup_time")
    pickup_messages = [m for m in fake_chat.messages if "Pickup time" in m["text"]]
    assert len(pickup_messages) == 1
    assert "Payments" in pickup_messages[0]["text"]
    assert notify_chat_of_alert(alert.pk) == "skipped: already sent"  # a retried task
    assert len([m for m in fake_chat.messages if "Pickup time" in m["text"]]) == 1


def test_a_run_costs_the_same_queries_whatever_the_history(history, actors):
    def run_computing_the_last_three_days() -> int:
        FigureDay.objects.filter(day__gt=FRIDAY.date() - dt.timedelta(days=3)).delete()
        with CaptureQueriesContext(connection) as queries:
            assert len(alerts_run(now=NOW).days_computed) == 3
        return len(queries.captured_queries)

    year = Year(history, actors.lead)
    year.weekdays(weeks=WEEKS, per_day=3)
    run()
    few = run_computing_the_last_three_days()
    year.weekdays(weeks=WEEKS, per_day=3)  # twice the history on the same days
    while pull_request_figures_refresh(bots=set()):  # the reconciler stores the new pull requests' figures
        pass
    assert run_computing_the_last_three_days() == few
    with CaptureQueriesContext(connection) as judging_only:
        assert alerts_run(now=NOW).days_computed == []
    assert len(judging_only.captured_queries) < few
    assert FigureDay.objects.filter(team=actors.team).count() > 8 * 7 * WEEKS


@pytest.mark.slow(40)
def test_a_pickup_that_doubles_is_told_to_the_chat_within_the_week_with_the_slow_pull_requests(
    year, actors, fake_chat, run_on_commit, monkeypatch
):
    """The beat job, run every morning: nine weeks of a steady pickup (four a weekday, log-normal around 2 h), then
    twice as slow from a Monday. An alert opens within seven days of the change, its evidence is the slow pull
    requests since the change (worst first, with their own pickup), and the chat hears of it once."""
    from telemetry.tasks import run_alerts

    actors.team.slack_webhook_url = fake_chat.url
    actors.team.save()
    rng = random.Random(18)
    change = dt.date(2025, 6, 16)  # a Monday
    pickup_of: dict[int, float] = {}

    def merge_day(day: dt.date, factor: float) -> None:
        if day.weekday() < 5:
            pickups = [round(2.0 * factor * math.exp(rng.gauss(0, 0.4)), 2) for _ in range(4)]
            year.day(day, pickups)
            pickup_of.update(zip(year.by_day[day], pickups, strict=True))

    def beat(morning: dt.date) -> None:
        moment = dt.datetime.combine(morning, dt.time(6), tzinfo=dt.UTC)
        monkeypatch.setattr("django.utils.timezone.now", lambda: moment)
        with run_on_commit():
            for _ in range(10):  # a fresh install backfills two weeks a run: the first morning catches up
                if not run_alerts()["days_computed"]:
                    break

    for back in range(7 * 9, 0, -1):  # the 28 days judged and the baseline's weeks before them
        merge_day(change - dt.timedelta(days=back), 1.0)
    beat(change)
    assert not TeamAlert.objects.filter(team=actors.team).exists()  # a stable baseline: nothing to say

    raised_after = None
    for offset in range(8):  # the change's day and the week after it, each judged the next morning
        merge_day(change + dt.timedelta(days=offset), 2.0)
        beat(change + dt.timedelta(days=offset + 1))
        if TeamAlert.objects.filter(team=actors.team, figure="pickup_time").exists():
            raised_after = offset
            break
    assert raised_after is not None and raised_after <= 6, "not raised within seven days of the change"

    alert = TeamAlert.objects.get(team=actors.team, figure="pickup_time", closed_at=None)
    assert change <= alert.first_day <= change + dt.timedelta(days=2)  # the excursion begins with the change
    assert alert.value >= 1.6 * alert.baseline and 1.5 <= alert.baseline <= 2.5
    excursion = {pk for day, pks in year.by_day.items() if day >= alert.first_day for pk in pks}
    slow = {pk for pk in excursion if pickup_of[pk] > alert.baseline}
    assert {pk for pk, _ in alert.evidence} == slow  # every slow one of the excursion, none from before it
    assert [hours for _, hours in alert.evidence] == sorted((pickup_of[pk] for pk in slow), reverse=True)
    told = [m["text"] for m in fake_chat.messages if "Pickup time went up" in m["text"]]
    assert len(told) == 1 and "Payments" in told[0] and f"{len(slow)} pull requests behind it" in told[0]
    worst_pk, worst_hours = alert.evidence[0]
    worst = PullRequest.objects.get(pk=worst_pk)
    assert f"Worst: {worst.repository.full_path}#{worst.number} {worst.title} ({worst_hours:.1f} h)" in told[0]


# --- API ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def alert(year, actors) -> TeamAlert:
    year.weekdays(weeks=WEEKS, slow_days=3)
    run()
    return TeamAlert.objects.get(team=actors.team, figure="pickup_time")


def test_members_read_the_alerts_with_their_evidence(alert, actors):
    response = actors.client("member").get("/api/v1/teams/payments/alerts?state=open")
    assert response.status_code == 200
    found = next(item for item in response.json()["alerts"] if item["id"] == alert.pk)
    assert found["baseline"] == alert.baseline and found["change"] == pytest.approx(alert.value - alert.baseline)
    assert {row["kind"] for row in found["evidence"]} == {"pull_request"}
    assert all(row["label"].startswith("acme/shop#") for row in found["evidence"])
    assert actors.client("member").get("/api/v1/teams/payments/alerts?state=nope").json()["fields"]["state"]


@pytest.mark.parametrize("who", ["outsider", "other_token", "anonymous"])
def test_another_team_neither_reads_nor_acknowledges_them(alert, actors, who):
    client = actors.client(who)
    assert client.get("/api/v1/teams/payments/alerts").status_code in {401, 403, 404}
    response = client.post(f"/api/v1/teams/payments/alerts/{alert.pk}/acknowledge")
    assert response.status_code in ({401, 403} if who == "anonymous" else {404})
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_another_teams_lead_gets_404_even_through_their_own_team(alert, actors):
    response = actors.client("outsider").post(f"/api/v1/teams/search/alerts/{alert.pk}/acknowledge")
    assert response.status_code == 404


def test_a_member_who_does_not_lead_gets_403(alert, actors):
    response = actors.client("member").post(f"/api/v1/teams/payments/alerts/{alert.pk}/acknowledge")
    assert response.status_code == 403
    assert "lead" in response.json()["error"]


def test_a_lead_acknowledges_once_and_it_is_recorded(alert, actors):
    response = actors.client("lead").post(f"/api/v1/teams/payments/alerts/{alert.pk}/acknowledge")
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "Lena Lead"
    alert.refresh_from_db()
    first = alert.acknowledged_at
    assert first is not None and alert.acknowledged_by == actors.lead
    again = actors.client("token").post(f"/api/v1/teams/payments/alerts/{alert.pk}/acknowledge")
    assert again.status_code == 200
    alert.refresh_from_db()
    assert alert.acknowledged_at == first and alert.acknowledged_by == actors.lead
    assert AuditEvent.objects.filter(action="alert.acknowledge", target_id=str(alert.pk)).count() == 1


def test_the_team_page_shows_the_alert_and_its_pull_requests(alert, actors):
    client = Client()
    client.force_login(actors.member.user)
    page = client.get("/teams/payments/").content.decode()
    assert f'data-alert="{alert.pk}"' in page
    first_id = alert.evidence[0][0]
    assert f'data-evidence="pull_request-{first_id}"' in page
    assert "Not acknowledged yet" in page
