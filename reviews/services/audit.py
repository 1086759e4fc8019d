"""The audit trail: one function every write by a person or a token calls, in the write's own transaction.

An AuditEvent says who (a person, or a token and the lead who created it), what (an action on an object), when,
from where (admin, API, webhook, sync) and the before and after of each field that changed. Events are never
changed or deleted (AuditEvent is append-only at the model and queryset level).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from reviews.models import ApiToken, AuditEvent, Person, Team


@dataclass(frozen=True)
class Actor:
    """Who is writing, and through which surface."""

    source: str
    user: Any = None  # the signed-in user (None for a token or the system)
    person: Person | None = None
    token: ApiToken | None = None

    @property
    def label(self) -> str:
        if self.token is not None:
            creator = self.token.created_by
            return f"token {self.token.name} ({self.token.prefix}…, created by {creator or 'nobody on record'})"
        if self.person is not None:
            return f"{self.person.display_name} ({self.user})" if self.user is not None else self.person.display_name
        if self.user is not None:
            return str(self.user)
        return self.source

    @property
    def author_user(self) -> Any:
        """The user a write is attributed to: the signed-in user, or the lead who created the token."""
        if self.token is not None:
            return self.token.created_by
        return self.user


SYSTEM = Actor(source=AuditEvent.Source.SYSTEM)


def actor_for(user: Any, *, source: str) -> Actor:
    """The actor behind a request's user: a token (`TokenUser`), a signed-in person, or nobody."""
    token = getattr(user, "token", None)
    if isinstance(token, ApiToken):
        return Actor(source=source, token=token)
    if user is None or not getattr(user, "is_authenticated", False):
        return Actor(source=source)
    person = getattr(user, "person", None)
    return Actor(source=source, user=user, person=person if isinstance(person, Person) else None)


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Only the fields whose value differs, each as {before, after}."""
    names = list(dict.fromkeys([*before, *after]))
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in names
        if before.get(name) != after.get(name)
    }


def fields_of(instance: models.Model | None, names: list[str]) -> dict[str, Any]:
    if instance is None:
        return {}
    return {name: getattr(instance, name) for name in names}


def audit_event_record(
    *,
    actor: Actor,
    action: str,
    target: models.Model | None,
    team: Team | None,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
    reason: str = "",
) -> AuditEvent:
    """Record one write. Call it inside the write's transaction, so both happen or neither."""
    return AuditEvent.objects.create(
        source=actor.source,
        action=action,
        team=team,
        actor=actor.label[:300],
        actor_user=actor.user if actor.token is None else actor.token.created_by,
        actor_person=actor.person,
        actor_token=actor.token,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None and target.pk is not None else "",
        target=str(target)[:300] if target is not None else "",
        changes=_jsonable(dict(changes or {})),
        reason=reason,
    )


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    def default(item: Any) -> Any:
        if isinstance(item, models.Model):
            return str(item)
        return DjangoJSONEncoder().default(item)

    jsonable: dict[str, Any] = json.loads(json.dumps(value, default=default))
    return jsonable
