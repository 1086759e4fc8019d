"""A GitHub App's installations as its `installation` and `installation_repositories` webhooks tell them.

Repositories an installation begins to cover are registered (or switched on again) and synced; those it stops
covering are switched off, their history kept, with the reason on the repository. A suspended installation keeps its
repositories but Tandem neither syncs nor posts for them, saying why, until it is unsuspended; an uninstalled one
switches them off. The stored installation token goes with a suspension or an uninstall (GitHub revoked it).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from reviews.integrations.records import InstallationEvent, RepositoryRecord
from reviews.models import AppInstallation, AuditEvent, Connection, Repository
from reviews.services.audit import Actor, audit_event_record, field_changes
from reviews.services.credentials import (
    connection_app,
    installation_problem,
    installation_token_forget,
    installation_upsert,
    restriction_problem,
)
from reviews.services.enqueue import repository_syncs_enqueue
from reviews.services.pull_requests import repository_upsert

WEBHOOK = Actor(source=AuditEvent.Source.WEBHOOK)


def installation_event_apply(*, connection: Connection, event: InstallationEvent) -> str:
    """Apply one installation event, in the caller's transaction. Returns "" when applied, else why it was
    ignored (the connection is no App, or is restricted to another installation or account)."""
    if connection_app(connection) is None:
        return f"{connection} is not a GitHub App connection: installation events are not for it"
    restricted = restriction_problem(connection, event.installation)
    if restricted:
        return restricted
    uninstalled = AppInstallation.objects.filter(
        connection=connection, installation_id=event.installation.installation_id, deleted_at__isnull=False
    ).first()
    if uninstalled is not None:
        # GitHub never reuses an installation's id: an event for one it uninstalled is late or redelivered.
        late = f"A late or redelivered {event.event} {event.action} changes nothing."
        return f"{installation_problem(uninstalled)} {late}"
    installation = installation_upsert(connection=connection, record=event.installation)
    if event.event == "installation_repositories":
        _register(connection, installation, event.repositories_added, sender=event.sender)
        _remove(connection, installation, event.repositories_removed, sender=event.sender)
        return ""
    if event.action in ("created", "new_permissions_accepted"):
        _register(connection, installation, event.repositories, sender=event.sender)
        return ""
    if event.action == "suspend":
        _suspend(installation, by=event.sender)
        return ""
    if event.action == "unsuspend":
        _unsuspend(installation)
        return ""
    if event.action == "deleted":
        _uninstall(connection, installation, event.repositories)
        return ""
    return f"installation {event.action}: nothing for Tandem to do"


def _register(
    connection: Connection, installation: AppInstallation, records: Iterable[RepositoryRecord], *, sender: str
) -> None:
    """Repositories the installation covers: created when new, linked to it, switched on again when an
    installation had switched them off (not when a person did), and synced."""
    to_sync = []
    for record in records:
        repository = repository_upsert(connection=connection, record=record)
        reactivate = not repository.is_active and bool(repository.access_error)
        fields: dict[str, object] = {"app_installation": installation, "access_error": ""}
        if reactivate:
            fields["is_active"] = True
            _audit(
                repository,
                active=True,
                reason=f"added to the GitHub App installation on {_account(installation)}"
                + (f" by {sender}" if sender else ""),
            )
        Repository.objects.filter(pk=repository.pk).update(**fields)
        if repository.is_active or reactivate:
            to_sync.append(repository.pk)
    repository_syncs_enqueue(repository_ids=to_sync)


def _remove(
    connection: Connection, installation: AppInstallation, records: Iterable[RepositoryRecord], *, sender: str
) -> None:
    """Repositories the installation no longer covers: switched off, their history kept, the reason on them."""
    external_ids = [record.external_id for record in records]
    by = f" by {sender}" if sender else ""
    reason = f"Removed from the GitHub App installation on {_account(installation)}{by} on {_now()}."
    for repository in Repository.objects.filter(connection=connection, external_id__in=external_ids):
        if repository.is_active:
            _audit(repository, active=False, reason=reason)
        Repository.objects.filter(pk=repository.pk).update(
            is_active=False,
            access_error=_reason_unless_a_person_switched_off(repository, reason),
            app_installation=None,
        )


def _suspend(installation: AppInstallation, *, by: str) -> None:
    if installation.suspended_at is None:
        # A payload that does not say when: now.
        installation.suspended_at, installation.suspended_by = timezone.now(), by
        installation.save(update_fields=["suspended_at", "suspended_by"])
    installation_token_forget(installation=installation)
    installation.repositories.filter(is_active=True).update(access_error=installation_problem(installation))


def _unsuspend(installation: AppInstallation) -> None:
    """Tandem syncs again what it missed meanwhile; the reconciler posts the verdicts that were not posted."""
    active = installation.repositories.filter(is_active=True)
    ids = list(active.values_list("pk", flat=True))
    active.update(access_error="")
    repository_syncs_enqueue(repository_ids=ids)


def _uninstall(connection: Connection, installation: AppInstallation, records: Iterable[RepositoryRecord]) -> None:
    installation.deleted_at = timezone.now()
    installation.save(update_fields=["deleted_at"])
    installation_token_forget(installation=installation)
    reason = installation_problem(installation)
    listed = [record.external_id for record in records]
    covered = Repository.objects.filter(connection=connection, external_id__in=listed) | installation.repositories.all()
    for repository in covered.distinct():
        if repository.is_active:
            _audit(repository, active=False, reason=reason)
        Repository.objects.filter(pk=repository.pk).update(
            is_active=False,
            access_error=_reason_unless_a_person_switched_off(repository, reason),
            app_installation=installation,
        )


def _reason_unless_a_person_switched_off(repository: Repository, reason: str) -> str:
    """The installation's reason, which lets a later installation switch the repository on again; none on one a
    person had switched off (inactive with no reason), which must stay off whatever the App does next."""
    return "" if not repository.is_active and not repository.access_error else reason


def _audit(repository: Repository, *, active: bool, reason: str) -> None:
    audit_event_record(
        actor=WEBHOOK,
        action="repository.change",
        target=repository,
        team=repository.team,
        changes=field_changes({"is_active": not active}, {"is_active": active}),
        reason=reason,
    )


def _account(installation: AppInstallation) -> str:
    return installation.account_login or f"installation {installation.installation_id}"


def _now() -> str:
    return f"{timezone.now():%Y-%m-%d %H:%M} UTC"
