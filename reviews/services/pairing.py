"""Pairing sessions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import transaction

from reviews.models import PairingParticipant, PairingSession, Person, Repository


def pairing_session_record(
    *,
    source: str,
    external_id: str,
    participants: Sequence[tuple[Person, str]],
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
    repository: Repository | None = None,
    branch: str = "",
) -> PairingSession:
    """Record a whole session at once (manual entry, imports, the demo), idempotent by source + external id."""
    if ended_at is not None and ended_at < started_at:
        raise ValueError("A pairing session cannot end before it starts.")
    with transaction.atomic():
        session, _ = PairingSession.objects.update_or_create(
            source=source,
            external_id=external_id,
            defaults={"started_at": started_at, "ended_at": ended_at, "repository": repository, "branch": branch},
        )
        keep = []
        for person, role in participants:
            PairingParticipant.objects.update_or_create(
                session=session,
                person=person,
                defaults={"role": role, "joined_at": started_at, "left_at": ended_at},
            )
            keep.append(person.pk)
        session.participations.exclude(person_id__in=keep).delete()
    return session
