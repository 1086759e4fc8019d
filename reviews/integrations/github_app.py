"""A GitHub App's own calls, over PyGithub: `Auth.AppAuth` signs a short-lived JWT (RS256) with the App's private
key, and `GithubIntegration` uses it to ask which installation covers a repository and to mint that installation's
access tokens. Everything else Tandem asks GitHub goes through `GitHubClient` with an installation token.

Plain records out, GitHubError and its kinds (github_api) for failures; no ORM.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import jwt
import requests
from github import Auth, Consts, GithubException, GithubIntegration
from github.Requester import Requester

from reviews.instruments import VCS_API_CALLS
from reviews.integrations.endpoints import endpoint_template
from reviews.integrations.github import parse_installation
from reviews.integrations.github_api import (
    GitHubError,
    GitHubNotFound,
    GitHubUnavailable,
    RateLimited,
    _owner_and_name,
    _retry_after,
)
from reviews.integrations.http_pool import pygithub_on_process_pool
from reviews.integrations.records import InstallationRecord, InstallationTokenRecord, PayloadError

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
        self._requester: Requester = self._integration.requester
        pygithub_on_process_pool(self._requester)

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
        found = self._request("GET", f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/installation")
        return _installation_record(found, "installation")

    def installation(self, installation_id: int) -> InstallationRecord:
        """`GET /app/installations/{id}`."""
        return _installation_record(self._request("GET", f"/app/installations/{int(installation_id)}"), "installation")

    def access_token(self, installation_id: int) -> InstallationTokenRecord:
        """`POST /app/installations/{id}/access_tokens`: a new installation token, valid for an hour."""
        minted = self._request("POST", f"/app/installations/{int(installation_id)}/access_tokens", {"permissions": {}})
        return _token_record(minted)

    def _request(self, method: str, path: str, body: object = None) -> object:
        """One call as the App (its JWT signed on the way), counted with every other call to GitHub by endpoint
        template and status. Not in the rate-limit gauge: the App's own budget is not the installation's."""
        what = f"{method} {path}"
        with _translated(what):
            try:
                status, headers, text = self._requester.requestJson(
                    method, path, headers={"Accept": Consts.mediaTypeIntegrationPreview}, input=body
                )
            except requests.RequestException:
                VCS_API_CALLS.labels("github", method, endpoint_template(path), "unreachable").inc()
                raise
            VCS_API_CALLS.labels("github", method, endpoint_template(path), str(status)).inc()
            self.api_calls += 1
            data = _json(text)
            if status >= 300:
                raise Requester.createException(status, headers, data if isinstance(data, dict) else {})
        return data


def _json(text: str) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _token_record(data: object) -> InstallationTokenRecord:
    minted = data if isinstance(data, dict) else {}
    token, expires_at = minted.get("token"), _moment(minted.get("expires_at"))
    if not isinstance(token, str) or not token or expires_at is None:
        raise GitHubError("GitHub answered the token request without a token and its expiry")
    permissions = minted.get("permissions")
    permissions = permissions if isinstance(permissions, dict) else {}
    return InstallationTokenRecord(token, expires_at, {str(k): str(v) for k, v in permissions.items()})


def _moment(value: object) -> dt.datetime | None:
    """GitHub's ISO 8601 timestamp (`2016-07-11T22:14:10Z`), as UTC when it names no offset."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


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
