"""A team's weekly digest: review health against the working agreements, pairing, DORA, incidents and their causes,
open alerts, risky deploys. Built from the same selectors as the team page, once per team and week, kept as sent
(`WeeklyDigest`), and sent to the team's chat webhook (at most once, with backoff: telemetry.services.chat) and by
e-mail (Django's e-mail backend) to the members with an address (claimed before sending: at most once).

The week is Monday to Monday in the current time zone; the digest of a week is due from `DIGEST_SEND_HOUR` on the
Monday after it. The beat job runs hourly; a team whose digest of that week is on the record is passed over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews.models import Membership, Team
from reviews.selectors.scope import Period, Scope
from reviews.selectors.teams import TeamPage, team_page
from telemetry.daily_figures import local_midnight
from telemetry.models import Incident, SuspectChange, TeamAlert, WeeklyDigest
from telemetry.selectors.deploy_risk import risky_checks
from telemetry.selectors.dora import DoraReport, team_dora
from telemetry.services.alerts import figure_spec, format_value
from telemetry.services.chat import ChatKind, chat_schedule
from telemetry.services.enqueue import digest_chat_enqueue, digest_email_enqueue

DIGEST_SEND_HOUR = 8
EMAIL_SEND_TIMEOUT = dt.timedelta(minutes=10)
INCIDENTS_SHOWN = 10


@dataclass(frozen=True)
class DigestIncident:
    title: str
    severity: str
    started_at: dt.datetime
    resolved_at: dt.datetime | None
    causes: list[str]  # confirmed causes, "owner/repo#12 “title”"


@dataclass
class Digest:
    team: Team
    since: dt.datetime
    until: dt.datetime
    page: TeamPage
    dora: DoraReport | None
    incidents: list[DigestIncident]
    open_alerts: list[TeamAlert]
    # Risky deploys (issue 18, "Risk before a deploy") are recorded by the deploy check on branch deploy18.
    # HOOK: until that record exists here, this stays None and the digest says so.
    risky_deploys: list[str] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"{self.team.name}: your week of {self.since:%d %b} in review"


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def digest_week_due(now: dt.datetime) -> dt.date:
    """The Monday of the week whose digest is due: last week's from DIGEST_SEND_HOUR on Monday, else the one before."""
    local = timezone.localtime(now)
    monday = week_start(local.date())
    if local.hour >= DIGEST_SEND_HOUR or local.date() != monday:
        return monday - dt.timedelta(days=7)
    return monday - dt.timedelta(days=14)


def digest_build(*, team: Team, since: dt.datetime, until: dt.datetime) -> Digest:
    """The digest of [since, until): what the team page shows for that period, and the open alerts."""
    page = team_page(scope=Scope(team=team, period=Period(since=since, until=until)), now=until)
    dora = team_dora(team=team, since=page.since, until=until) if team.services.exists() else None
    digest = Digest(
        team=team,
        since=page.since,
        until=until,
        page=page,
        dora=dora,
        incidents=_incidents(team, page.since, until),
        open_alerts=list(TeamAlert.objects.filter(team=team, closed_at=None).order_by("opened_at", "pk")),
        risky_deploys=risky_deploys(team=team, since=page.since, until=until),
    )
    digest.lines = digest_lines(digest)
    return digest


RISKY_DEPLOYS_SHOWN = 10


def risky_deploys(*, team: Team, since: dt.datetime, until: dt.datetime) -> list[str]:
    """The team's deploy checks of the period that answered other than "low", newest first, in words: the level,
    the decision, whether it shipped, and its first reason."""
    checks = risky_checks(team=team, since=since, until=until, limit=RISKY_DEPLOYS_SHOWN)
    lines = []
    for check in checks:
        reasons = [str(reason.get("text", "")) for reason in check.reasons if isinstance(reason, dict)]
        shipped = "deployed" if check.deployment_id else "not deployed (yet)"
        because = f": {reasons[0]}" if reasons else ""
        lines.append(
            f"{check.service} {check.environment} @ {check.sha[:8]}, {check.get_level_display().lower()} risk, "
            f"{check.get_decision_display().lower()}, {shipped}{because}"
        )
    return lines


def _incidents(team: Team, since: dt.datetime, until: dt.datetime) -> list[DigestIncident]:
    incidents = list(
        Incident.objects.filter(services__team=team, started_at__gte=since, started_at__lt=until)
        .distinct()
        .order_by("-started_at")[:INCIDENTS_SHOWN]
    )
    causes: dict[int, list[str]] = {incident.pk: [] for incident in incidents}
    for suspect in SuspectChange.objects.filter(
        incident_id__in=list(causes), verdict=SuspectChange.Verdict.CONFIRMED
    ).select_related("pull_request__repository"):
        pull_request = suspect.pull_request
        causes[suspect.incident_id].append(
            f"{pull_request.repository.full_path}#{pull_request.number} “{pull_request.title}”"
        )
    return [
        DigestIncident(i.title, i.get_severity_display(), i.started_at, i.resolved_at, causes[i.pk]) for i in incidents
    ]


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} h"


def digest_lines(digest: Digest) -> list[str]:
    """The digest in plain text, a line each: what the chat and the e-mail say."""
    page, health, agreements = digest.page, digest.page.health, digest.page.agreements
    lines = [f"*{digest.subject}* ({digest.since:%a %d %b} – {digest.until:%a %d %b})", "", "Review health"]
    lines.append(
        f"• {health.merged} merged; median time to first review {_hours(health.time_to_first_review.median_hours)}, "
        f"pickup {_hours(health.pickup_time.median_hours)}"
    )
    lines.append(
        f"• First review within {agreements.review_within_hours} h: {agreements.reviewed_in_time} on time, "
        f"{agreements.reviewed_late} late; within {agreements.max_pr_size} lines: {agreements.within_size}, "
        f"over: {agreements.over_size}"
    )
    coverage = health.coverage
    stamps = health.rubber_stamp_share
    lines.append(
        f"• Reviewed {coverage['reviewed']}, paired only {coverage['paired_only']}, unreviewed {coverage['neither']}; "
        f"rubber stamps {'—' if stamps is None else f'{stamps * 100:.0f}%'} of approvals"
    )
    lines.append(f"• Waiting for review now: {len(page.waiting)}; stale: {len(page.stale)}")
    pairing = page.pairing
    paired_hours = sum(person.total_hours for person in pairing.hours)
    lines += ["", "Pairing", f"• {paired_hours:.1f} h paired; not paired this week: {len(pairing.not_paired)}"]
    if pairing.suggested_pairs:
        a, b = pairing.suggested_pairs[0]
        lines.append(f"• Next pair to try: {a.display_name} and {b.display_name}")
    lines += ["", "DORA"]
    if digest.dora is None:
        lines.append("• No services: nothing deployed to measure.")
    else:
        dora = digest.dora
        cfr = dora.change_failure_rate
        lines.append(
            f"• {dora.deployment_frequency.deployments} deployments; lead time {_hours(dora.lead_time.median_hours)}; "
            f"change failure rate {'—' if cfr.rate is None else f'{cfr.rate * 100:.0f}%'} ({cfr.failed} of "
            f"{cfr.deployments}); time to restore {_hours(dora.time_to_restore.median_hours)}"
        )
    lines += ["", "Incidents"]
    if not digest.incidents:
        lines.append("• None.")
    for incident in digest.incidents:
        cause = "; caused by " + ", ".join(incident.causes) if incident.causes else "; no confirmed cause yet"
        lines.append(f"• {incident.title} ({incident.severity}, {incident.started_at:%a %d %b}){cause}")
    lines += ["", "Open alerts"]
    if not digest.open_alerts:
        lines.append("• None.")
    for alert in digest.open_alerts:
        spec = figure_spec(alert.figure)
        acknowledged = ", acknowledged" if alert.acknowledged_at else ""
        lines.append(
            f"• {spec.label}: {format_value(spec, alert.value)} against {format_value(spec, alert.baseline)} "
            f"since {alert.first_day:%a %d %b}{acknowledged}"
        )
    lines += ["", "Risky deploys"]
    if not digest.risky_deploys:
        lines.append("• None.")
    else:
        lines += [f"• {line}" for line in digest.risky_deploys]
    return lines


def digest_preview(*, team: Team, now: dt.datetime | None = None) -> Digest:
    """The next digest as it stands: this week so far."""
    now = now or timezone.now()
    return digest_build(team=team, since=local_midnight(week_start(timezone.localtime(now).date())), until=now)


def digests_send_due(*, now: dt.datetime | None = None) -> list[int]:
    """Build and record the due week's digest of every active team that has none yet, and send each (chat and
    e-mail, once). Running it again sends nothing twice. Returns the digests created."""
    now = now or timezone.now()
    week = digest_week_due(now)
    since, until = local_midnight(week), local_midnight(week + dt.timedelta(days=7))
    done = set(WeeklyDigest.objects.filter(week=week).values_list("team_id", flat=True))
    created = []
    for team in Team.objects.filter(archived=False).exclude(pk__in=done).order_by("pk"):
        digest = digest_build(team=team, since=since, until=until)
        try:
            with transaction.atomic():
                row = WeeklyDigest.objects.create(
                    team=team,
                    week=week,
                    subject=digest.subject,
                    text="\n".join(digest.lines),
                    email_recipients=member_addresses(team),
                )
                if chat_schedule(row=row, team=team):
                    digest_chat_enqueue(digest_id=row.pk)
                if row.email_recipients:
                    digest_email_enqueue(digest_id=row.pk)
        except IntegrityError:
            continue  # another run recorded it a moment ago: it sends it
        created.append(row.pk)
    return created


def member_addresses(team: Team) -> list[str]:
    """The e-mail addresses of the team's members who have one (their login's), bots left out."""
    return sorted(
        {
            email.strip()
            for email in Membership.objects.filter(team=team, person__is_bot=False, person__user__isnull=False)
            .exclude(person__user__email="")
            .values_list("person__user__email", flat=True)
        }
    )


def digest_email_send(*, digest_id: int) -> str:
    """Send the digest by e-mail if it was not sent (nor is being sent): claimed first, so a retried task never sends
    it twice. A failure is recorded on the digest, not retried (the outcome may be unknown)."""
    now = timezone.now()
    with transaction.atomic():
        digest = WeeklyDigest.objects.select_for_update().filter(pk=digest_id).first()
        if digest is None:
            return "skipped: no such digest"
        if digest.email_sent_at is not None:
            return "skipped: already sent"
        if digest.email_sending_since is not None or digest.email_error:
            return "skipped: tried already"
        if not digest.email_recipients:
            return "skipped: nobody to send to"
        WeeklyDigest.objects.filter(pk=digest.pk).update(email_sending_since=now)
    try:
        send_mail(
            digest.subject, digest.text, settings.DEFAULT_FROM_EMAIL, digest.email_recipients, fail_silently=False
        )
    except Exception as error:  # noqa: BLE001 - any backend failure is recorded on the digest
        WeeklyDigest.objects.filter(pk=digest.pk).update(email_error=f"{type(error).__name__}: {error}"[:1000])
        return f"failed: {error}"
    WeeklyDigest.objects.filter(pk=digest.pk).update(email_sent_at=timezone.now())
    return "sent"


DIGEST_CHAT = ChatKind(
    model=WeeklyDigest,
    related=("team",),
    team_of=lambda digest: digest.team,
    text_of=lambda digest: digest.text,
    not_owed=lambda digest: None,
)
