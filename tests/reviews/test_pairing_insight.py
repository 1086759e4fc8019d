"""A team's pairing insight against a small history computed by hand, and its query count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import PairingParticipant, Person
from reviews.selectors.pairing import team_pairing_insight
from reviews.services.pairing import pairing_session_record
from tests.factories import MembershipFactory, PersonFactory, TeamFactory

pytestmark = pytest.mark.django_db

SINCE = dt.date(2025, 3, 3)  # Monday of ISO week 10
UNTIL = dt.date(2025, 3, 16)  # Sunday of ISO week 11


def t(day: int, hour: float, month: int = 3) -> dt.datetime:
    return dt.datetime(2025, month, day, tzinfo=dt.UTC) + dt.timedelta(hours=hour)


def record(name: str, people: list[Person], start: dt.datetime, end: dt.datetime, source: str = "manual") -> None:
    roles = ["driver"] + ["navigator"] * (len(people) - 1)
    pairing_session_record(
        source=source,
        external_id=name,
        participants=list(zip(people, roles, strict=True)),
        started_at=start,
        ended_at=end,
    )


@pytest.fixture
def team():
    return TeamFactory(slug="payments")


@pytest.fixture
def history(team):
    """
    s1  Ann+Bo      Mon 3 Mar 09:00-11:00               manual
    s2  Ann+Bo      Mon 3 Mar 10:30-11:30               co-author (overlaps s1: counted once)
    s3  Bo+Cy       Tue 11 Mar 14:00-15:30
    s4  Ann+Bo+Cy   Wed 12 Mar 10:00-12:00, Cy from 11:00
    s5  Ann+Olu     Thu 13 Mar 09:00-10:00              Olu is not in the team
    s6  Bo+Cy       Sun 2 Mar 23:00 - Mon 3 Mar 01:00   only the hour after midnight is in the period
    s7  Cy+Dee      Thu 20 Feb 10:00-11:00              before the period
    s8  Ann+Dee     Thu 20 Mar 10:00-11:00              after the period
    """
    ann, bo, cy, dee = (PersonFactory(display_name=name) for name in ("Ann", "Bo", "Cy", "Dee"))
    for person in (ann, bo, cy, dee):
        MembershipFactory(team=team, person=person)
    olu = PersonFactory(display_name="Olu")
    MembershipFactory(team=TeamFactory(slug="search"), person=olu)
    record("s1", [ann, bo], t(3, 9), t(3, 11))
    record("s2", [bo, ann], t(3, 10.5), t(3, 11.5), source="co_author")
    record("s3", [bo, cy], t(11, 14), t(11, 15.5))
    record("s4", [ann, bo, cy], t(12, 10), t(12, 12))
    PairingParticipant.objects.filter(session__external_id="s4", person=cy).update(joined_at=t(12, 11))
    record("s5", [ann, olu], t(13, 9), t(13, 10))
    record("s6", [bo, cy], t(2, 23), t(3, 1))
    record("s7", [cy, dee], t(20, 10, month=2), t(20, 11, month=2))
    record("s8", [ann, dee], t(20, 10), t(20, 11))
    return {"ann": ann, "bo": bo, "cy": cy, "dee": dee, "olu": olu}


def _names(people) -> tuple[str, ...]:
    return tuple(p.display_name for p in people)


def test_pair_matrix_counts_time_together_once_per_pair(team, history):
    insight = team_pairing_insight(team=team, since=SINCE, until=UNTIL)
    matrix = {_names(s.people): (s.hours, s.sessions, s.last_paired_on) for s in insight.pairs}
    assert matrix == {
        ("Ann", "Bo"): (4.5, 3, dt.date(2025, 3, 12)),
        ("Bo", "Cy"): (3.5, 3, dt.date(2025, 3, 12)),
        ("Ann", "Cy"): (1.0, 1, dt.date(2025, 3, 12)),
        ("Ann", "Dee"): (0.0, 0, None),
        ("Bo", "Dee"): (0.0, 0, None),
        ("Cy", "Dee"): (0.0, 0, None),
    }
    assert [_names(s.people) for s in insight.pairs][:3] == [("Ann", "Bo"), ("Bo", "Cy"), ("Ann", "Cy")]


def test_hours_per_person_per_iso_week(team, history):
    insight = team_pairing_insight(team=team, since=SINCE, until=UNTIL)
    assert insight.weeks == ["2025-W10", "2025-W11"]
    assert insight.partial_weeks == []  # Monday to Sunday: both weeks whole
    shorter = team_pairing_insight(team=team, since=SINCE + dt.timedelta(days=2), until=UNTIL - dt.timedelta(days=1))
    assert shorter.partial_weeks == ["2025-W10", "2025-W11"]
    hours = {h.person.display_name: (h.total_hours, h.weekly_hours) for h in insight.hours}
    assert hours == {
        "Ann": (5.5, {"2025-W10": 2.5, "2025-W11": 3.0}),  # pairing with Olu, outside the team, counts
        "Bo": (7.0, {"2025-W10": 3.5, "2025-W11": 3.5}),
        "Cy": (3.5, {"2025-W10": 1.0, "2025-W11": 2.5}),
        "Dee": (0.0, {"2025-W10": 0.0, "2025-W11": 0.0}),
    }
    assert "Olu" not in _names(insight.members)


def test_members_who_did_not_pair_in_the_period(team, history):
    insight = team_pairing_insight(team=team, since=SINCE, until=UNTIL)
    assert _names(insight.not_paired) == ("Dee",)


def test_rotation_puts_never_paired_first_then_least_recently_paired(team, history):
    insight = team_pairing_insight(team=team, since=SINCE, until=UNTIL)
    rotation = [(_names(r.people), r.last_paired_at) for r in insight.rotation]
    assert rotation == [
        (("Ann", "Dee"), None),  # s8 is after the period
        (("Bo", "Dee"), None),
        (("Cy", "Dee"), t(20, 11, month=2)),
        (("Ann", "Bo"), t(12, 12)),
        (("Ann", "Cy"), t(12, 12)),
        (("Bo", "Cy"), t(12, 12)),
    ]
    assert [_names(pair) for pair in insight.suggested_pairs] == [("Ann", "Dee"), ("Bo", "Cy")]


def test_a_session_still_open_counts_up_to_now(team):
    ann, bo = PersonFactory(display_name="Ann"), PersonFactory(display_name="Bo")
    for person in (ann, bo):
        MembershipFactory(team=team, person=person)
    record("open", [ann, bo], timezone.now() - dt.timedelta(hours=1), None)  # type: ignore[arg-type]
    today = timezone.localdate()
    insight = team_pairing_insight(team=team, since=today - dt.timedelta(days=1), until=today)
    [pair] = insight.pairs
    assert 0.99 <= pair.hours <= 1.01
    assert pair.last_paired_on == today


@pytest.mark.parametrize("sessions", [5, 50])
def test_insight_queries_do_not_grow_with_history(team, sessions, django_assert_max_num_queries):
    people = [PersonFactory(display_name=f"P{i}") for i in range(6)]
    for person in people:
        MembershipFactory(team=team, person=person)
    for index in range(sessions):
        start = t(3, 9) + dt.timedelta(hours=5 * index)
        pair = [people[index % 6], people[(index + 1 + index // 6) % 6]]
        if pair[0] == pair[1]:
            pair[1] = people[(index + 2) % 6]
        record(f"s{index}", pair, start - dt.timedelta(days=30), start - dt.timedelta(days=30, hours=-1))
        record(f"t{index}", pair, start, start + dt.timedelta(hours=1))
    with django_assert_max_num_queries(3):
        insight = team_pairing_insight(team=team, since=SINCE, until=dt.date(2025, 3, 31))
    assert sum(h.total_hours for h in insight.hours) > 0
