"""A lead's verdict on a suspect change, and what follows from it.

Confirming a suspect makes it a cause: its deployment counts as failed in the change failure rate, the paths it
changed become a risk signal review policies can raise the bar on (through `reviews.services.risk`), and its
author and reviewers are told, blamelessly: a Notification each (idempotent), and the team's chat when the team
has a Slack-compatible webhook URL (telemetry.services.chat: retried with backoff, sent once). Rejecting undoes a
confirmation: the deployment no longer counts as failed (unless another confirmed cause shipped with it), the risk
signal is withdrawn and the notices are taken back.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from reviews.models import ChangedFile, Person, Review
from reviews.services.audit import SYSTEM, Actor, audit_event_record, field_changes
from reviews.services.risk import risk_signal_record, risk_signal_withdraw
from telemetry.models import Deployment, Notification, SuspectChange, SuspectVerdict
from telemetry.services.chat import suspect_chat_schedule
from telemetry.services.enqueue import suspect_chat_enqueue

NOTIFICATION_KIND = "incident_cause"
MAX_RISK_PATHS = 200


def _decide(suspect: SuspectChange, verdict: str, decided_by: Person | None, actor: Actor) -> None:
    """A decision is a new SuspectVerdict on the record; the suspect's verdict is the newest one."""
    if suspect.verdict == verdict:
        return
    before = suspect.verdict
    decision = SuspectVerdict.objects.create(suspect=suspect, verdict=verdict, decided_by=decided_by, token=actor.token)
    suspect.verdict, suspect.decided_by, suspect.decided_at = verdict, decided_by, decision.decided_at
    suspect.save(update_fields=["verdict", "decided_by", "decided_at"])
    audit_event_record(
        actor=actor,
        action="suspect.verdict",
        target=suspect,
        team=suspect.deployment.service.team,
        changes=field_changes({"verdict": before}, {"verdict": verdict}),
    )


def suspect_confirm(*, suspect: SuspectChange, decided_by: Person | None, actor: Actor = SYSTEM) -> SuspectChange:
    """Confirm a suspect as a cause of its incident. Confirming it again changes nothing."""
    with transaction.atomic():
        suspect = _locked(suspect.pk)
        _decide(suspect, SuspectChange.Verdict.CONFIRMED, decided_by, actor)
        Deployment.objects.filter(pk=suspect.deployment_id).update(caused_incident=True)
        pull_request, incident = suspect.pull_request, suspect.incident
        paths = list(
            ChangedFile.objects.filter(pull_request=pull_request).order_by("path").values_list("path", flat=True)
        )
        risk_signal_record(
            repository=pull_request.repository,
            reference=risk_reference(suspect),
            occurred_at=incident.started_at,
            path_prefixes=paths[:MAX_RISK_PATHS],
            service_name=suspect.deployment.service.name,
        )
        notifications_for_cause(suspect=suspect)
        if suspect_chat_schedule(suspect=suspect):
            # At once; if this hand-over is lost, the dispatcher finds the notice due in the database.
            suspect_chat_enqueue(suspect_id=suspect.pk)
    return suspect


def suspect_reject(*, suspect: SuspectChange, decided_by: Person | None, actor: Actor = SYSTEM) -> SuspectChange:
    """Reject a suspect; when it was confirmed, undo what the confirmation did."""
    with transaction.atomic():
        suspect = _locked(suspect.pk)
        was_confirmed = suspect.verdict == SuspectChange.Verdict.CONFIRMED
        _decide(suspect, SuspectChange.Verdict.REJECTED, decided_by, actor)
        if was_confirmed:
            still_failed = SuspectChange.objects.filter(
                deployment_id=suspect.deployment_id, verdict=SuspectChange.Verdict.CONFIRMED
            ).exists()
            Deployment.objects.filter(pk=suspect.deployment_id).update(caused_incident=still_failed)
            risk_signal_withdraw(reference=risk_reference(suspect))
            Notification.objects.filter(
                kind=NOTIFICATION_KIND, incident=suspect.incident, pull_request=suspect.pull_request
            ).delete()
    return suspect


def _locked(suspect_id: int) -> SuspectChange:
    return (
        SuspectChange.objects.select_for_update(of=("self",))
        .select_related("incident", "deployment__service__team", "pull_request__repository", "pull_request__author")
        .get(pk=suspect_id)
    )


def risk_reference(suspect: SuspectChange) -> str:
    """One signal per confirmed cause: the incident and the pull request (withdrawn together)."""
    incident = suspect.incident
    return f"{incident.source}:{incident.external_id}#pr{suspect.pull_request_id}"[-255:]


def notifications_for_cause(*, suspect: SuspectChange) -> list[Notification]:
    """A notice to the author and to each reviewer (people, not bots), once per person and cause."""
    pull_request, incident = suspect.pull_request, suspect.incident
    reviewers = set(
        Review.objects.filter(pull_request=pull_request, reviewer__isnull=False, reviewer__is_bot=False).values_list(
            "reviewer_id", flat=True
        )
    )
    roles: dict[int, str] = dict.fromkeys(sorted(reviewers - {pull_request.author_id}), "reviewed")
    author = pull_request.author
    if author is not None and not author.is_bot:
        roles[author.pk] = "wrote"
    notices = []
    for person_id, role in sorted(roles.items()):
        notice, _ = Notification.objects.get_or_create(
            person_id=person_id,
            kind=NOTIFICATION_KIND,
            incident=incident,
            pull_request=pull_request,
            defaults={"subject": cause_subject(suspect), "body": cause_body(suspect, role)},
        )
        notices.append(notice)
    return notices


def cause_subject(suspect: SuspectChange) -> str:
    pull_request = suspect.pull_request
    return f"“{suspect.incident.title}” was traced to {pull_request.repository.full_path}#{pull_request.number}"[:300]


def cause_body(suspect: SuspectChange, role: str) -> str:
    incident, pull_request = suspect.incident, suspect.pull_request
    # No time in the text: it is stored, and the pages show when the incident started in the reader's own zone.
    return (
        f"The incident “{incident.title}”, {incident.get_severity_display()}, "
        f"was traced to {pull_request.repository.full_path}#{pull_request.number} “{pull_request.title}”, which you "
        f"{role}.\n\n"
        "This is not about blame. Changes reach production through the whole team and its review process, and "
        "that process is what we want to learn from. Take a look at what the change did in production, and share "
        "what would have made the problem easier to catch: a test, a review question, a smaller step, a guard.\n\n"
        f"Incident: {incident.url or _tandem_url(f'/admin/telemetry/incident/{incident.pk}/change/')}\n"
        f"Change: {pull_request.web_url or _tandem_url(f'/admin/reviews/pullrequest/{pull_request.pk}/change/')}"
    )


def _tandem_url(path: str) -> str:
    return f"{getattr(settings, 'PUBLIC_URL', '').rstrip('/')}{path}"
