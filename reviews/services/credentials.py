"""How Tandem authenticates to the VCS for a repository: the connection's API token, the instance-wide token from
the settings, or, for a GitHub App, the installation token of the installation that covers the repository.

A GitHub App connection looks up each repository's installation once (`GET /repos/{owner}/{repo}/installation`,
kept on the Repository), and mints an installation token (`POST /app/installations/{id}/access_tokens`, with a JWT
signed by the App's private key) only when the stored one is missing or within REFRESH_BEFORE_EXPIRY of its expiry:
never per request. The token is kept on the installation row, encrypted like the other secrets, so every worker
shares it. Whatever stands in the way (no credentials, the App not installed, an installation suspended or
uninstalled, a key GitHub refuses) raises NoAccess with the reason, which the callers record where the verdict,
the sync run or the admin shows it: an unknown fact is "not yet", never "yes".
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reviews.integrations import github_api
from reviews.integrations.github_app import GitHubApp
from reviews.integrations.records import InstallationRecord, InstallationTokenRecord
from reviews.integrations.vcs import VcsClient, VcsError, VcsRateLimited, VcsUnavailable, open_client
from reviews.models import AppInstallation, Connection, Provider, Repository

_T = TypeVar("_T")

# A stored installation token is minted again when less than this is left of its hour: a call started with it
# does not meet its expiry half-way.
REFRESH_BEFORE_EXPIRY = dt.timedelta(minutes=5)


class NoAccess(VcsError):
    """Tandem cannot call the VCS for this repository now; the message says why, in words a person can act on."""


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key: str
    source: str  # where they come from, for the reasons Tandem gives


# --- which credentials a connection has ---------------------------------------------------------------------------


def connection_token(connection: Connection) -> str:
    """The connection's API token, or the instance-wide one from the settings."""
    if connection.api_token:
        return str(connection.api_token)
    return str(settings.GITHUB_TOKEN if connection.provider == Provider.GITHUB else settings.GITLAB_TOKEN)


def connection_app(connection: Connection) -> AppCredentials | None:
    """The GitHub App a connection acts as, if any: its own, or, for the instance-wide connection with no
    credentials of its own, the settings' (GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY or _PATH)."""
    if connection.provider != Provider.GITHUB:
        return None
    if connection.app_id:
        return AppCredentials(connection.app_id, connection.app_private_key, f"the connection {connection}")
    if connection.api_token or not settings.GITHUB_APP_ID:
        return None
    if connection.base_url.rstrip("/") != settings.GITHUB_API_URL.rstrip("/"):
        return None  # an App belongs to one GitHub instance: the settings name the instance-wide one
    key, unreadable = settings_private_key()
    return AppCredentials(settings.GITHUB_APP_ID, key, f"GITHUB_APP_ID{unreadable}")


def settings_private_key() -> tuple[str, str]:
    """The settings' App key, and why its file could not be read ("" when it could, or when there is none)."""
    if settings.GITHUB_APP_PRIVATE_KEY:
        return str(settings.GITHUB_APP_PRIVATE_KEY), ""
    path = str(settings.GITHUB_APP_PRIVATE_KEY_PATH)
    if not path:
        return "", ""
    try:
        return _key_file(path), ""
    except OSError as error:  # not cached: a secret mounted later, or a permission fixed, is read on the next pass
        return "", f", whose key file {path} cannot be read: {error.strerror or error}"


@functools.lru_cache(maxsize=4)
def _key_file(path: str) -> str:
    return Path(path).read_text()


def connection_has_credentials(connection: Connection) -> bool:
    return connection_app(connection) is not None or bool(connection_token(connection))


# --- what stands in the way, as far as Tandem knows without asking ------------------------------------------------


def repository_access_problem(repository: Repository) -> str:
    """Why Tandem cannot call the VCS for this repository, from what it knows (no call made); "" when it may try.
    A try may still fail (a key GitHub refuses): that raises NoAccess with the reason."""
    connection = repository.connection
    if connection_app(connection) is None:
        return "" if connection_token(connection) else f"Tandem has no API token for {connection}"
    if repository.access_error:
        return repository.access_error
    installation = repository.app_installation
    if installation is not None:
        return installation_problem(installation) or restriction_problem(connection, installation)
    return ""


def installation_problem(installation: AppInstallation) -> str:
    account = installation.account_login or f"installation {installation.installation_id}"
    if installation.deleted_at is not None:
        return f"The GitHub App was uninstalled from {account} on {installation.deleted_at:%Y-%m-%d %H:%M} UTC."
    if installation.suspended_at is not None:
        by = f" by {installation.suspended_by}" if installation.suspended_by else ""
        return (
            f"The GitHub App's installation on {account} was suspended{by} on "
            f"{installation.suspended_at:%Y-%m-%d %H:%M} UTC: Tandem neither syncs nor posts until it is unsuspended."
        )
    return ""


def restriction_problem(connection: Connection, installation: AppInstallation | InstallationRecord) -> str:
    """Why a connection restricted to one installation or account does not use this one; "" when it does."""
    account = installation.account_login or "an account"
    if connection.app_installation_id and installation.installation_id != connection.app_installation_id:
        return (
            f"The GitHub App's installation {installation.installation_id} on {account} is not installation "
            f"{connection.app_installation_id}, the only one {connection} uses."
        )
    if connection.app_account and installation.account_login.lower() != connection.app_account.lower():
        return (
            f"The GitHub App's installation on {account} is not on {connection.app_account}, "
            f"the only account {connection} uses."
        )
    return ""


# --- clients ------------------------------------------------------------------------------------------------------


def vcs_client_for(repository: Repository, *, etags: dict[str, str] | None = None) -> VcsClient:
    """A client for the repository's VCS with the credentials that apply. NoAccess when there are none; a GitHub
    App's installation token is had before the client is handed over, and renewed under a long-running client."""
    connection = repository.connection
    app = connection_app(connection)
    if app is None:
        token = connection_token(connection)
        if not token:
            raise NoAccess(f"Tandem has no API token for {connection}")
        return open_client(connection.provider, connection.base_url, token, etags=etags)
    installation = repository_installation(repository=repository, app=app)
    source = InstallationTokenSource(installation=installation, app=app)
    source()
    return open_client(connection.provider, connection.base_url, source, etags=etags)


def vcs_client_for_path(connection: Connection, full_path: str) -> tuple[VcsClient, AppInstallation | None]:
    """A client for a repository Tandem does not know yet (a sync command names it by path), and the GitHub App
    installation that covers it, to keep on the repository once it is stored."""
    app = connection_app(connection)
    if app is None:
        return vcs_client_for(Repository(connection=connection, full_path=full_path)), None
    installation = _installation_lookup(connection, app, full_path)
    problem = installation_problem(installation) or restriction_problem(connection, installation)
    if problem:
        raise NoAccess(problem)
    source = InstallationTokenSource(installation=installation, app=app)
    source()
    return open_client(connection.provider, connection.base_url, source), installation


class InstallationTokenSource:
    """The installation token for a client's every request: kept in memory, and asked of `installation_token`
    (the stored one, or a new one minted) only when it nears its expiry."""

    def __init__(self, *, installation: AppInstallation, app: AppCredentials) -> None:
        self._installation = installation
        self._app = app
        self._token = ""
        self._expires_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def __call__(self) -> str:
        if self._expires_at - timezone.now() <= REFRESH_BEFORE_EXPIRY:
            self._token, self._expires_at = installation_token(installation=self._installation, app=self._app)
        return self._token


# --- installations and their tokens -------------------------------------------------------------------------------


def repository_installation(*, repository: Repository, app: AppCredentials) -> AppInstallation:
    """The installation that covers the repository: the one kept on it, else looked up once and kept."""
    connection = repository.connection
    installation = repository.app_installation
    if installation is None or installation.deleted_at is not None:
        try:
            installation = _installation_lookup(connection, app, repository.full_path)
        except NoAccess as error:
            if repository.pk is not None and isinstance(error.__cause__, github_api.GitHubNotFound):
                Repository.objects.filter(pk=repository.pk).update(access_error=str(error))
                repository.access_error = str(error)
            raise
        if repository.pk is not None:
            problem = restriction_problem(connection, installation)
            Repository.objects.filter(pk=repository.pk).update(app_installation=installation, access_error=problem)
            repository.app_installation, repository.access_error = installation, problem
    problem = installation_problem(installation) or restriction_problem(connection, installation)
    if problem:
        raise NoAccess(problem)
    if repository.access_error and repository.pk is not None:
        # What stood in the way is gone (a restriction lifted in the admin): the repository is reachable again.
        Repository.objects.filter(pk=repository.pk).update(access_error="")
        repository.access_error = ""
    return installation


def _installation_lookup(connection: Connection, app: AppCredentials, full_path: str) -> AppInstallation:
    try:
        record = _app_call(connection, app, lambda client: client.repository_installation(full_path))
    except NoAccess as error:
        if isinstance(error.__cause__, github_api.GitHubNotFound):
            raise NoAccess(f"The GitHub App is not installed on {full_path}.") from error.__cause__
        raise
    return installation_upsert(connection=connection, record=record)


def installation_upsert(*, connection: Connection, record: InstallationRecord) -> AppInstallation:
    """The installation as GitHub showed it now (an API answer or a webhook): it exists, so it is not deleted."""
    installation, _ = AppInstallation.objects.update_or_create(
        connection=connection,
        installation_id=record.installation_id,
        defaults={
            "account_login": record.account_login,
            "account_type": record.account_type,
            "repository_selection": record.repository_selection,
            "permissions": record.permissions,
            "events": record.events,
            "suspended_at": record.suspended_at,
            "suspended_by": record.suspended_by if record.suspended_at else "",
            "deleted_at": None,
            "updated_at": timezone.now(),
        },
    )
    return installation


def installation_token(
    *, installation: AppInstallation, app: AppCredentials, now: dt.datetime | None = None
) -> tuple[str, dt.datetime]:
    """The installation's token and its expiry: the stored one while it has more than REFRESH_BEFORE_EXPIRY
    left, else a new one, minted once however many workers ask at the same moment (the row is locked)."""
    now = now or timezone.now()
    if _fresh(installation, now):
        return installation.token, installation.token_expires_at  # type: ignore[return-value]
    minted: InstallationTokenRecord | None = None
    failure: VcsError | None = None
    with transaction.atomic():
        row = AppInstallation.objects.select_for_update().get(pk=installation.pk)
        if not _fresh(row, now):
            problem = installation_problem(row)
            if problem:
                raise NoAccess(problem)
            try:
                minted = _app_call(
                    installation.connection, app, lambda client: client.access_token(row.installation_id)
                )
            except VcsError as error:
                failure = error
                row.token_error = f"{timezone.now():%Y-%m-%d %H:%M} UTC: {error}"[:2000]
                row.save(update_fields=["token_error"])
            else:
                row.token, row.token_expires_at = minted.token, minted.expires_at
                row.tokens_minted += 1
                row.token_error = ""
                row.save(update_fields=["token", "token_expires_at", "tokens_minted", "token_error"])
    if failure is not None:
        raise failure
    installation.token, installation.token_expires_at = row.token, row.token_expires_at
    installation.tokens_minted, installation.token_error = row.tokens_minted, row.token_error
    return row.token, row.token_expires_at  # type: ignore[return-value]


def installation_token_forget(*, installation: AppInstallation) -> None:
    """Drop the stored token (the installation was suspended or uninstalled: GitHub revoked it)."""
    AppInstallation.objects.filter(pk=installation.pk).update(token="", token_expires_at=None)
    installation.token, installation.token_expires_at = "", None


def _fresh(installation: AppInstallation, now: dt.datetime) -> bool:
    expires_at = installation.token_expires_at
    return bool(installation.token) and expires_at is not None and expires_at - now > REFRESH_BEFORE_EXPIRY


def _app_call(connection: Connection, app: AppCredentials, call: Callable[[GitHubApp], _T]) -> _T:
    """One call as the App, its failures as the VcsError kinds callers act on: rate limited and unavailable are
    retried; anything else is NoAccess with the reason (its cause kept)."""
    try:
        with GitHubApp(connection.base_url, app.app_id, app.private_key) as client:
            return call(client)
    except github_api.RateLimited as error:
        raise VcsRateLimited(error.retry_after_seconds, f"GitHub App {app.app_id}: {error}") from error
    except github_api.GitHubUnavailable as error:
        raise VcsUnavailable(f"GitHub App {app.app_id}: {error}") from error
    except github_api.GitHubError as error:
        raise NoAccess(f"GitHub App {app.app_id} (from {app.source}) was refused: {error}") from error
