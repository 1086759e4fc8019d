"""Which Connection a webhook belongs to, answered from memory on the request path.

Also: re-encrypting stored secrets when the key rotates.

Webhook views verify a signature against every connection's secret and map an instance header to a configured
connection. Reading the connections on every request would cost a query per webhook; they change rarely, so each
process keeps them for a few seconds and forgets them at once when a Connection is saved or deleted in this process.
Another process learns of a change (a lead rotating a webhook secret) thus:
- a request signed with a new secret is refused for at most REFRESH_ON_MISS_SECONDS: a request that no cached secret
  verifies has the connections read again before it is refused (at most that often per process, so senders of bad
  signatures cannot make every request a query);
- a request signed with the old secret is accepted for at most CACHE_SECONDS, the age of the copy.
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
REFRESH_ON_MISS_SECONDS = 1.0


@dataclass(frozen=True)
class _Directory:
    loaded_at: float
    by_provider: dict[str, tuple[Connection, ...]]


_lock = threading.Lock()
_directory: _Directory | None = None
# Bumped by every forget: a read that ran across a change is not kept.
_generation = 0
_clock = time.monotonic


def connections_forget() -> None:
    """Drop the cached connections (a Connection was saved or deleted)."""
    global _directory, _generation
    with _lock:
        _directory = None
        _generation += 1


def _connections(provider: str, *, fresh: bool = False) -> tuple[Connection, ...]:
    directory = _directory
    if directory is None or _stale(directory, fresh=fresh):
        directory = _load()
    return directory.by_provider.get(provider, ())


def _stale(directory: _Directory, *, fresh: bool) -> bool:
    age = _clock() - directory.loaded_at
    return age > CACHE_SECONDS or (fresh and age > REFRESH_ON_MISS_SECONDS)


def _load() -> _Directory:
    global _directory
    generation, loaded_at = _generation, _clock()  # before the read: the copy is as old as the read's start
    by_provider: dict[str, list[Connection]] = {}
    for connection in Connection.objects.order_by("pk"):
        by_provider.setdefault(connection.provider, []).append(connection)
    directory = _Directory(loaded_at, {key: tuple(value) for key, value in by_provider.items()})
    with _lock:
        if generation == _generation:
            _directory = directory
    return directory


def connections_with_webhook_secret(*, provider: str, fresh: bool = False) -> tuple[Connection, ...]:
    """Connections of a provider that have a webhook secret of their own, oldest first. `fresh`: read again unless
    read within REFRESH_ON_MISS_SECONDS (a request none of the cached secrets verifies)."""
    return tuple(connection for connection in _connections(provider, fresh=fresh) if connection.webhook_secret)


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
