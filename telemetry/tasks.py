"""Celery tasks for production's side. Each takes an id, calls one service, and may run twice harmlessly: linking
recomputes the same set of changes, ranking upserts by incident + pull request, and the chat notice is claimed
on its row before it is sent, and sent once. Errors are recorded on the row; retries follow an explicit countdown
schedule.
"""

from __future__ import annotations

import datetime as dt
import logging
import math

from celery import shared_task
from django.db import OperationalError

from reviews.integrations.vcs import VcsRateLimited, VcsUnavailable
from telemetry.models import Deployment, Incident
from telemetry.selectors.repair import deployments_awaiting_link, incidents_awaiting_correlation
from telemetry.services.alerts import ALERT_CHAT, ALERT_CLOSED_CHAT, alerts_run
from telemetry.services.chat import chat_notify, chats_dispatch, suspect_chat_notify, suspect_chats_dispatch
from telemetry.services.correlation import incident_correlate
from telemetry.services.digest import DIGEST_CHAT, digest_email_send, digests_send_due
from telemetry.services.linking import LinkError, deployment_changes_link
from telemetry.services.protection_rules import protection_rule_answer, protection_rules_recheck

logger = logging.getLogger(__name__)

# Seconds before each retry while the VCS cannot answer a compare (after the last, merge order is used).
LINK_RETRY_COUNTDOWNS = (60, 300, 900, 3600)
CORRELATE_RETRY_COUNTDOWNS = (10, 60, 300)
# GitHub waits for the answer (up to 30 days): retried for about an hour.
ANSWER_RETRY_COUNTDOWNS = (5, 30, 120, 600, 1800)
REPAIR_BATCH = 500
REPAIR_GRACE = dt.timedelta(minutes=5)


@shared_task(bind=True, acks_late=True, max_retries=len(LINK_RETRY_COUNTDOWNS), soft_time_limit=120, time_limit=150)
def link_deployment_changes(self, deployment_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        result = deployment_changes_link(deployment_id=deployment_id)
    except LinkError as error:
        return f"failed: {error}"  # recorded on the deployment; a later report or a lead fixes the input
    except (VcsUnavailable, VcsRateLimited) as error:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            # Give up on the VCS, not on the deployment: merge order still says what it shipped.
            result = deployment_changes_link(deployment_id=deployment_id, allow_vcs=False, vcs_error=str(error))
            return f"linked by {result.method} after the VCS failed: {result.pull_requests} pull requests"
        if isinstance(error, VcsRateLimited):
            countdown = max(1, math.ceil(error.retry_after))  # the wait the VCS asked for, no more
        else:
            countdown = LINK_RETRY_COUNTDOWNS[self.request.retries]
        Deployment.objects.filter(pk=deployment_id).update(
            link_error=f"retrying in {countdown}s (attempt {self.request.retries + 1}): {error}"[:1000]
        )
        raise self.retry(exc=error, countdown=countdown) from error
    except Deployment.DoesNotExist:
        return "skipped: no such deployment"
    said = f"linked by {result.method}: {result.commits} commits, {result.pull_requests} pull requests"
    return f"{said} ({result.note})" if result.note else said


@shared_task(bind=True, acks_late=True, max_retries=len(CORRELATE_RETRY_COUNTDOWNS), soft_time_limit=60, time_limit=90)
def correlate_incident(self, incident_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        result = incident_correlate(incident_id=incident_id)
    except OperationalError as error:
        # Lock timeouts and dropped connections pass; anything else is a bug to see, not to retry.
        Incident.objects.filter(pk=incident_id).update(correlation_error=f"{type(error).__name__}: {error}"[:1000])
        if self.request.is_eager or self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=error, countdown=CORRELATE_RETRY_COUNTDOWNS[self.request.retries]) from error
    if result is None:
        return "skipped: no such incident"
    return f"ranked {result.suspects} suspects, removed {result.removed}"


@shared_task(bind=True, acks_late=True, max_retries=len(ANSWER_RETRY_COUNTDOWNS), soft_time_limit=60, time_limit=90)
def answer_protection_rule(self, check_id: int) -> str:  # type: ignore[no-untyped-def]
    """Answer GitHub's deployment protection rule with the deploy check: sent until accepted once."""
    try:
        return protection_rule_answer(check_id=check_id)
    except (VcsUnavailable, VcsRateLimited) as error:
        if self.request.retries >= self.max_retries:
            raise
        if isinstance(error, VcsRateLimited):
            countdown = max(1, math.ceil(error.retry_after))
        else:
            countdown = ANSWER_RETRY_COUNTDOWNS[self.request.retries]
        raise self.retry(exc=error, countdown=countdown) from error


@shared_task(acks_late=True, soft_time_limit=25, time_limit=30)
def recheck_protection_rules() -> int:
    """Check again the deployment protection rules left waiting for a sha to sync; answer those now decided."""
    return protection_rules_recheck()


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def notify_chat_of_cause(suspect_id: int) -> str:
    """Send one chat notice if it is still owed. Retries are not Celery's: a failed attempt is scheduled on the
    suspect, and `dispatch_due_chat_notices` hands it over again when it is due."""
    return suspect_chat_notify(suspect_id=suspect_id)


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def dispatch_due_chat_notices() -> int:
    """Beat (and `manage.py run_due_work` on the embedded default): hand every due chat notice to a task."""
    return (
        suspect_chats_dispatch(send=notify_chat_of_cause.delay)
        + chats_dispatch(kind=ALERT_CHAT, send=notify_chat_of_alert.delay)
        + chats_dispatch(kind=ALERT_CLOSED_CHAT, send=notify_chat_of_alert_closed.delay)
        + chats_dispatch(kind=DIGEST_CHAT, send=notify_chat_of_digest.delay)
    )


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def notify_chat_of_alert(alert_id: int) -> str:
    """Tell the team's chat about an alert if still owed (claimed on the alert, sent once)."""
    return chat_notify(kind=ALERT_CHAT, row_id=alert_id)


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def notify_chat_of_alert_closed(notice_id: int) -> str:
    """Tell the team's chat that an alert closed (recovered, or the new normal) if still owed: sent once."""
    return chat_notify(kind=ALERT_CLOSED_CHAT, row_id=notice_id)


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def notify_chat_of_digest(digest_id: int) -> str:
    """Post a weekly digest to the team's chat if still owed (claimed on the digest, sent once)."""
    return chat_notify(kind=DIGEST_CHAT, row_id=digest_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def email_digest(digest_id: int) -> str:
    """E-mail a weekly digest to the team's members if not sent yet (claimed on the digest, sent once)."""
    return digest_email_send(digest_id=digest_id)


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def run_alerts() -> dict[str, int]:
    """Beat: judge every team's figures against its baseline; open and close alerts (idempotent: one open alert per
    team and figure is a constraint)."""
    run = alerts_run()
    return {"days_computed": len(run.days_computed), "opened": len(run.opened), "closed": len(run.closed)}


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def send_weekly_digests() -> int:
    """Beat (hourly): record and send the due week's digest of each team that has none yet (once per team and week)."""
    return len(digests_send_due())


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def repair_telemetry() -> dict[str, int]:
    """Beat: queue the linking and ranking whose tasks were lost (a broker outage, a worker killed mid-way)."""
    deployments = deployments_awaiting_link(older_than=REPAIR_GRACE, limit=REPAIR_BATCH)
    incidents = incidents_awaiting_correlation(older_than=REPAIR_GRACE, limit=REPAIR_BATCH)
    for deployment_id in deployments:
        link_deployment_changes.delay(deployment_id)
    for incident_id in incidents:
        correlate_incident.delay(incident_id)
    return {"deployments": len(deployments), "incidents": len(incidents)}
