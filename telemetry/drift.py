"""Drift of a team's figure from its own baseline: plain Python over daily samples, no Django (the alerting run and
`bench/alerts_quality.py` use the same code).

A figure's samples are stored per day: (id, value) items, the id naming what the value is about (a pull request, a
deployment, an incident). A day computed with nothing in it is an empty list (no deployment that day); a day missing
from the series was never computed and is left out of everything.

A figure is judged on its recent days (`FigureSpec.recent_days`, ending on the day judged) against its baseline: the
samples of the `baseline_weeks` weeks before them (rolling: a change that lasts becomes the new normal once it fills
about half of the baseline). The test is a CUSUM, the standard detector of a sustained shift: each sample adds the
log-likelihood ratio of "shifted by the figure's design change" against "as in the baseline", the sum never below
zero, and a sum reaching the threshold is a drift. A small change that lasts adds up as surely as a large one, only
slower; noise adds up to nothing. Per kind of figure, the model that fits its samples:

- durations (`median`): each sample's log hours, standardised by the baseline's median on the same weekday (a slow
  Friday is compared with Fridays) and its robust deviation (1.4826 × MAD), capped at ±3 (a stray week-long review
  is one sample, not a drift); design change: × `shift` (normal model on the logs);
- shares (`share`, items are 0 or 1): Bernoulli samples at the baseline's rate (with half a pseudo-count: none in
  the baseline is not impossible), design change: the rate × `shift`, at least + `floor`, so that two unreviewed
  merges in a week that usually has none count by their chance, and few samples say little;
- counts (`per_day`, deployments): each computed day's count, Poisson at the baseline's rate for that weekday;
  design change: the rate × `shift`.

The threshold is (`deviations` × `H_PER_DEVIATION` of the kind)² in log-likelihood units (3 deviations: 6.5 to
10; a false alarm every ten team-years or so on the synthetic year of bench/alerts_quality.py). The reported
departure is the sum in the same units of deviations (the threshold is `deviations`), so a team page reads it
like a z-score.

A figure drifts when the sum reaches the threshold and each of the last `sustained_days` days with samples leans
the bad way on its own; it is normal when the sum is under a quarter of the threshold, or when the last
`sustained_days` days with samples, alone, add up to under minus half of it (they look like the baseline: recovered,
whatever the excursion's sum still is); in between it is unsettled (an open alert stays open). Too little
baseline (fewer than `MIN_BASELINE_WEEKS` weeks of computed days, or fewer than four times `min_samples` samples)
is "not enough history" (fail closed: no alert, no recovery either).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median

Item = tuple[int, float]  # (id of the pull request / deployment / incident, value)
Series = Mapping[dt.date, Sequence[Item]]

MAD_TO_SD = 1.4826
LOG_OFFSET_HOURS = 0.25  # durations are compared as log(hours + this): a zero is not minus infinity
STANDARD_CAP = 3.0
MAX_DESIGN_DEVIATIONS = 2.0
MIN_SPREAD = 0.25  # the least robust deviation of log hours (~28%: a very steady baseline is no finer ruler)
MIN_BASELINE_WEEKS = 4
MIN_WEEKDAY_SAMPLES = 8  # fewer on a weekday: that weekday is compared with the whole baseline's median
MIN_RATE_PER_DAY = 0.1  # a weekday with no deployment in the baseline: a few are not impossible
# The threshold per deviation, by kind of figure: tuned on seeds 1-3 of bench/alerts_quality.py, reported on 4-9
# (bench/README.md). Shares have few samples a week: a lower bar finds a tripled rate within weeks, and their
# chance model (exact Bernoulli) keeps false alarms rare; durations have many, and estimated baselines.
H_PER_DEVIATION = {"median": 1.05, "share": 1.0, "per_day": 0.95}
NORMAL_BELOW = 0.25  # back to normal: the sum under this share of the threshold (hysteresis: no flapping)
RECOVERED_BELOW = 0.5  # or the last days alone add up to under minus this share of it
EVIDENCE_SHOWN = 20
RECENT_SHOWN_DAYS = 7  # the value reported when nothing adds up: the last week's

DRIFTING = "drifting"
NORMAL = "normal"
UNSETTLED = "unsettled"  # adding up, or fading: nothing changes
NOT_ENOUGH_HISTORY = "not_enough_history"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    label: str
    kind: str  # "median" (hours), "share" (0..1), "per_day" (count per day)
    bad: str  # "up" or "down": the direction that is a problem
    recent_days: int  # the days the sum runs over
    min_samples: int  # the baseline needs four times as many
    shift: float  # the design change, a factor of the baseline (durations, share rates, daily counts)
    floor: float  # the least design change, in the figure's unit (shares)
    unit: str
    evidence: str  # what the items' ids are: "pull_request", "deployment", "incident"


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("time_to_first_review", "Time to first review", "median", "up", 28, 10, 2.0, 0.0, "h", "pull_request"),
    FigureSpec("pickup_time", "Pickup time", "median", "up", 28, 10, 2.0, 0.0, "h", "pull_request"),
    FigureSpec("unreviewed_share", "Unreviewed merges", "share", "up", 28, 10, 3.0, 0.03, "", "pull_request"),
    FigureSpec("rubber_stamp_share", "Rubber-stamp approvals", "share", "up", 28, 10, 1.5, 0.05, "", "pull_request"),
    FigureSpec("review_coverage", "Review coverage", "share", "down", 28, 10, 2.0, 0.03, "", "pull_request"),
    FigureSpec("change_failure_rate", "Change failure rate", "share", "up", 28, 5, 2.0, 0.05, "", "deployment"),
    FigureSpec("deployment_frequency", "Deployment frequency", "per_day", "down", 28, 0, 0.5, 0.0, "/day",
               "deployment"),
    FigureSpec("time_to_restore", "Time to restore", "median", "up", 56, 3, 2.0, 0.0, "h", "incident"),
)  # fmt: skip
FIGURES_BY_NAME = {spec.name: spec for spec in FIGURES}


@dataclass(frozen=True)
class Sensitivity:
    deviations: float = 3.0
    sustained_days: int = 3
    baseline_weeks: int = 8

    def threshold(self, spec: FigureSpec) -> float:
        """The CUSUM's threshold, in log-likelihood units."""
        return (self.deviations * H_PER_DEVIATION[spec.kind]) ** 2

    def history_days(self, spec: FigureSpec) -> int:
        """How many days of samples one assessment reads, up to the day judged."""
        return spec.recent_days + self.baseline_weeks * 7


@dataclass(frozen=True)
class DayCheck:
    """One recent day: its own value, and the sum as it stood at its end."""

    day: dt.date
    value: float | None  # the day's own figure (none: no samples that day)
    samples: int
    baseline: float
    scale: float  # the design change, in the figure's unit
    departure: float  # the sum at the day's end, in deviations (the threshold is the sensitivity's deviations)
    beyond: bool


@dataclass(frozen=True)
class Assessment:
    figure: FigureSpec
    state: str
    checks: tuple[DayCheck, ...] = ()  # the excursion's days (else the last week's), newest first
    reason: str = ""
    value: float | None = None  # the figure over those days together

    @property
    def latest(self) -> DayCheck | None:
        return self.checks[0] if self.checks else None


def window_items(series: Series, end: dt.date, days: int) -> list[Item]:
    items: list[Item] = []
    for back in range(days):
        items.extend(series.get(end - dt.timedelta(days=back), ()))
    return items


def window_value(spec: FigureSpec, items: Sequence[Item], days: int) -> float | None:
    """The figure over these items (of `days` computed days): none without items (durations, shares)."""
    if spec.kind == "per_day":
        return len(items) / days if days else None
    if not items:
        return None
    values = [value for _, value in items]
    return float(median(values)) if spec.kind == "median" else sum(values) / len(values)


class _Model:
    """Per recent day, the log-likelihood ratio of its samples (shifted against as in the baseline)."""

    baseline: float
    scale: float

    def day_ratio(self, day: dt.date, items: Sequence[Item]) -> float:
        raise NotImplementedError


class _Durations(_Model):
    def __init__(self, spec: FigureSpec, base: dict[dt.date, Sequence[Item]]) -> None:
        by_weekday: dict[int, list[float]] = defaultdict(list)
        for day, items in base.items():
            by_weekday[day.weekday()].extend(_log(value) for _, value in items)
        logs = [value for values in by_weekday.values() for value in values]
        overall = median(logs)
        self.centres = {
            weekday: median(values) if len(values) >= MIN_WEEKDAY_SAMPLES else overall
            for weekday, values in by_weekday.items()
        }
        residuals = [value - self.centres[weekday] for weekday, values in by_weekday.items() for value in values]
        self.spread = max(MAD_TO_SD * median(abs(value) for value in residuals), MIN_SPREAD)
        self.overall = overall
        # In deviations, at most MAX_DESIGN_DEVIATIONS: a steady baseline (tiny spread) would otherwise put the design
        # change beyond the cap of the standardised samples, and a real change would count against itself.
        self.delta = min(math.log(spec.shift) / self.spread, MAX_DESIGN_DEVIATIONS) * (1 if spec.bad == "up" else -1)
        self.baseline = float(median(value for items in base.values() for _, value in items))
        self.scale = self.baseline * (spec.shift - 1)

    def day_ratio(self, day: dt.date, items: Sequence[Item]) -> float:
        centre = self.centres.get(day.weekday(), self.overall)
        total = 0.0
        for _, value in items:
            standard = max(-STANDARD_CAP, min(STANDARD_CAP, (_log(value) - centre) / self.spread))
            total += self.delta * (standard - self.delta / 2)
        return total


class _Shares(_Model):
    def __init__(self, spec: FigureSpec, base: dict[dt.date, Sequence[Item]]) -> None:
        up = spec.bad == "up"
        samples = [value for items in base.values() for _, value in items]
        bad = sum(1 for value in samples if (value >= 0.5) == up)
        rate = (bad + 0.5) / (len(samples) + 1)
        shifted = min(max(rate * spec.shift, rate + spec.floor), 0.99)
        self.up = up
        self.if_bad = math.log(shifted / rate)
        self.if_good = math.log((1 - shifted) / (1 - rate))
        self.baseline = sum(samples) / len(samples)
        self.scale = shifted - rate

    def day_ratio(self, day: dt.date, items: Sequence[Item]) -> float:
        bad = sum(1 for _, value in items if (value >= 0.5) == self.up)
        return bad * self.if_bad + (len(items) - bad) * self.if_good


class _Counts(_Model):
    def __init__(self, spec: FigureSpec, base: dict[dt.date, Sequence[Item]]) -> None:
        counts: dict[int, list[int]] = defaultdict(list)
        for day, items in base.items():
            counts[day.weekday()].append(len(items))
        self.rates = {weekday: max(sum(found) / len(found), MIN_RATE_PER_DAY) for weekday, found in counts.items()}
        self.shift = spec.shift
        self.baseline = sum(len(items) for items in base.values()) / len(base)
        self.scale = self.baseline * abs(spec.shift - 1)

    def day_ratio(self, day: dt.date, items: Sequence[Item]) -> float:
        rate = self.rates.get(day.weekday(), MIN_RATE_PER_DAY)
        return len(items) * math.log(self.shift) - rate * (self.shift - 1)


def _log(hours: float) -> float:
    return math.log(max(hours, 0.0) + LOG_OFFSET_HOURS)


MODELS: dict[str, type[_Model]] = {"median": _Durations, "share": _Shares, "per_day": _Counts}


def assess(spec: FigureSpec, series: Series, *, last_day: dt.date, sensitivity: Sensitivity) -> Assessment:
    """Judge the figure's recent days up to `last_day` against its baseline (see the module's docstring)."""
    first_recent = last_day - dt.timedelta(days=spec.recent_days - 1)
    base = {
        day: series[day]
        for back in range(1, sensitivity.baseline_weeks * 7 + 1)
        if (day := first_recent - dt.timedelta(days=back)) in series
    }
    weeks = len({((first_recent - day).days - 1) // 7 for day in base})
    base_samples = sum(len(items) for items in base.values())
    if weeks < MIN_BASELINE_WEEKS or (spec.kind != "per_day" and base_samples < max(4 * spec.min_samples, 1)):
        return Assessment(spec, NOT_ENOUGH_HISTORY, (), _lacking(spec, weeks, base_samples))
    model = MODELS[spec.kind](spec, base)  # type: ignore[call-arg]
    threshold = sensitivity.threshold(spec)
    total, start, sums = 0.0, None, {}
    for offset in range(spec.recent_days):
        day = first_recent + dt.timedelta(days=offset)
        if day not in series:
            continue
        total += model.day_ratio(day, series[day])
        if total <= 0:
            total, start = 0.0, None
        elif start is None:
            start = day
        sums[day] = total
    excursion = start is not None
    if start is None:
        start = max(first_recent, last_day - dt.timedelta(days=RECENT_SHOWN_DAYS - 1))
    days = [day for day in _each_day(start, last_day) if day in series]
    checks = tuple(
        DayCheck(
            day,
            _rounded(window_value(spec, series[day], 1)),
            len(series[day]),
            round(model.baseline, 4),
            round(model.scale, 4),
            _in_deviations(sums[day], sensitivity, threshold),
            sums[day] >= threshold,
        )  # fmt: skip
        for day in reversed(days)
    )
    value = window_value(spec, [item for day in days for item in series[day]], len(days))
    # Recovered: the last `sustained_days` days with samples, alone, speak for the baseline (a large excursion's sum
    # takes weeks to fall back; they do not).
    counts = spec.kind == "per_day"  # a day without deployments is a sample too
    latest_days = [day for day in reversed(sorted(sums)) if series[day] or counts][: sensitivity.sustained_days]
    ratios = [model.day_ratio(day, series[day]) for day in latest_days]
    enough = len(latest_days) == sensitivity.sustained_days
    recovered = enough and sum(ratios) <= -threshold * RECOVERED_BELOW
    # Sustained: each of those days leans the bad way on its own (one bad day on a tilted week is not three).
    # (Counts: together, since a single day's count says little.)
    sustained = enough and (sum(ratios) > 0 if counts else all(ratio > 0 for ratio in ratios))
    beyond = excursion and total >= threshold and sustained
    if beyond and not recovered:
        state = DRIFTING
    elif total < threshold * NORMAL_BELOW or recovered:
        state = NORMAL
    else:
        state = UNSETTLED
    if recovered:  # the figure now: the days that recovered
        value = window_value(spec, [item for day in latest_days for item in series[day]], len(latest_days))
    return Assessment(spec, state, checks, value=_rounded(value))


def _in_deviations(total: float, sensitivity: Sensitivity, threshold: float) -> float:
    """The sum in deviations: the threshold reads as the sensitivity's deviations, a sum of zero as zero."""
    return round(sensitivity.deviations * math.sqrt(max(total, 0.0) / threshold), 2)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _each_day(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _lacking(spec: FigureSpec, weeks: int, samples: int) -> str:
    needs = "" if spec.kind == "per_day" else f" and {4 * spec.min_samples} samples (has {samples})"
    return f"not enough history: the baseline needs {MIN_BASELINE_WEEKS} weeks of computed days (has {weeks}){needs}"


def evidence(spec: FigureSpec, series: Series, assessment: Assessment) -> list[Item]:
    """What the excursion is made of on the bad side: the slow pull requests (those above the baseline), the
    unreviewed or rubber-stamped ones, the failed deployments; for a drop in deployments, those there were. Worst
    first, at most EVIDENCE_SHOWN, one item per id."""
    latest = assessment.latest
    if latest is None:
        return []
    items: dict[int, float] = {}
    for check in assessment.checks:
        for item_id, value in series.get(check.day, ()):
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
