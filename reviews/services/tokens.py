"""API tokens: created with a secret shown once, checked by hash."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from django.utils import timezone

from reviews.models import ApiToken, Team

TOKEN_PREFIX = "tdm_"  # noqa: S105 - a public marker, not a secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_secret_new() -> tuple[str, str, str]:
    """A new secret, its recognisable prefix, and the hash that is all Tandem keeps of it."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[:12], _hash(secret)


def api_token_create(*, name: str, teams: Sequence[Team], created_by=None) -> tuple[ApiToken, str]:  # type: ignore[no-untyped-def]
    """Create a token; returns it and its secret, which is not stored and cannot be shown again."""
    secret, prefix, key_hash = api_token_secret_new()
    token = ApiToken.objects.create(name=name, prefix=prefix, key_hash=key_hash, created_by=created_by)
    token.teams.set(teams)
    return token, secret


def api_token_check(*, secret: str) -> ApiToken | None:
    token = ApiToken.objects.filter(key_hash=_hash(secret), revoked_at__isnull=True).first()
    if token is not None and (token.last_used_at is None or (timezone.now() - token.last_used_at).total_seconds() > 60):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
