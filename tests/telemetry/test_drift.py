"""The drift detector on hand-made daily series: a doubled pickup is raised within the week, noise is not, shares
and deployment counts are judged by their chance, and each limit holds with one step past it."""

from __future__ import annotations

import datetime as dt
import math
import random

from telemetry.drift import (
    DRIFTING,
    FIGURES_BY_NAME,
    NORMAL,
    NOT_ENOUGH_HISTORY,
    Sensitivity,
    assess,
    evidence,
)

PICKUP = FIGURES_BY_NAME["pickup_time"]
UNREVIEWED = FIGURES_BY_NAME["unreviewed_share"]
DEPLOYMENTS = FIGURES_BY_NAME["deployment_frequency"]
LAST = dt.date(2025, 6, 13)  # a Friday
DEFAULT = Sensitivity()


def weekdays_back(days: int) -> list[dt.date]:
    """The weekdays of the `days` days up to LAST, oldest first."""
    found = [LAST - dt.timedelta(days=back) for back in range(days)]
    return [day for day in reversed(found) if day.weekday() < 5]


def pickups(*, weeks: int = 16, per_day: int = 6, seed: int = 1, factor_of=lambda day: 1.0) -> dict:
    """Every day of `weeks` weeks: weekdays with `per_day` log-normal pickups (median 4 h, slower on Fridays),
    weekends computed and empty."""
    rng = random.Random(seed)
    series: dict[dt.date, list[tuple[int, float]]] = {}
    next_id = 0
    for back in range(weeks * 7 - 1, -1, -1):
        day = LAST - dt.timedelta(days=back)
        series[day] = []
        if day.weekday() >= 5:
            continue
        friday = 1.5 if day.weekday() == 4 else 1.0
        for _ in range(per_day):
            next_id += 1
            series[day].append((next_id, 4.0 * friday * factor_of(day) * math.exp(rng.gauss(0, 0.7))))
    return series


def first_drifting_day(spec, series, days, sensitivity=DEFAULT):
    for day in days:
        if assess(spec, series, last_day=day, sensitivity=sensitivity).state == DRIFTING:
            return day
    return None


def test_a_doubled_pickup_is_raised_within_five_weekdays():
    starts = weekdays_back(7)[0]  # Monday of the last week
    series = pickups(factor_of=lambda day: 2.0 if day >= starts else 1.0)
    raised = first_drifting_day(PICKUP, series, weekdays_back(7))
    assert raised is not None and raised <= LAST
    result = assess(PICKUP, series, last_day=LAST, sensitivity=DEFAULT)
    assert result.state == DRIFTING
    assert result.latest.departure >= DEFAULT.deviations
    assert result.value > 1.6 * result.latest.baseline
    assert result.checks[-1].day >= starts - dt.timedelta(days=3)  # the excursion begins with the change


def test_noise_raises_nothing_over_ten_weeks_of_daily_runs():
    for seed in range(1, 6):
        series = pickups(weeks=20, seed=seed)
        assert first_drifting_day(PICKUP, series, weekdays_back(70)) is None, seed


def test_two_slow_days_of_a_three_day_rule_raise_nothing_three_do():
    slow = weekdays_back(7)[-3:]  # Wed, Thu, Fri
    series = pickups(factor_of=lambda day: 6.0 if day in slow else 1.0)
    two_days = assess(PICKUP, series, last_day=slow[1], sensitivity=DEFAULT)
    assert two_days.state != DRIFTING
    assert assess(PICKUP, series, last_day=slow[1], sensitivity=Sensitivity(sustained_days=2)).state == DRIFTING
    assert assess(PICKUP, series, last_day=slow[2], sensitivity=DEFAULT).state == DRIFTING


def test_a_recovered_pickup_is_normal_again():
    slow = weekdays_back(14)[:5]  # the week before last
    series = pickups(factor_of=lambda day: 3.0 if day in slow else 1.0)
    assert assess(PICKUP, series, last_day=slow[-1], sensitivity=DEFAULT).state == DRIFTING
    # Three normal weekdays later the excursion's sum is still high, but the days alone look like the baseline.
    wednesday = weekdays_back(7)[2]
    result = assess(PICKUP, series, last_day=wednesday, sensitivity=DEFAULT)
    assert result.state == NORMAL
    assert result.value < 1.5 * result.latest.baseline


def test_slow_fridays_are_compared_with_fridays():
    series = pickups(factor_of=lambda day: 3.0 if day.weekday() == 4 else 1.0)
    assert first_drifting_day(PICKUP, series, weekdays_back(28)) is None


def test_three_weeks_of_baseline_are_not_enough_history_four_are():
    series = pickups(weeks=16)
    for weeks, expected in ((3, NOT_ENOUGH_HISTORY), (4, NORMAL)):
        first_kept = LAST - dt.timedelta(days=PICKUP.recent_days + 7 * weeks - 1)
        kept = {day: items for day, items in series.items() if day >= first_kept}
        result = assess(PICKUP, kept, last_day=LAST, sensitivity=DEFAULT)
        assert result.state == expected, weeks
    assert "not enough history" in assess(PICKUP, {}, last_day=LAST, sensitivity=DEFAULT).reason


def shares(*, rate_of, per_day: int = 8, weeks: int = 16, seed: int = 3) -> dict:
    rng = random.Random(seed)
    series: dict[dt.date, list[tuple[int, float]]] = {}
    next_id = 0
    for back in range(weeks * 7 - 1, -1, -1):
        day = LAST - dt.timedelta(days=back)
        series[day] = []
        for _ in range(per_day if day.weekday() < 5 else 0):
            next_id += 1
            series[day].append((next_id, 1.0 if rng.random() < rate_of(day) else 0.0))
    return series


def test_unreviewed_merges_rising_from_three_to_fifteen_percent_are_raised_within_two_weeks():
    starts = LAST - dt.timedelta(days=13)
    series = shares(rate_of=lambda day: 0.15 if day >= starts else 0.03)
    raised = first_drifting_day(UNREVIEWED, series, [starts + dt.timedelta(days=n) for n in range(14)])
    assert raised is not None
    found = evidence(UNREVIEWED, series, assess(UNREVIEWED, series, last_day=raised, sensitivity=DEFAULT))
    assert found and all(value == 1.0 for _, value in found)


def test_one_unreviewed_merge_in_a_team_that_never_has_any_is_not_an_alert():
    series = shares(rate_of=lambda day: 0.0)
    series[LAST] = [(10_000 + n, 1.0 if n == 0 else 0.0) for n in range(8)]
    assert assess(UNREVIEWED, series, last_day=LAST, sensitivity=DEFAULT).state != DRIFTING


def deployments(*, per_weekday_of, weeks: int = 16, seed: int = 5) -> dict:
    rng = random.Random(seed)
    series: dict[dt.date, list[tuple[int, float]]] = {}
    next_id = 0
    for back in range(weeks * 7 - 1, -1, -1):
        day = LAST - dt.timedelta(days=back)
        count = 0 if day.weekday() >= 5 else sum(rng.random() < per_weekday_of(day) / 10 for _ in range(10))
        series[day] = [(next_id + n, 1.0) for n in range(count)]
        next_id += count
    return series


def test_deployments_halving_are_raised_and_a_quiet_day_is_not():
    starts = LAST - dt.timedelta(days=20)
    halved = deployments(per_weekday_of=lambda day: 2.0 if day >= starts else 4.0)
    three_weeks = [starts + dt.timedelta(days=n) for n in range(21)]
    assert first_drifting_day(DEPLOYMENTS, halved, three_weeks) is not None
    steady = deployments(per_weekday_of=lambda day: 4.0)
    steady[LAST] = []
    assert assess(DEPLOYMENTS, steady, last_day=LAST, sensitivity=DEFAULT).state != DRIFTING


def test_evidence_is_the_excursions_slow_pull_requests_worst_first():
    slow = weekdays_back(7)[-3:]
    series = pickups(factor_of=lambda day: 6.0 if day in slow else 1.0)
    result = assess(PICKUP, series, last_day=LAST, sensitivity=DEFAULT)
    found = evidence(PICKUP, series, result)
    assert [value for _, value in found] == sorted((value for _, value in found), reverse=True)
    slow_ids = {item_id for day in slow for item_id, _ in series[day]}
    assert found and {item_id for item_id, _ in found} <= {
        item_id for check in result.checks for item_id, _ in series[check.day]
    }
    assert len({item_id for item_id, _ in found} & slow_ids) >= len(found) - 2
