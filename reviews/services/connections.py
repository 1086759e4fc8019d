"""Which Connection a webhook belongs to, answered from memory on the request path.

Also: re-encrypting stored secrets when the key rotates.

Webhook views verify a signature against every connection's secret and map an instance header to a configured
connection. Reading the connections on every request would cost a query per webhook; they change rarely, so each
process keeps them for a few seconds and forgets them at once when a Connection is saved or deleted in this process
(another process sees the change within CACHE_SECONDS).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from reviews.models import AppInstallation, Connection, Provider

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class _Directory:
    loaded_at: float
    by_provider: dict[str, tuple[Connection, ...]]


_lock = threading.Lock()
_directory: _Directory | None = None


def connections_forget() -> None:
    """Drop the cached connections (a Connection was saved or deleted)."""
    global _directory
    with _lock:
        _directory = None


def _connections(provider: str) -> tuple[Connection, ...]:
    global _directory
    directory = _directory
    if directory is None or time.monotonic() - directory.loaded_at > CACHE_SECONDS:
        by_provider: dict[str, list[Connection]] = {}
        for connection in Connection.objects.order_by("pk"):
            by_provider.setdefault(connection.provider, []).append(connection)
        directory = _Directory(time.monotonic(), {key: tuple(value) for key, value in by_provider.items()})
        with _lock:
            _directory = directory
    return directory.by_provider.get(provider, ())


def connections_with_webhook_secret(*, provider: str) -> tuple[Connection, ...]:
    """Connections of a provider that have a webhook secret of their own, oldest first."""
    return tuple(connection for connection in _connections(provider) if connection.webhook_secret)


def connection_for_instance(*, provider: str, host: str) -> Connection | None:
    """The connection a webhook verified by the instance-wide secret belongs to, or None for an instance Tandem is
    not configured to talk to. A header only names an instance: Connections and settings say which instances
    exist, so no header ever creates a Connection or sends a token somewhere new."""
    host = host.strip().lower()
    for connection in _connections(provider):
        if host and host in {_hostname(connection.base_url), _hostname(connection.web_url)}:
            return connection
    base_url = settings.GITHUB_API_URL if provider == Provider.GITHUB else settings.GITLAB_URL
    if host and host != _hostname(base_url):
        return None
    base_url = base_url.rstrip("/")
    for connection in _connections(provider):
        if connection.base_url.rstrip("/") == base_url:
            return connection
    return _settings_connection(provider, base_url)


def _settings_connection(provider: str, base_url: str) -> Connection:
    """The settings' instance as a Connection, created once (from settings, never from a header)."""
    label = "GitHub" if provider == Provider.GITHUB else "GitLab"
    try:
        with transaction.atomic():
            connection, _ = Connection.objects.get_or_create(
                provider=provider, base_url=base_url, defaults={"name": f"{label} (from settings)"}
            )
    except IntegrityError:
        # Another request created it at the same moment, or the name is taken by a connection elsewhere.
        connection = Connection.objects.filter(provider=provider, base_url=base_url).first() or (
            Connection.objects.create(provider=provider, base_url=base_url, name=f"{label} ({base_url})")
        )
    connections_forget()
    return connection


def instance_host(header: str) -> str:
    """The host an instance header names: GitHub sends a bare host, GitLab a URL. A malformed value names none."""
    value = header.strip()
    if not value:
        return ""
    return _hostname(value if "://" in value else f"https://{value}")


def _hostname(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""  # not a URL (an unclosed IPv6 bracket, say): it names no instance


def connection_secrets_rotate() -> int:
    """Re-encrypt every stored connection secret with the first of CONNECTION_SECRET_KEYS; returns how many
    connections were rewritten. Run after putting a new key first, before removing the old one."""
    rotated = 0
    with transaction.atomic():
        with_secrets = Connection.objects.select_for_update().exclude(
            api_token="", webhook_secret="", app_private_key=""
        )
        for connection in with_secrets:
            # Read decrypted with any key, written encrypted with the first.
            Connection.objects.filter(pk=connection.pk).update(
                api_token=connection.api_token,
                webhook_secret=connection.webhook_secret,
                app_private_key=connection.app_private_key,
            )
            rotated += 1
        # GitHub App installation tokens are secrets too (for their hour).
        for installation in AppInstallation.objects.select_for_update().exclude(token=""):
            AppInstallation.objects.filter(pk=installation.pk).update(token=installation.token)
    return rotated
