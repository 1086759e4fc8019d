"""How suspect a shipped pull request is for an incident: a score and its reasons in words.

Pure: facts in, a ranking out; no Django. The same facts always give the same ranking (ties broken by pull
request id). The score is the sum of the points below, never below zero; every fact that moved the score is a
reason, strongest first.

| factor | points |
|---|---|
| recency | up to 30: 30 × (1 − time from its deployment's finish to the incident's start ÷ the window) |
| last deployment | 5 when its deployment was the service's last one before the incident |
| size | up to 20: 20 × log10(1 + changed lines) ÷ 3 (1,000 lines and more: 20); 5 when unknown |
| no approval | 20 when no approval counted under its policy (METRICS.md) |
| approvals | −8 for two or more approvals that counted |
| silent approval | 5 when approved without a review comment, on over 50 changed lines |
| discussion | −4 for three or more review comments |
| rubber stamp | 10 when an approval that counted was a rubber stamp (METRICS.md; `reviews.selectors.review_facts`) |
| self-merge | 5 when merged by its author |
| override | 15 when merged through a policy override |
| violation | 15 when merged while its policy was not satisfied |
| paired | −10 when written in a pair (co-authored commits, or a pairing session with its author) |
| confirmed files | 15, +5 per further file (at most 25): files the confirmed cause of an earlier incident changed |
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

RECENCY_POINTS = 30.0
LAST_DEPLOYMENT_POINTS = 5.0
SIZE_POINTS = 20.0
UNKNOWN_SIZE_POINTS = 5.0
NO_APPROVAL_POINTS = 20.0
TWO_APPROVALS_POINTS = -8.0
SILENT_APPROVAL_POINTS = 5.0
DISCUSSION_POINTS = -4.0
RUBBER_STAMP_POINTS = 10.0
SELF_MERGE_POINTS = 5.0
OVERRIDE_POINTS = 15.0
VIOLATION_POINTS = 15.0
PAIRED_POINTS = -10.0
CONFIRMED_FILE_POINTS = 15.0
CONFIRMED_FILE_EXTRA = 5.0
CONFIRMED_FILES_MAX = 25.0
SIGNIFICANT_LINES = 50


@dataclass(frozen=True)
class ConfirmedFile:
    path: str
    incident_title: str
    incident_started_at: dt.datetime


@dataclass(frozen=True)
class ChangeFacts:
    """What is known of one pull request shipped before an incident."""

    pull_request_id: int
    deployment_id: int
    deployed_at: dt.datetime
    last_deployment: bool
    changed_lines: int | None
    changed_files: int | None
    approvals: int
    review_comments: int
    # From the last push to the first approval that was a rubber stamp (METRICS.md); None when none was.
    rubber_stamp_after: dt.timedelta | None
    self_merged: bool
    overrides: tuple[str, ...] = ()  # who overrode, and why, in words
    violation: str = ""  # the policy outcome it was merged with, when it was merged unsatisfied
    paired_with: tuple[str, ...] = ()
    confirmed_files: tuple[ConfirmedFile, ...] = ()


@dataclass(frozen=True)
class Reason:
    factor: str
    points: float
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"factor": self.factor, "points": self.points, "text": self.text}


@dataclass(frozen=True)
class RankedChange:
    pull_request_id: int
    deployment_id: int
    score: float
    rank: int
    reasons: tuple[Reason, ...]


def rank_changes(
    facts: Sequence[ChangeFacts], *, incident_started_at: dt.datetime, window: dt.timedelta
) -> list[RankedChange]:
    scored = [(change, *score_change(change, incident_started_at, window)) for change in facts]
    scored.sort(key=lambda item: (-item[1], item[0].pull_request_id))
    return [
        RankedChange(change.pull_request_id, change.deployment_id, score, rank, tuple(reasons))
        for rank, (change, score, reasons) in enumerate(scored, start=1)
    ]


def score_change(
    change: ChangeFacts, incident_started_at: dt.datetime, window: dt.timedelta
) -> tuple[float, list[Reason]]:
    reasons = [
        *_timing(change, incident_started_at, window),
        *_size(change),
        *_review(change),
        *_policy(change),
        *_history(change),
    ]
    reasons.sort(key=lambda reason: (-abs(reason.points), reason.factor))
    score = round(max(0.0, sum(reason.points for reason in reasons)), 2)
    return score, reasons


def _timing(change: ChangeFacts, started_at: dt.datetime, window: dt.timedelta) -> list[Reason]:
    age = max(started_at - change.deployed_at, dt.timedelta(0))
    closeness = max(0.0, 1 - age / window) if window > dt.timedelta(0) else 0.0
    reasons = [
        Reason("recency", _points(RECENCY_POINTS * closeness), f"deployed {duration(age)} before the incident started")
    ]
    if change.last_deployment:
        reasons.append(
            Reason("last_deployment", LAST_DEPLOYMENT_POINTS, "shipped by the last deployment before the incident")
        )
    return reasons


def _size(change: ChangeFacts) -> list[Reason]:
    if change.changed_lines is None:
        return [Reason("size", UNKNOWN_SIZE_POINTS, "size unknown (its files were never synced)")]
    lines = change.changed_lines
    points = _points(min(SIZE_POINTS, SIZE_POINTS * math.log10(1 + lines) / 3))
    files = f" in {change.changed_files} files" if change.changed_files else ""
    label = "large change" if lines > 250 else "medium change" if lines > SIGNIFICANT_LINES else "small change"
    return [Reason("size", points, f"{label}: {lines:,} changed lines{files}")]


def _review(change: ChangeFacts) -> list[Reason]:
    reasons: list[Reason] = []
    lines = change.changed_lines or 0
    if change.approvals == 0:
        reasons.append(
            Reason("no_approval", NO_APPROVAL_POINTS, "merged without an approval that counted under its policy")
        )
    elif change.approvals >= 2:
        reasons.append(Reason("approvals", TWO_APPROVALS_POINTS, f"approved by {change.approvals} reviewers"))
    if change.approvals and change.review_comments == 0 and lines > SIGNIFICANT_LINES:
        reasons.append(Reason("silent_approval", SILENT_APPROVAL_POINTS, "approved without a single review comment"))
    elif change.review_comments >= 3:
        reasons.append(Reason("discussion", DISCUSSION_POINTS, f"{change.review_comments} review comments"))
    if change.rubber_stamp_after is not None and lines:
        pace = max(change.rubber_stamp_after.total_seconds(), 0) / 60 / (lines / 100)
        reasons.append(
            Reason(
                "rubber_stamp",
                RUBBER_STAMP_POINTS,
                f"approved {duration(change.rubber_stamp_after)} after the last push for {lines:,} changed "
                f"lines ({pace:.1f} min per 100 lines)",
            )
        )
    if change.self_merged:
        reasons.append(Reason("self_merge", SELF_MERGE_POINTS, "merged by its author"))
    if change.paired_with:
        reasons.append(Reason("paired", PAIRED_POINTS, f"written in a pair with {_names(change.paired_with)}"))
    return reasons


def _policy(change: ChangeFacts) -> list[Reason]:
    reasons = []
    if change.overrides:
        reasons.append(
            Reason("override", OVERRIDE_POINTS, "merged through a policy override " + "; ".join(change.overrides))
        )
    if change.violation:
        reasons.append(
            Reason(
                "violation", VIOLATION_POINTS, f"merged while its review policy was not satisfied ({change.violation})"
            )
        )
    return reasons


def _history(change: ChangeFacts) -> list[Reason]:
    if not change.confirmed_files:
        return []
    files = sorted(change.confirmed_files, key=lambda f: (f.path, f.incident_started_at, f.incident_title))
    paths = sorted({f.path for f in files})
    points = min(CONFIRMED_FILES_MAX, CONFIRMED_FILE_POINTS + CONFIRMED_FILE_EXTRA * (len(paths) - 1))
    first = files[0]
    more = f" and {len(paths) - 1} more file{'s' if len(paths) > 2 else ''}" if len(paths) > 1 else ""
    text = (
        f"touches {first.path}{more}, changed by the confirmed cause of “{first.incident_title}” "
        f"({first.incident_started_at:%Y-%m-%d})"
    )
    return [Reason("confirmed_files", points, text)]


def _points(value: float) -> float:
    return round(value, 2)


def _names(names: Sequence[str]) -> str:
    names = sorted(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def duration(span: dt.timedelta) -> str:
    """A duration the way people say it: "45 min", "2 h 10 min", "3 d 4 h"."""
    minutes = max(int(span.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
