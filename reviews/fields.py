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


@models.JSONField.register_lookup
class HasAnyElement(models.Lookup[list[str]]):
    """`labels__has_any_element=["bug", "urgent"]`: a JSON list holding any of these strings, on both databases.

    Django's `contains` on a JSONField is PostgreSQL's alone, and its `has_any_keys` means object keys on SQLite,
    so neither serves the embedded default's label filter. PostgreSQL: jsonb's `?|` (a list's string elements
    count as its keys there); SQLite: the list's elements through `json_each`."""

    lookup_name = "has_any_element"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str | int, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [str(value) for value in self.rhs]
        if not values:
            return "1 = 0", ()
        marks = ", ".join(["%s"] * len(values))
        if connection.vendor == "postgresql":
            return f"({lhs})::jsonb ?| ARRAY[{marks}]::text[]", (*lhs_params, *values)  # noqa: S608
        # Only the compiled column and placeholders are formatted in: the values go as parameters.
        return (
            f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.type = 'text' AND json_each.value IN ({marks}))",  # noqa: S608
            (*lhs_params, *values),
        )
