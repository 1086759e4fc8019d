"""Which figures moved against the previous period beyond a threshold, and whether that is better or worse.

Thresholds and the direction of "better" for each figure live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A change smaller than this share of the previous value is noise, not a trend.
TREND_THRESHOLD = 0.2
# Below this many pull requests in either period a median moves by chance: no mark.
TREND_MIN_COUNT = 5

Better = Literal["higher", "lower"]

BETTER: dict[str, Better] = {
    "merged": "higher",
    "coverage": "higher",
    "rubber_stamps": "lower",
    "time_to_first_review": "lower",
    "pickup_time": "lower",
    "review_time": "lower",
    "time_to_approve": "lower",
    "merge_time": "lower",
    "cycle_time": "lower",
    "rework_cycles": "lower",
    "review_depth": "higher",
    "violations": "lower",
}


@dataclass(frozen=True)
class Trend:
    verdict: Literal["better", "worse"]
    arrow: str  # ▲ the figure went up, ▼ down
    percent: int

    @property
    def css(self) -> str:
        return f"trend trend-{self.verdict}"

    def __str__(self) -> str:
        return f"{self.arrow} {self.verdict} {self.percent}%"


def trend(figure: str, now: float | None, before: float | None) -> Trend | None:
    """The mark for a figure that moved by at least TREND_THRESHOLD of its previous value; None otherwise (or when
    either period has no value, or the previous one was zero: no share to speak of)."""
    if now is None or before is None or before == 0:
        return None
    change = (now - before) / abs(before)
    if abs(change) < TREND_THRESHOLD:
        return None
    went_up = change > 0
    better = went_up == (BETTER[figure] == "higher")
    return Trend("better" if better else "worse", "▲" if went_up else "▼", round(abs(change) * 100))


def trend_of_counts(figure: str, now: float | None, before: float | None, *, counts: tuple[int, int]) -> Trend | None:
    """As `trend`, for a figure computed over pull requests: none when either period has too few of them."""
    if min(counts) < TREND_MIN_COUNT:
        return None
    return trend(figure, now, before)
