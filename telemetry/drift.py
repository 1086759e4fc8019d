"""Drift of a team's figure from its own baseline: plain Python over daily samples, no Django (the alerting run and
`bench/alerts_quality.py` use the same code).

A figure's samples are stored per day: (id, value) items, the id naming what the value is about (a pull request, a
deployment, an incident). A day is checked on the figure's window (the `window_days` ending that day):

- its value: the median of the values (durations), their mean (shares: values are 0 or 1), or their number per day
  (deployment frequency); none when the window holds fewer than `min_samples` items;
- its baseline (rolling, weekday-aware): the values of the windows ending on the same weekday in each of the
  `baseline_weeks` weeks before the span being judged; at least `MIN_BASELINE_WINDOWS` of them with a value, else
  there is not enough history;
- its departure: (value - baseline median) / scale, where scale is the robust deviation of the baseline (1.4826 ×
  the median absolute deviation), never below the figure's floor (an absolute one and a share of the median), nor
  below the chance deviation of the day's own samples (binomial around the pooled baseline rate for shares, whose
  centre is that rate; Poisson for counts), so that a steady baseline does not turn a wobble into an alert; for a
  share, the departure is also no more than the exact binomial tail's (rare events are not normal).

A figure drifts when each of the last `sustained_days` days that could be checked departs by at least `deviations`
in its bad direction; it is back to normal when none of them does. Days that cannot be checked (too few samples: a
weekend) are passed over, not counted either way; fewer than `sustained_days` checkable days in the look-back is
"not enough history" (fail closed: no alert, and no recovery either).

The baseline rolls: a change that lasts becomes the new normal after about half of `baseline_weeks`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist, median

Item = tuple[int, float]  # (id of the pull request / deployment / incident, value)
Series = Mapping[dt.date, Sequence[Item]]

MAD_TO_SD = 1.4826
MIN_BASELINE_WINDOWS = 4
LOOKBACK_SLACK_DAYS = 7  # days a look-back may pass over (weekends, quiet days) to find its checkable days
EVIDENCE_SHOWN = 20

DRIFTING = "drifting"
NORMAL = "normal"
UNSETTLED = "unsettled"  # some checked days depart, some do not: nothing changes
NOT_ENOUGH_HISTORY = "not_enough_history"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    label: str
    kind: str  # "median" (hours), "share" (0..1), "per_day" (count per day)
    bad: str  # "up" or "down": the direction that is a problem
    window_days: int
    min_samples: int
    floor: float  # the least scale, in the figure's unit
    relative_floor: float  # the least scale as a share of the baseline's median
    unit: str
    evidence: str  # what the items' ids are: "pull_request", "deployment", "incident"


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("time_to_first_review", "Time to first review", "median", "up", 1, 3, 0.5, 0.1, "h", "pull_request"),
    FigureSpec("pickup_time", "Pickup time", "median", "up", 1, 3, 0.5, 0.1, "h", "pull_request"),
    # Shares and counts over a week: a day of a few pull requests says little about a rate (bench/alerts_quality.py).
    FigureSpec("unreviewed_share", "Unreviewed merges", "share", "up", 7, 10, 0.03, 0.0, "", "pull_request"),
    FigureSpec("rubber_stamp_share", "Rubber-stamp approvals", "share", "up", 7, 10, 0.03, 0.0, "", "pull_request"),
    FigureSpec("review_coverage", "Review coverage", "share", "down", 7, 10, 0.03, 0.0, "", "pull_request"),
    FigureSpec("change_failure_rate", "Change failure rate", "share", "up", 7, 5, 0.03, 0.0, "", "deployment"),
    FigureSpec("deployment_frequency", "Deployment frequency", "per_day", "down", 7, 0, 0.2, 0.1, "/day", "deployment"),
    FigureSpec("time_to_restore", "Time to restore", "median", "up", 28, 2, 0.5, 0.1, "h", "incident"),
)
FIGURES_BY_NAME = {spec.name: spec for spec in FIGURES}


@dataclass(frozen=True)
class Sensitivity:
    deviations: float = 3.0
    sustained_days: int = 3
    baseline_weeks: int = 8

    def history_days(self, spec: FigureSpec) -> int:
        """How many days of samples one assessment reads, up to the day judged."""
        return self.baseline_weeks * 7 + spec.window_days + self.sustained_days + LOOKBACK_SLACK_DAYS + 7


@dataclass(frozen=True)
class DayCheck:
    day: dt.date
    value: float
    samples: int
    baseline: float
    scale: float
    departure: float  # in scales, signed: positive is the bad direction
    beyond: bool


@dataclass(frozen=True)
class Assessment:
    figure: FigureSpec
    state: str
    checks: tuple[DayCheck, ...] = ()  # the last checkable days, newest first
    reason: str = ""

    @property
    def latest(self) -> DayCheck | None:
        return self.checks[0] if self.checks else None

    @property
    def value(self) -> float | None:
        """The figure over the judged days: the median of their values."""
        return round(median(check.value for check in self.checks), 4) if self.checks else None


def window_items(series: Series, end: dt.date, days: int) -> list[Item]:
    items: list[Item] = []
    for back in range(days):
        items.extend(series.get(end - dt.timedelta(days=back), ()))
    return items


def window_value(spec: FigureSpec, items: Sequence[Item]) -> float | None:
    if len(items) < spec.min_samples:
        return None
    if spec.kind == "per_day":
        return len(items) / spec.window_days
    if not items:
        return None
    values = [value for _, value in items]
    return float(median(values)) if spec.kind == "median" else sum(values) / len(values)


def robust_scale(spec: FigureSpec, values: Sequence[float]) -> tuple[float, float]:
    """(median, scale) of baseline values: scale = 1.4826 × MAD, floored."""
    centre = float(median(values))
    mad = float(median(abs(value - centre) for value in values))
    return centre, max(MAD_TO_SD * mad, spec.floor, spec.relative_floor * abs(centre))


def _with_sampling_noise(
    spec: FigureSpec, centre: float, scale: float, pooled: list[float], samples: int
) -> tuple[float, float]:
    """A share of few samples, or a small count, swings by chance more than the baseline's spread may show (a
    baseline of days with no unreviewed merge has no spread at all): the scale is at least the binomial (shares,
    around the pooled baseline rate) or Poisson (counts) deviation of the day's window."""
    if spec.kind == "share" and pooled and samples:
        rate = sum(pooled) / len(pooled)
        rate = min(max(rate, 1 / (2 * len(pooled))), 1 - 1 / (2 * len(pooled)))
        return rate, max(scale, math.sqrt(rate * (1 - rate) / samples))
    if spec.kind == "per_day":
        return centre, max(scale, math.sqrt(max(centre, 0.5) / spec.window_days))
    return centre, scale


def _binomial_departure(value: float, rate: float, samples: int, *, up: bool) -> float:
    """How unlikely the window's count is by chance at the baseline rate, as a number of normal deviations: the
    exact binomial tail, since a rare event's count (two unreviewed merges in a week that usually has none) is far
    from normal."""
    bad = round((value if up else 1 - value) * samples)
    p = rate if up else 1 - rate
    if bad <= samples * p:
        return 0.0
    tail = sum(math.comb(samples, k) * p**k * (1 - p) ** (samples - k) for k in range(bad, samples + 1))
    return NormalDist().inv_cdf(max(1e-12, min(1 - 1e-12, 1 - tail)))


def check_day(
    spec: FigureSpec, series: Series, day: dt.date, *, before: dt.date, sensitivity: Sensitivity
) -> DayCheck | None:
    """The day's value against the same-weekday windows of the weeks before `before`; None when either is lacking."""
    value = window_value(spec, window_items(series, day, spec.window_days))
    if value is None:
        return None
    baseline: list[float] = []
    pooled: list[float] = []
    end = day - dt.timedelta(days=7)
    while end >= before:
        end -= dt.timedelta(days=7)
    for _ in range(sensitivity.baseline_weeks):
        items = window_items(series, end, spec.window_days)
        found = window_value(spec, items)
        if found is not None:
            baseline.append(found)
            pooled.extend(value for _, value in items)
        end -= dt.timedelta(days=7)
    if len(baseline) < MIN_BASELINE_WINDOWS:
        return None
    centre, scale = robust_scale(spec, baseline)
    samples = len(window_items(series, day, spec.window_days))
    centre, scale = _with_sampling_noise(spec, centre, scale, pooled, samples)
    signed = (value - centre) / scale * (1 if spec.bad == "up" else -1)
    if spec.kind == "share" and samples:
        signed = min(signed, _binomial_departure(value, centre, samples, up=spec.bad == "up"))
    return DayCheck(
        day, round(value, 4), samples, round(centre, 4), round(scale, 4),
        round(signed, 2), signed >= sensitivity.deviations,
    )  # fmt: skip


def assess(spec: FigureSpec, series: Series, *, last_day: dt.date, sensitivity: Sensitivity) -> Assessment:
    """Judge the figure on the last `sustained_days` checkable days up to `last_day` (see the module's docstring)."""
    lookback = sensitivity.sustained_days + LOOKBACK_SLACK_DAYS
    span_start = last_day - dt.timedelta(days=lookback - 1)
    checks: list[DayCheck] = []
    for back in range(lookback):
        day = last_day - dt.timedelta(days=back)
        check = check_day(spec, series, day, before=span_start, sensitivity=sensitivity)
        if check is not None:
            checks.append(check)
            if len(checks) == sensitivity.sustained_days:
                break
    if len(checks) < sensitivity.sustained_days:
        return Assessment(spec, NOT_ENOUGH_HISTORY, tuple(checks), _lacking(spec, len(checks), sensitivity))
    beyond = sum(check.beyond for check in checks)
    state = DRIFTING if beyond == len(checks) else NORMAL if beyond == 0 else UNSETTLED
    return Assessment(spec, state, tuple(checks))


def _lacking(spec: FigureSpec, found: int, sensitivity: Sensitivity) -> str:
    return (
        f"not enough history: {found} of the {sensitivity.sustained_days} days needed could be compared (each needs "
        f"{spec.min_samples} or more samples in its window and {MIN_BASELINE_WINDOWS} earlier same-weekday windows)"
    )


def evidence(spec: FigureSpec, series: Series, assessment: Assessment) -> list[Item]:
    """What the judged days are made of on the bad side: the slow pull requests (those above the baseline), the
    unreviewed or rubber-stamped ones, the failed deployments; for a drop in deployments, those there were. Worst
    first, at most EVIDENCE_SHOWN, one item per id."""
    latest = assessment.latest
    if latest is None:
        return []
    items: dict[int, float] = {}
    for check in assessment.checks:
        for item_id, value in window_items(series, check.day, spec.window_days):
            if _on_bad_side(spec, value, latest.baseline):
                items[item_id] = max(value, items.get(item_id, -math.inf))
    ranked = sorted(items.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:EVIDENCE_SHOWN]


def _on_bad_side(spec: FigureSpec, value: float, baseline: float) -> bool:
    if spec.kind == "per_day":
        return True
    if spec.kind == "share":
        return value >= 1 if spec.bad == "up" else value <= 0
    return value > baseline if spec.bad == "up" else value < baseline
