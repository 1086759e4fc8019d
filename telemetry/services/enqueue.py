"""Queue telemetry's Celery tasks once the current transaction commits (never for work that was rolled back).

The tasks module imports the services, so the services reach the tasks here, lazily. A broker hiccup (or an
inline failure in the embedded default) is logged, never raised: the write it follows stands, and each job can be
run again from the admin or by the next event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)


def _on_commit(describe: str, send: Callable[[], object]) -> None:
    def run() -> None:
        try:
            send()
        except Exception:
            logger.exception("could not run or queue %s", describe)

    transaction.on_commit(run)


def deployment_link_enqueue(*, deployment_id: int) -> None:
    from telemetry.tasks import link_deployment_changes

    _on_commit(f"linking of deployment {deployment_id}", lambda: link_deployment_changes.delay(deployment_id))


def incident_correlate_enqueue(*, incident_id: int) -> None:
    from telemetry.tasks import correlate_incident

    _on_commit(f"correlation of incident {incident_id}", lambda: correlate_incident.delay(incident_id))


def suspect_chat_enqueue(*, suspect_id: int) -> None:
    from telemetry.tasks import notify_chat_of_cause

    _on_commit(f"chat notice for suspect {suspect_id}", lambda: notify_chat_of_cause.delay(suspect_id))


def alert_chat_enqueue(*, alert_id: int) -> None:
    from telemetry.tasks import notify_chat_of_alert

    _on_commit(f"chat notice for alert {alert_id}", lambda: notify_chat_of_alert.delay(alert_id))


def alert_closed_chat_enqueue(*, notice_id: int) -> None:
    from telemetry.tasks import notify_chat_of_alert_closed

    _on_commit(f"chat notice of closed alert {notice_id}", lambda: notify_chat_of_alert_closed.delay(notice_id))


def digest_chat_enqueue(*, digest_id: int) -> None:
    from telemetry.tasks import notify_chat_of_digest

    _on_commit(f"chat digest {digest_id}", lambda: notify_chat_of_digest.delay(digest_id))


def digest_email_enqueue(*, digest_id: int) -> None:
    from telemetry.tasks import email_digest

    _on_commit(f"e-mail digest {digest_id}", lambda: email_digest.delay(digest_id))


def protection_rule_answer_enqueue(*, check_id: int) -> None:
    from telemetry.tasks import answer_protection_rule

    _on_commit(f"protection rule answer for check {check_id}", lambda: answer_protection_rule.delay(check_id))
