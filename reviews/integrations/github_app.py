"""A GitHub App's own calls, over PyGithub: `Auth.AppAuth` signs a short-lived JWT (RS256) with the App's private
key, and `GithubIntegration` uses it to ask which installation covers a repository and to mint that installation's
access tokens. Everything else Tandem asks GitHub goes through `GitHubClient` with an installation token.

Plain records out, GitHubError and its kinds (github_api) for failures; no ORM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import jwt
import requests
from github import Auth, GithubException, GithubIntegration
from github.Requester import Requester

from reviews.integrations.github import parse_installation
from reviews.integrations.github_api import (
    GitHubError,
    GitHubNotFound,
    GitHubUnavailable,
    RateLimited,
    _owner_and_name,
    _retry_after,
)
from reviews.integrations.records import InstallationRecord, InstallationTokenRecord, PayloadError

_T = TypeVar("_T")
# GitHub's advice when a secondary rate limit names no Retry-After.
_SECONDARY_LIMIT_WAIT = 60.0


class GitHubApp:
    """One GitHub App on one GitHub (or GitHub Enterprise) instance."""

    def __init__(self, base_url: str, app_id: str, private_key: str, *, timeout: int = 30) -> None:
        if not app_id.strip().isdigit():
            raise GitHubError(f"a GitHub App id is a number, not {app_id[:20]!r}")
        if not private_key.strip():
            raise GitHubError("the GitHub App has no private key")
        self.app_id = app_id.strip()
        self.api_calls = 0
        self._integration = GithubIntegration(
            base_url=base_url.rstrip("/"),
            auth=Auth.AppAuth(int(self.app_id), private_key),
            timeout=timeout,
            user_agent="Tandem",
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    def close(self) -> None:
        self._integration.close()

    def __enter__(self) -> GitHubApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def repository_installation(self, full_path: str) -> InstallationRecord:
        """`GET /repos/{owner}/{repo}/installation`: the installation that covers the repository. GitHubNotFound
        when the App is not installed on it."""
        owner, name = _owner_and_name(full_path)
        found = self._call(
            f"GET /repos/{full_path}/installation", lambda: self._integration.get_repo_installation(owner, name)
        )
        return _installation_record(found.raw_data, "installation")

    def installation(self, installation_id: int) -> InstallationRecord:
        """`GET /app/installations/{id}`."""
        found = self._call(
            f"GET /app/installations/{installation_id}",
            lambda: self._integration.get_app_installation(installation_id),
        )
        return _installation_record(found.raw_data, "installation")

    def access_token(self, installation_id: int) -> InstallationTokenRecord:
        """`POST /app/installations/{id}/access_tokens`: a new installation token, valid for an hour."""
        minted = self._call(
            f"POST /app/installations/{installation_id}/access_tokens",
            lambda: self._integration.get_access_token(installation_id),
        )
        token, expires_at = minted.token, minted.expires_at
        if not isinstance(token, str) or not token or not isinstance(expires_at, dt.datetime):
            raise GitHubError("GitHub answered the token request without a token and its expiry")
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=dt.UTC)
        permissions = minted.permissions if isinstance(minted.permissions, dict) else {}
        return InstallationTokenRecord(token, expires_at, {str(k): str(v) for k, v in permissions.items()})

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        with _translated(what):
            result = call()
        self.api_calls += 1
        return result


def _installation_record(data: object, path: str) -> InstallationRecord:
    try:
        return parse_installation(data, path)
    except PayloadError as error:
        raise GitHubError(f"GitHub answered with an installation Tandem cannot read: {error}") from error


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """PyGithub's and PyJWT's failures as GitHubError kinds: a key that cannot sign, credentials GitHub refuses,
    a missing installation, a rate limit, an outage."""
    try:
        yield
    except requests.RequestException as exc:
        raise GitHubUnavailable(f"{what}: {exc}") from exc
    except GithubException as exc:
        raise _error(what, exc) from exc
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        # Signing happens on the request: a private key that is not an RSA key in PEM fails here.
        raise GitHubError(f"the GitHub App's private key cannot sign a JWT: {exc}") from exc


def _error(what: str, exc: GithubException) -> GitHubError:
    message = exc.message if isinstance(exc.message, str) and exc.message else _data_message(exc.data)
    described = f"{what}: {exc.status} {message}".strip()
    headers = {str(key).lower(): value for key, value in (exc.headers or {}).items()}
    retry_after = _retry_after(headers.get("retry-after"))
    if exc.status == 429 or (exc.status == 403 and (retry_after is not None or Requester.isRateLimitError(message))):
        return RateLimited(max(retry_after or _SECONDARY_LIMIT_WAIT, 1.0), described, status=exc.status)
    if exc.status >= 500:
        return GitHubUnavailable(described, status=exc.status)
    if exc.status == 404:
        return GitHubNotFound(described, status=exc.status)
    return GitHubError(described, status=exc.status)


def _data_message(data: object) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return ""
