"""Encryption at rest for the secrets Tandem must be able to read back: connection API tokens and webhook secrets.

Fernet (AES-128-CBC with an HMAC-SHA256, from `cryptography`), with keys from the environment
(`CONNECTION_SECRET_KEYS`, comma-separated). MultiFernet encrypts with the first key and decrypts with any, so a key
is rotated by putting a new one first, running `manage.py connection_secrets_rotate`, then removing the old one.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret none of the configured keys decrypts: a key was removed before rotating."""


def secret_encrypt(plain: str) -> str:
    return _fernet(tuple(settings.CONNECTION_SECRET_KEYS)).encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.CONNECTION_SECRET_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored connection secret cannot be decrypted with CONNECTION_SECRET_KEYS: keep the old key listed "
            "until `manage.py connection_secrets_rotate` has run."
        ) from None


def secret_rotate(token: str) -> str:
    """The same secret, encrypted with the first (newest) key."""
    return _fernet(tuple(settings.CONNECTION_SECRET_KEYS)).rotate(token.encode()).decode()


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("CONNECTION_SECRET_KEYS is empty: connection secrets cannot be encrypted.")
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(f"CONNECTION_SECRET_KEYS holds a key that is not a Fernet key: {error}") from None
