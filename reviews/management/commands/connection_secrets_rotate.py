"""`manage.py connection_secrets_rotate`: re-encrypt connection secrets with the newest key (README)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reviews.services.connections import connection_secrets_rotate


class Command(BaseCommand):
    help = "Re-encrypt every connection's API token and webhook secret with the first of CONNECTION_SECRET_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        count = connection_secrets_rotate()
        self.stdout.write(f"Re-encrypted the secrets of {count} connection(s).")
