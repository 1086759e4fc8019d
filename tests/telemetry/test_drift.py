"""The drift detector on hand-made daily series: each limit, and one past it."""

from __future__ import annotations

import datetime as dt

from telemetry.drift import (
    DRIFTING,
    FIGURES_BY_NAME,
    NORMAL,
    NOT_ENOUGH_HISTORY,
    Sensitivity,
    assess,
    evidence,
    window_value,
)

PICKUP = FIGURES_BY_NAME["pickup_time"]
COVERAGE = FIGURES_BY_NAME["review_coverage"]
LAST = dt.date(2025, 6, 13)  # a Friday


def series(days: int, value_of, per_day: int = 4, jitter: float = 0.1) -> dict[dt.date, list[tuple[int, float]]]:
    found = {}
    for back in range(days):
        day = LAST - dt.timedelta(days=back)
        found[day] = [(back * 100 + i, value_of(day, back) + jitter * i) for i in range(per_day)]
    return found


def steady_then(jump_days: int, jump: float, *, days: int = 90):
    return series(days, lambda day, back: 2.0 + (back % 3) * 0.2 + (jump if back < jump_days else 0.0))


def test_a_jump_sustained_for_the_days_asked_drifts():
    result = assess(PICKUP, steady_then(3, 4.0), last_day=LAST, sensitivity=Sensitivity(sustained_days=3))
    assert result.state == DRIFTING
    assert [check.day for check in result.checks] == [LAST - dt.timedelta(days=n) for n in range(3)]
    assert result.latest.baseline < 2.8 and result.value > 6


def test_one_day_short_of_sustained_does_not_drift():
    result = assess(PICKUP, steady_then(2, 4.0), last_day=LAST, sensitivity=Sensitivity(sustained_days=3))
    assert result.state != DRIFTING


def test_a_departure_just_below_the_threshold_is_not_beyond():
    history = steady_then(3, 0.0)
    flat = assess(PICKUP, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=1))
    latest = flat.latest
    threshold_value = latest.baseline + 3.0 * latest.scale
    history[LAST] = [(1, threshold_value - 0.01)] * 4
    assert not assess(PICKUP, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=1)).latest.beyond
    history[LAST] = [(1, threshold_value + 0.01)] * 4
    assert assess(PICKUP, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=1)).state == DRIFTING


def test_a_window_one_sample_short_has_no_value():
    assert window_value(PICKUP, [(1, 5.0)] * (PICKUP.min_samples - 1)) is None
    assert window_value(PICKUP, [(1, 5.0)] * PICKUP.min_samples) == 5.0


def test_three_earlier_weeks_are_not_enough_history_four_are():
    sensitivity = Sensitivity(sustained_days=1)
    # The last day, and the same weekday of 3 (then 4) weeks before the look-back span.
    span = 1 + 7  # sustained days + slack
    for weeks, expected in ((3, NOT_ENOUGH_HISTORY), (4, NORMAL)):
        history = {LAST: [(1, 2.0)] * 4}
        end = LAST - dt.timedelta(days=7)
        while end >= LAST - dt.timedelta(days=span - 1):
            end -= dt.timedelta(days=7)
        for week in range(weeks):
            history[end - dt.timedelta(days=7 * week)] = [(2, 2.0)] * 4
        result = assess(PICKUP, history, last_day=LAST, sensitivity=sensitivity)
        assert result.state == expected, weeks
    assert "not enough history" in assess(PICKUP, {}, last_day=LAST, sensitivity=sensitivity).reason


def test_the_baseline_is_the_same_weekday_of_earlier_weeks():
    # Fridays are always slow (weekend ahead), other days fast: a slow Friday is normal, not a drift.
    history = series(90, lambda day, back: 20.0 if day.weekday() == 4 else 2.0)
    assert assess(PICKUP, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=1)).state == NORMAL


def test_a_drop_counts_only_for_figures_whose_bad_way_is_down():
    history = series(90, lambda day, back: 0.0 if back < 3 else 1.0, per_day=6, jitter=0.0)
    result = assess(COVERAGE, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=3))
    assert result.state == DRIFTING
    assert {item_id for item_id, _ in evidence(COVERAGE, history, result)} == {
        back * 100 + i for back in range(3) for i in range(6)
    }


def test_a_steady_baseline_does_not_turn_a_wobble_into_an_alert():
    history = series(90, lambda day, back: 2.0 if back >= 3 else 2.1)  # MAD 0: the floor keeps the scale
    assert assess(PICKUP, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=3)).state == NORMAL


def test_evidence_is_the_slow_ones_worst_first():
    history = steady_then(3, 4.0)
    result = assess(PICKUP, history, last_day=LAST, sensitivity=Sensitivity(sustained_days=3))
    found = evidence(PICKUP, history, result)
    assert [value for _, value in found] == sorted((value for _, value in found), reverse=True)
    assert {item_id // 100 for item_id, _ in found} == {0, 1, 2}
