"""Alerts on a team's own telemetry: one run (a beat job) judges every team's figures against their own baselines,
raises an alert for a sustained departure, closes the alerts whose figure is back, and tells the team's chat.

A run is bounded whatever the history's size: the days not yet stored are computed in bulk from the team page's
selectors (yesterday, after midnight; a new install fills at most `BACKFILL_DAYS_PER_RUN` days a run, meanwhile the
page says "not enough history"), each recent day is computed once more after `SETTLE_AFTER` (late reviews, a cause
confirmed the next day; facts changed later than that stay out of the baseline), and the assessment reads the stored
samples (`FigureDay`), one query for every team. Running it twice changes nothing: an
open alert per team and figure is a constraint, and a figure already alerted on stays one alert until it recovers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Count, Min
from django.utils import timezone

from reviews.models import ApiToken, Person, Team
from reviews.services.audit import SYSTEM, Actor, audit_event_record
from telemetry.daily_figures import daily_samples, local_day, local_midnight, teams_with_services
from telemetry.drift import (
    DRIFTING,
    FIGURES,
    FIGURES_BY_NAME,
    NORMAL,
    Assessment,
    FigureSpec,
    Item,
    Sensitivity,
    assess,
    evidence,
)
from telemetry.models import AlertClosedNotice, AlertSettings, FigureDay, TeamAlert
from telemetry.services.chat import ChatKind, chat_schedule
from telemetry.services.enqueue import alert_chat_enqueue, alert_closed_chat_enqueue

SETTLE_AFTER = dt.timedelta(hours=24)
BACKFILL_DAYS_PER_RUN = 14
MAX_RANGES_PER_RUN = 2
PRODUCTION_FIGURES = frozenset({"change_failure_rate", "deployment_frequency", "time_to_restore"})
DEFAULT_SETTINGS = AlertSettings(deviations=3.0, sustained_days=3, baseline_weeks=8, enabled=True)


class AlertRefused(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class AlertRun:
    last_day: dt.date
    days_computed: list[dt.date] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    assessed: int = 0


def sensitivity_of(settings: AlertSettings) -> Sensitivity:
    return Sensitivity(
        deviations=settings.deviations,
        sustained_days=settings.sustained_days,
        baseline_weeks=settings.baseline_weeks,
    )


def team_settings(team_ids: Iterable[int]) -> dict[int, AlertSettings]:
    found = {row.team_id: row for row in AlertSettings.objects.filter(team_id__in=list(team_ids))}
    return {team_id: found.get(team_id, DEFAULT_SETTINGS) for team_id in team_ids}


def history_start(last_day: dt.date, settings: Iterable[AlertSettings]) -> dt.date:
    days = max(sensitivity_of(row).history_days(spec) for row in settings for spec in FIGURES)
    return last_day - dt.timedelta(days=days - 1)


def alerts_run(*, now: dt.datetime | None = None) -> AlertRun:
    """Judge every active team's figures up to yesterday (the last complete local day); open and close alerts."""
    now = now or timezone.now()
    last_day = local_day(now) - dt.timedelta(days=1)
    run = AlertRun(last_day=last_day)
    team_ids = list(Team.objects.filter(archived=False).order_by("pk").values_list("pk", flat=True))
    if not team_ids:
        return run
    settings = team_settings(team_ids)
    first_day = history_start(last_day, settings.values())
    run.days_computed = figure_days_refresh(team_ids=team_ids, first_day=first_day, last_day=last_day, now=now)
    series = stored_series(team_ids=team_ids, first_day=first_day)
    open_alerts = {(a.team_id, a.figure): a for a in TeamAlert.objects.filter(team_id__in=team_ids, closed_at=None)}
    producing = teams_with_services(team_ids)
    for team_id in team_ids:
        for spec in FIGURES:
            if spec.name in PRODUCTION_FIGURES and team_id not in producing:
                continue
            found = series.get((team_id, spec.name), {})
            assessment = assess(spec, found, last_day=last_day, sensitivity=sensitivity_of(settings[team_id]))
            run.assessed += 1
            current = open_alerts.get((team_id, spec.name))
            if current is None and assessment.state == DRIFTING and settings[team_id].enabled:
                alert = _open(team_id, settings[team_id], assessment, evidence(spec, found, assessment))
                if alert is not None:
                    run.opened.append(alert.pk)
            elif current is not None and assessment.state == NORMAL:
                _close(current, assessment, now)
                run.closed.append(current.pk)
    return run


def figure_days_refresh(
    *, team_ids: list[int], first_day: dt.date, last_day: dt.date, now: dt.datetime
) -> list[dt.date]:
    """Compute and store the days since `first_day` that are missing (the newest BACKFILL_DAYS_PER_RUN of them), and
    once more each recent day first computed before SETTLE_AFTER had passed since its end (late reviews, a cause
    confirmed the next day). Every team and figure is stored, empty too, so a day is known to be computed. Most hourly
    runs compute nothing; the first after midnight computes yesterday."""
    expected = len(team_ids) * len(FIGURES)
    stored = {
        day: (rows, first)
        for day, rows, first in FigureDay.objects.filter(team_id__in=team_ids, day__gte=first_day)
        .values("day")
        .annotate(rows=Count("pk"), first=Min("computed_at"))
        .values_list("day", "rows", "first")
    }
    missing, unsettled = [], []
    for back in range((last_day - first_day).days + 1):
        day = last_day - dt.timedelta(days=back)
        rows, first = stored.get(day, (0, None))
        settled_at = local_midnight(day + dt.timedelta(days=1)) + SETTLE_AFTER
        if rows < expected:
            missing.append(day)
        elif first is not None and first < settled_at <= now:
            unsettled.append(day)
    days = sorted(set(missing[:BACKFILL_DAYS_PER_RUN]) | set(unsettled))
    for start, end in _newest_ranges(days, MAX_RANGES_PER_RUN):
        _store_days(team_ids, start, end, now)
    return [day for start, end in _newest_ranges(days, MAX_RANGES_PER_RUN) for day in _each_day(start, end)]


def _newest_ranges(days: list[dt.date], limit: int) -> list[tuple[dt.date, dt.date]]:
    """Contiguous runs of these (sorted) days, the newest `limit` of them: each costs a fixed number of queries."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in days:
        if ranges and ranges[-1][1] + dt.timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges[-limit:]


def _each_day(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _store_days(team_ids: list[int], start: dt.date, end: dt.date, now: dt.datetime) -> None:
    samples = daily_samples(team_ids=team_ids, first_day=start, last_day=end)
    rows = [
        FigureDay(
            team_id=team_id,
            figure=spec.name,
            day=day,
            items=samples.get((team_id, spec.name), {}).get(day, []),
            computed_at=now,
        )
        for day in _each_day(start, end)
        for team_id in team_ids
        for spec in FIGURES
    ]
    FigureDay.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["team", "figure", "day"],
        update_fields=["items", "computed_at"],
    )


def stored_series(*, team_ids: list[int], first_day: dt.date) -> dict[tuple[int, str], dict[dt.date, list[Item]]]:
    series: dict[tuple[int, str], dict[dt.date, list[Item]]] = defaultdict(dict)
    for team_id, figure, day, items in FigureDay.objects.filter(team_id__in=team_ids, day__gte=first_day).values_list(
        "team_id", "figure", "day", "items"
    ):
        series[(team_id, figure)][day] = items  # [id, value] pairs as stored: read as they are (a run reads many)
    return series


def _open(team_id: int, settings: AlertSettings, assessment: Assessment, found: list[Item]) -> TeamAlert | None:
    spec, latest = assessment.figure, assessment.latest
    if latest is None or assessment.value is None:
        return None  # a drifting assessment has its checks: nothing to raise without them
    try:
        with transaction.atomic():
            alert = TeamAlert.objects.create(
                team_id=team_id,
                figure=spec.name,
                direction=spec.bad,
                first_day=assessment.checks[-1].day,  # the excursion's first day
                last_day=latest.day,
                value=assessment.value,
                baseline=latest.baseline,
                scale=latest.scale,
                departure=latest.departure,
                samples=latest.samples,
                deviations=settings.deviations,
                sustained_days=settings.sustained_days,
                days=[
                    {
                        "day": check.day.isoformat(),
                        "value": check.value,
                        "baseline": check.baseline,
                        "scale": check.scale,
                        "departure": check.departure,
                        "samples": check.samples,
                    }
                    for check in assessment.checks
                ],
                evidence_kind=spec.evidence,
                evidence=[[item_id, value] for item_id, value in found],
            )
            team = Team.objects.get(pk=team_id)
            if chat_schedule(row=alert, team=team):
                alert_chat_enqueue(alert_id=alert.pk)
    except IntegrityError:
        return None  # another run opened it a moment ago: one open alert per team and figure
    return alert


def _close(alert: TeamAlert, assessment: Assessment, now: dt.datetime) -> None:
    """Close the alert on the record and owe the team's chat one notice of it (made in the same transaction: a run
    that closes it twice, or two runs at once, make one)."""
    value = assessment.value
    with transaction.atomic():
        closed = TeamAlert.objects.filter(pk=alert.pk, closed_at=None).update(
            closed_at=now,
            recovered=value is not None and _within(alert, value),
            closing_value=value,
        )
        if not closed:
            return  # another run closed it a moment ago
        notice = AlertClosedNotice.objects.create(alert=alert)
        if chat_schedule(row=notice, team=Team.objects.get(pk=alert.team_id)):
            alert_closed_chat_enqueue(notice_id=notice.pk)


def _within(alert: TeamAlert, value: float) -> bool:
    """Back near the baseline the alert was raised against: nearer to it than to the value raised (else the baseline
    moved: the change lasted and is the new normal)."""
    moved = (value - alert.baseline) * (1 if alert.direction == "up" else -1)
    raised = (alert.value - alert.baseline) * (1 if alert.direction == "up" else -1)
    return moved < raised / 2


def alert_acknowledge(
    *, alert: TeamAlert, person: Person | None, token: ApiToken | None, actor: Actor = SYSTEM
) -> bool:
    """A lead (or a token of the team) acknowledges an alert: who and when, on the record. Acknowledging it again
    changes nothing (returns False)."""
    with transaction.atomic():
        locked = TeamAlert.objects.select_for_update().get(pk=alert.pk)
        if locked.acknowledged_at is not None:
            return False
        if person is None and token is None:
            raise AlertRefused("An acknowledgement names who gives it.")
        now = timezone.now()
        TeamAlert.objects.filter(pk=alert.pk, acknowledged_at=None).update(
            acknowledged_at=now, acknowledged_by=person, acknowledged_by_token=token
        )
        audit_event_record(
            actor=actor,
            action="alert.acknowledge",
            target=locked,
            team=locked.team,
            changes={"acknowledged_at": {"before": None, "after": now}},
        )
    return True


def figure_spec(name: str) -> FigureSpec:
    return FIGURES_BY_NAME[name]


CHAT_EVIDENCE_NAMED = 3  # the worst of the evidence, named in the chat; the rest is on the team page


def alert_text(alert: TeamAlert) -> str:
    from telemetry.alert_selectors import alerts_evidence  # it reads this module's formatting

    spec = figure_spec(alert.figure)
    days = len(alert.days)
    moved = "up" if alert.direction == "up" else "down"
    worst = alerts_evidence([alert])[alert.pk][:CHAT_EVIDENCE_NAMED]
    named = "; ".join(f"{row.label} ({format_value(spec, row.value)})" for row in worst)
    return (
        f":warning: {alert.team.name}: {spec.label} went {moved} for {days} day{'s' if days != 1 else ''} "
        f"(since {alert.first_day:%a %d %b}): {format_value(spec, alert.value)} against a usual "
        f"{format_value(spec, alert.baseline)} ({alert.departure:+.1f} deviations). "
        + (f"Worst: {named}. " if named else "")
        + f"{len(alert.evidence)} {spec.evidence.replace('_', ' ')}s behind it are on the team page."
    )


def format_value(spec: FigureSpec, value: float | None) -> str:
    if value is None:
        return "—"
    if spec.kind == "share":
        return f"{value * 100:.0f}%"
    return f"{value:.1f}{' ' if spec.unit == 'h' else ''}{spec.unit}"


ALERT_CHAT = ChatKind(
    model=TeamAlert,
    related=("team",),
    team_of=lambda alert: alert.team,
    text_of=alert_text,
    not_owed=lambda alert: None,
)


def alert_closed_text(notice: AlertClosedNotice) -> str:
    alert = notice.alert
    spec = figure_spec(alert.figure)
    since = f"raised {alert.opened_at:%a %d %b}, since {alert.first_day:%a %d %b}"
    if alert.recovered:
        return (
            f":white_check_mark: {alert.team.name}: {spec.label} has recovered: "
            f"{format_value(spec, alert.closing_value)} against a usual {format_value(spec, alert.baseline)} "
            f"(the alert {since}, is closed)."
        )
    return (
        f":information_source: {alert.team.name}: the {spec.label.lower()} alert ({since}) is closed: "
        f"{format_value(spec, alert.closing_value)} has lasted long enough to be the team's new usual."
    )


ALERT_CLOSED_CHAT = ChatKind(
    model=AlertClosedNotice,
    related=("alert__team",),
    team_of=lambda notice: notice.alert.team,
    text_of=alert_closed_text,
    not_owed=lambda notice: None,
)
