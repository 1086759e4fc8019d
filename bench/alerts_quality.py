"""Detection quality of the alerts (telemetry.drift, the code the alerting run uses), measured on a synthetic year.

    .venv/bin/python bench/alerts_quality.py [--teams 24] [--seeds 4 5 6 7] [--all-sensitivities]

The year is made here by a small generator of daily samples (not org_year, whose drifts are not of known effect on
the daily figures): each team merges a Poisson number of pull requests a day (few at weekends), with a lognormal
pickup time (slower on Fridays), a probability of merging unreviewed, and a Poisson number of deployments on
weekdays. Half the teams get one drift each, of known size and start date, in one of three figures: pickup time
(× 1.5 or × 2), unreviewed merges (× 3) or deployments (× 0.5); the other half none. The year is replayed day by day
as the beat job would run: an alert opens on a drifting assessment when none is open for that team and figure and
closes when the figure is normal again.

Per seed and sensitivity (deviations, sustained days; the default only unless --all-sensitivities), it prints: the
injected drifts detected (recall), the alerts that match a drift (precision: an alert is a true one when it opens
within 28 days after a drift of its team and figure started), the median and 90th percentile detection delay in
days, the false alerts per team and year, and the delay of each pickup ×2 drift; then the mean and spread
(population standard deviation) over the seeds. The thresholds were tuned on seeds 1-3: report on others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.drift import DRIFTING, FIGURES_BY_NAME, NORMAL, Sensitivity, assess  # noqa: E402

START = dt.date(2025, 1, 6)  # a Monday
DAYS = 364
WARMUP_DAYS = 70  # the baseline needs weeks of history before anything is judged
MATCH_DAYS = 28
FIGURES = ("pickup_time", "unreviewed_share", "deployment_frequency")
DRIFTS = (("pickup_time", 2.0), ("pickup_time", 1.5), ("unreviewed_share", 3.0), ("deployment_frequency", 0.5))
PICKUP_SPREAD = 0.8  # the standard deviation of a team's log pickup hours
FRIDAY_SLOWER = 1.5
ORACLE_THRESHOLDS = (4.0, 6.0, 7.0, 8.0, 9.0, 10.0)
DEFAULT = Sensitivity()
SENSITIVITIES = (
    Sensitivity(2.5, 2),
    Sensitivity(3.0, 2),
    Sensitivity(3.0, 3),
    Sensitivity(4.0, 3),
    Sensitivity(3.0, 5),
)


@dataclass(frozen=True)
class InjectedDrift:
    team: int
    figure: str
    factor: float
    starts: dt.date


Year = tuple[dict[tuple[int, str], dict[dt.date, list]], list[InjectedDrift], dict[int, float]]


def generate(teams: int, seed: int) -> Year:
    """The samples of every team and figure, the drifts injected, and each team's true median pickup (hours)."""
    rng = random.Random(seed)
    drifts = []
    for team in range(0, teams, 2):
        figure, factor = DRIFTS[(team // 2) % len(DRIFTS)]
        starts = START + dt.timedelta(days=rng.randrange(WARMUP_DAYS + 14, DAYS - 35))
        drifts.append(InjectedDrift(team, figure, factor, starts))
    by_team = {drift.team: drift for drift in drifts}
    series: dict[tuple[int, str], dict[dt.date, list]] = {(t, f): {} for t in range(teams) for f in FIGURES}
    next_id = 0
    pickup_medians = {}
    for team in range(teams):
        volume = rng.uniform(4, 12)
        pickup_median = pickup_medians[team] = rng.uniform(1.5, 8)
        unreviewed = rng.uniform(0.02, 0.08)
        deploys = rng.uniform(1.5, 5)
        drift = by_team.get(team)
        for offset in range(DAYS):
            day = START + dt.timedelta(days=offset)
            factor = {drift.figure: drift.factor} if drift and day >= drift.starts else {}
            weekend = day.weekday() >= 5
            merged = _poisson(rng, volume * (0.08 if weekend else 1))
            slow_friday = FRIDAY_SLOWER if day.weekday() == 4 else 1.0
            pickups, unreviewed_items = [], []
            for _ in range(merged):
                next_id += 1
                hours = (
                    pickup_median * slow_friday * factor.get("pickup_time", 1) * math.exp(rng.gauss(0, PICKUP_SPREAD))
                )
                pickups.append((next_id, hours))
                p = min(1.0, unreviewed * factor.get("unreviewed_share", 1))
                unreviewed_items.append((next_id, 1.0 if rng.random() < p else 0.0))
            deployments = 0 if weekend else _poisson(rng, deploys * factor.get("deployment_frequency", 1))
            series[(team, "pickup_time")][day] = pickups
            series[(team, "unreviewed_share")][day] = unreviewed_items
            series[(team, "deployment_frequency")][day] = [(next_id + n, 1.0) for n in range(deployments)]
            next_id += deployments
    return series, drifts, pickup_medians


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def replay(series: dict, sensitivity: Sensitivity) -> list[tuple[int, str, dt.date]]:
    """Every alert opened over the year: (team, figure, day it opened)."""
    opened = []
    for (team, figure), samples in series.items():
        spec = FIGURES_BY_NAME[figure]
        is_open = False
        for offset in range(WARMUP_DAYS, DAYS):
            day = START + dt.timedelta(days=offset)
            state = assess(spec, samples, last_day=day, sensitivity=sensitivity).state
            if not is_open and state == DRIFTING:
                is_open = True
                opened.append((team, figure, day))
            elif is_open and state == NORMAL:
                is_open = False
    return opened


def score(opened: list[tuple[int, str, dt.date]], drifts: list[InjectedDrift], teams: int) -> dict[str, object]:
    delays, true_alerts = {}, 0
    for team, figure, day in opened:
        match = next(
            (d for d in drifts if d.team == team and d.figure == figure and 0 <= (day - d.starts).days <= MATCH_DAYS),
            None,
        )
        if match is not None:
            true_alerts += 1
            delays.setdefault(match, (day - match.starts).days)
    found = sorted(delays.values())
    by_kind = {}
    for figure, factor in DRIFTS:
        kind = [d for d in drifts if d.figure == figure and d.factor == factor]
        by_kind[f"{figure}×{factor}"] = f"{sum(d in delays for d in kind)}/{len(kind)}"
    return {
        "alerts": len(opened),
        "precision": true_alerts / len(opened) if opened else None,
        "recall": len(found) / len(drifts) if drifts else None,
        "delay_median": statistics.median(found) if found else None,
        "delay_p90": found[min(len(found) - 1, math.ceil(0.9 * len(found)) - 1)] if found else None,
        "false_per_team_year": (len(opened) - true_alerts) / teams,
        "by_kind": by_kind,
    }


def pickup_doubled_delays(opened: list[tuple[int, str, dt.date]], drifts: list[InjectedDrift]) -> list[int | None]:
    found = []
    for drift in drifts:
        if drift.figure == "pickup_time" and drift.factor == 2.0:
            delays = [
                (day - drift.starts).days
                for team, figure, day in opened
                if team == drift.team and figure == drift.figure and 0 <= (day - drift.starts).days <= MATCH_DAYS
            ]
            found.append(min(delays) if delays else None)
    return found


def _known_ratio(median_hours: float, day: dt.date, hours: float) -> float:
    """One pickup's log-likelihood ratio, "twice the team's true median" against "as usual" (normal in log hours)."""
    usual = median_hours * (FRIDAY_SLOWER if day.weekday() == 4 else 1.0)
    design = math.log(2.0) / PICKUP_SPREAD
    return design * (math.log(hours / usual) / PICKUP_SPREAD - design / 2)


def oracle(seeds: list[int], teams: int) -> None:
    """The best any detector could do on this year's pickups: a CUSUM that knows each team's exact model (its true
    median, the slow Friday, the spread) and the exact ×2 alternative, so that each pull request adds the true
    log-likelihood ratio (with known parameters and a known shift the CUSUM is the optimal detector: no rule finds
    the change sooner at the same rate of false alarms). Per threshold: false alarms per team-year on the days
    without a pickup drift (restarting after each), and the ×2 drifts whose sum reaches it within 7 days."""
    quiet_years, false_alarms = 0.0, dict.fromkeys(ORACLE_THRESHOLDS, 0)
    doubled, in_a_week = 0, dict.fromkeys(ORACLE_THRESHOLDS, 0)
    for seed in seeds:
        series, drifts, medians = generate(teams, seed)
        pickup_drifts = {drift.team: drift for drift in drifts if drift.figure == "pickup_time"}

        for team in range(teams):
            samples, drift = series[(team, "pickup_time")], pickup_drifts.get(team)
            quiet = [day for day in sorted(samples) if day >= START + dt.timedelta(days=WARMUP_DAYS)]
            quiet = [day for day in quiet if drift is None or day < drift.starts]
            quiet_years += len(quiet) / DAYS
            for threshold in ORACLE_THRESHOLDS:
                total = 0.0
                for day in quiet:
                    for _, hours in samples[day]:
                        total = max(0.0, total + _known_ratio(medians[team], day, hours))
                    if total >= threshold:
                        false_alarms[threshold] += 1
                        total = 0.0
            if drift is not None and drift.factor == 2.0:
                doubled += 1
                total, highest = 0.0, 0.0
                for offset in range(8):  # found on day 7 at the latest: "within 7 days", as the delays count
                    day = drift.starts + dt.timedelta(days=offset)
                    for _, hours in samples.get(day, ()):
                        total = max(0.0, total + _known_ratio(medians[team], day, hours))
                    highest = max(highest, total)
                for threshold in ORACLE_THRESHOLDS:
                    in_a_week[threshold] += highest >= threshold
    print(f"oracle (known model, pickup only) over seeds {seeds}:")
    for threshold in ORACLE_THRESHOLDS:
        print(
            f"  threshold {threshold:>4}: false alarms {false_alarms[threshold] / quiet_years:.3f} per team-year, "
            f"pickup ×2 found within 7 days {in_a_week[threshold]}/{doubled}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teams", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[4, 5, 6, 7])
    parser.add_argument("--all-sensitivities", action="store_true")
    parser.add_argument("--oracle", action="store_true", help="print the known-model bound for pickup and stop")
    args = parser.parse_args()
    if args.oracle:
        oracle(args.seeds, args.teams)
        return
    sensitivities = SENSITIVITIES if args.all_sensitivities else (DEFAULT,)
    drifts_per_year = len(range(0, args.teams, 2))
    print(f"{args.teams} teams, {drifts_per_year} injected drifts, {len(FIGURES)} figures each, {DAYS} days")
    print(f"{'seed':>4} {'deviations':>10} {'days':>5} {'alerts':>7} {'precision':>9} {'recall':>7} {'delay med':>9} "
          f"{'p90':>4} {'false/team/yr':>13}  pickup×2 delays  detected by kind")  # fmt: skip
    results: dict[Sensitivity, list[dict[str, object]]] = {sensitivity: [] for sensitivity in sensitivities}
    for seed in args.seeds:
        series, drifts, _ = generate(args.teams, seed)
        for sensitivity in sensitivities:
            opened = replay(series, sensitivity)
            result = score(opened, drifts, args.teams)
            results[sensitivity].append(result)
            precision = "—" if result["precision"] is None else f"{result['precision']:.2f}"
            recall = "—" if result["recall"] is None else f"{result['recall']:.2f}"
            kinds = " ".join(f"{kind} {found}" for kind, found in result["by_kind"].items())  # type: ignore[attr-defined]
            print(
                f"{seed:>4} {sensitivity.deviations:>10} {sensitivity.sustained_days:>5} {result['alerts']:>7} "
                f"{precision:>9} {recall:>7} {result['delay_median']!s:>9} {result['delay_p90']!s:>4} "
                f"{result['false_per_team_year']:>13.2f}  {pickup_doubled_delays(opened, drifts)!s:>15}  {kinds}",
                flush=True,
            )
    for sensitivity, rows in results.items():
        spread = {
            name: (statistics.mean(values), statistics.pstdev(values))
            for name in ("precision", "recall", "delay_median", "false_per_team_year")
            if (values := [float(row[name]) for row in rows if row[name] is not None])  # type: ignore[arg-type]
        }
        print(
            f"mean ± sd over seeds {args.seeds} at {sensitivity.deviations}/{sensitivity.sustained_days}: "
            + ", ".join(f"{name} {mean:.2f} ± {sd:.2f}" for name, (mean, sd) in spread.items())
        )


if __name__ == "__main__":
    main()
