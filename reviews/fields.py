"""Model fields of our own."""

from __future__ import annotations

from typing import Any

from django.db import models

from reviews.crypto import secret_decrypt, secret_encrypt


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Text stored encrypted (reviews.crypto) and read back as plain text.

    An empty value is stored empty, so "is a secret set" stays a plain query (`.exclude(webhook_secret="")`); any
    other lookup on the value cannot match, since each encryption differs.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return secret_decrypt(value) if value else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return secret_encrypt(value) if value else value
