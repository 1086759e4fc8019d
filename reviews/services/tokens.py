"""API tokens: created with a secret shown once, checked by hash, revoked once; never deleted or edited."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews.models import ApiToken, Team
from reviews.services.audit import SYSTEM, Actor, audit_event_record, field_changes

TOKEN_PREFIX = "tdm_"  # noqa: S105 - a public marker, not a secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_secret_new() -> tuple[str, str, str]:
    """A new secret, its recognisable prefix, and the hash that is all Tandem keeps of it."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[:12], _hash(secret)


def api_token_create(
    *,
    name: str,
    teams: Sequence[Team],
    created_by: User | None = None,
    actor: Actor = SYSTEM,
) -> tuple[ApiToken, str]:
    """Create a token; returns it and its secret, which is not stored and cannot be shown again."""
    secret, prefix, key_hash = api_token_secret_new()
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name, prefix=prefix, key_hash=key_hash, created_by=created_by or actor.author_user
        )
        token.teams.set(teams)
        for team in teams:
            audit_event_record(
                actor=actor,
                action="token.create",
                target=token,
                team=team,
                changes=field_changes({}, {"name": name, "prefix": prefix, "teams": sorted(t.slug for t in teams)}),
            )
    return token, secret


def api_token_revoke(*, token: ApiToken, actor: Actor, reason: str = "") -> ApiToken:
    """Revoke a token, once; it stays on the record with who revoked it and when."""
    with transaction.atomic():
        now = timezone.now()
        if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
            for team in token.teams.all():
                audit_event_record(
                    actor=actor,
                    action="token.revoke",
                    target=token,
                    team=team,
                    changes=field_changes({"revoked_at": None}, {"revoked_at": now}),
                    reason=reason,
                )
    token.refresh_from_db()
    return token


def api_token_check(*, secret: str) -> ApiToken | None:
    token = (
        ApiToken.objects.select_related("created_by").filter(key_hash=_hash(secret), revoked_at__isnull=True).first()
    )
    if token is not None and (token.last_used_at is None or (timezone.now() - token.last_used_at).total_seconds() > 60):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
