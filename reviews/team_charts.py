"""The team page's charts, from its figures: weekly trends (with the team's working agreements as lines),
coverage and size. Weeks are labelled by their Monday; the axis names the year(s), so "2 Jan" is never ambiguous."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.safestring import SafeString

from reviews.charts import Bar, Target, bar_chart, stacked_bar
from reviews.selectors.health import SIZE_BUCKETS
from reviews.selectors.teams import TeamPage


@dataclass(frozen=True)
class ChartLinks:
    """Where each bar leads: the drill-down list of the pull requests it counts (views build the URLs)."""

    week: Callable[[str], Sequence[str]] = lambda metric: ()  # metric → one link per week
    coverage: Sequence[str] = ()  # reviewed, paired only, neither
    size: Sequence[str] = ()  # one per size bucket


def week_bars(weeks: Sequence[dict[str, object]], key: str, links: Sequence[str] = ()) -> list[Bar]:
    """One bar per week of `weeks` (as `review_health(...).weekly` gives them) with the value under `key`."""
    return [
        Bar(
            label=f"{week['week']:%-d %b}",
            value=_number(week[key]),
            partial=bool(week["partial"]),
            name=f"week of {week['week']}" + (f" ({week['days']} days in the period)" if week["partial"] else ""),
            link=links[index] if links else "",
        )
        for index, week in enumerate(weeks)
    ]


def weeks_axis(weeks: Sequence[dict[str, object]], what: str = "merge") -> str:
    years = sorted({week["week"].year for week in weeks if isinstance(week["week"], dt.date)})
    span = f"{years[0]}" if len(years) == 1 else f"{years[0]}–{years[-1]}" if years else ""
    return f"Week of {what}, starting Monday{', ' + span if span else ''}"


def team_charts(page: TeamPage, links: ChartLinks | None = None) -> dict[str, SafeString]:
    links = links or ChartLinks()
    health, team, weekly = page.health, page.team, page.health.weekly
    axis = weeks_axis(weekly)
    coverage_weeks = [
        {**week, "coverage": round(100 * week["reviewed"] / week["merged"]) if week["merged"] else None}  # type: ignore[operator]
        for week in weekly
    ]
    return {
        "weekly_chart": bar_chart(
            week_bars(weekly, "time_to_first_review", links.week("time_to_first_review")),
            title="Median time to first review per week",
            x_label=axis,
            y_label="Median time to first review",
            unit=" h",
            target=Target(team.review_within_hours, f"agreement: first review within {team.review_within_hours} h"),
        ),
        "merged_chart": bar_chart(
            week_bars(weekly, "merged", links.week("merged")),
            title="Merged pull requests per week",
            x_label=axis,
            y_label="Pull requests merged",
        ),
        "cycle_chart": bar_chart(
            week_bars(weekly, "cycle_time", links.week("cycle_time")),
            title="Median cycle time per week",
            x_label=axis,
            y_label="Median cycle time",
            unit=" h",
        ),
        "coverage_trend_chart": bar_chart(
            week_bars(coverage_weeks, "coverage", links.week("merged")),
            title="Review coverage per week",
            x_label=axis,
            y_label="Reviewed",
            unit="%",
        ),
        "coverage_chart": stacked_bar(
            [
                ("reviewed", health.coverage["reviewed"]),
                ("paired only", health.coverage["paired_only"]),
                ("neither", health.coverage["neither"]),
            ],
            title="Review coverage of merged pull requests",
            unit_words="merged pull requests",
            links=links.coverage,
        ),
        "size_chart": bar_chart(
            [
                Bar(label=name, value=count, name=_bucket_words(name), link=links.size[index] if links.size else "")
                for index, (name, count) in enumerate(health.size_buckets.items())
            ],
            title="Merged pull requests by size",
            x_label="Size (changed lines)",
            y_label="Pull requests",
            divider=Target(_bucket_position(team.max_pr_size), f"agreement: at most {team.max_pr_size} changed lines"),
        ),
    }


def _bucket_words(name: str) -> str:
    low = 0
    for bucket, limit in SIZE_BUCKETS:
        if bucket == name:
            return f"{name}: {low + 1 if low else 0}–{limit} lines" if limit != math.inf else f"{name}: over {low}"
        low = int(limit)
    return name


def _bucket_position(lines: int) -> float:
    """Where `lines` falls on the size chart, in bars from the left: inside its bucket, proportionally."""
    low = 0.0
    for index, (_, limit) in enumerate(SIZE_BUCKETS):
        if lines <= limit:
            return index + (1.0 if limit == math.inf else (lines - low) / (limit - low))
        low = limit
    return float(len(SIZE_BUCKETS))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
