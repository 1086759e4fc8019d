"""Connections' encrypted secrets."""

from __future__ import annotations

from django.db import transaction

from reviews.models import Connection


def connection_secrets_rotate() -> int:
    """Re-encrypt every stored connection secret with the first of CONNECTION_SECRET_KEYS; returns how many
    connections were rewritten. Run after putting a new key first, before removing the old one."""
    rotated = 0
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().exclude(api_token="", webhook_secret=""):
            # Read decrypted with any key, written encrypted with the first.
            Connection.objects.filter(pk=connection.pk).update(
                api_token=connection.api_token, webhook_secret=connection.webhook_secret
            )
            rotated += 1
    return rotated
