"""The GitHub App side of the fake GitHub: JWT authentication, installations, installation tokens, check runs.

As GitHub documents it (docs.github.com, "Authenticating as a GitHub App", "Create an installation access token for
an app", the checks API; shapes from the @octokit/openapi examples):

- `Authorization: Bearer <JWT>` is the App itself: RS256, signed with the App's private key, verified here with its
  public key; `iss` is the App id, `iat` not in the future (60 s of drift allowed), `exp` in the future and at most
  ten minutes on. Only the App's own endpoints accept it: `GET /app`, `GET /app/installations/{id}`,
  `GET /repos/{owner}/{repo}/installation`, `POST /app/installations/{id}/access_tokens`.
- An installation token (`ghs_…`, an hour unless `token_lifetime` says otherwise) reaches the repositories its
  installation covers (others are 404) until it expires; a suspended installation's tokens are refused, and so is
  minting one.
- Check runs are created and updated with an installation token only ("You must authenticate via a GitHub App.").

Call these with the fake's lock held (the fake's request handling does).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub

JSON = dict[str, Any]

DEFAULT_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "deployments": "read",
    "metadata": "read",
    "pull_requests": "read",
    "statuses": "write",
}
JWT_MAX_LIFETIME = 600  # GitHub: "no more than 10 minutes into the future"
CLOCK_DRIFT = 60
CHECK_STATUSES = frozenset({"queued", "in_progress", "completed", "waiting", "requested", "pending"})
CHECK_CONCLUSIONS = frozenset(
    {"action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"}
)
SUMMARY_LIMIT = 65535
EXP_IN_THE_PAST = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion "
    "expires"
)


@dataclass
class App:
    id: int
    slug: str
    public_key_pem: str


@dataclass
class Installation:
    id: int
    account: str
    account_type: str
    repositories: set[str] | None  # None: every repository of the account
    permissions: dict[str, str]
    events: list[str]
    created_at: dt.datetime
    suspended_at: dt.datetime | None = None
    suspended_by: str | None = None

    def covers(self, full_name: str) -> bool:
        if self.repositories is None:
            return full_name.split("/", 1)[0].lower() == self.account.lower()
        return full_name.lower() in {name.lower() for name in self.repositories}


@dataclass
class MintedToken:
    installation_id: int
    token: str
    expires_at: float  # time.time()


@dataclass(frozen=True)
class Principal:
    """Who a request authenticates as: the user behind the personal token, the App, or one installation."""

    kind: str  # "user", "app" or "installation"
    installation_id: int | None = None


USER = Principal("user")


@dataclass
class AppState:
    app: App | None = None
    installations: dict[int, Installation] = field(default_factory=dict)
    tokens: dict[str, MintedToken] = field(default_factory=dict)
    minted: list[MintedToken] = field(default_factory=list)
    token_lifetime: float = 3600.0
    check_runs: dict[int, JSON] = field(default_factory=dict)
    check_run_requests: list[JSON] = field(default_factory=list)  # each create or update, as sent
    jwt_refusals: list[str] = field(default_factory=list)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def authenticate(fake: FakeGitHub, header: str | None) -> Principal:
    """The principal a request's Authorization header names; Refused (401) otherwise."""
    if not header:
        raise Refused(401, "Requires authentication")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() not in ("token", "bearer"):
        raise Refused(401, "Bad credentials")
    if credential == fake.token:
        return Principal("user")
    state = fake.app_state
    minted = state.tokens.get(credential)
    if minted is not None:
        if minted.expires_at <= time.time():
            raise Refused(401, "Bad credentials")
        return Principal("installation", minted.installation_id)
    if credential.count(".") == 2:
        return _app_principal(state, credential)
    raise Refused(401, "Bad credentials")


def _app_principal(state: AppState, credential: str) -> Principal:
    app = state.app
    if app is None:
        raise Refused(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(
            credential,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        return _refuse_jwt(state, EXP_IN_THE_PAST)
    except jwt.PyJWTError:
        return _refuse_jwt(state, "A JSON web token could not be decoded")
    now = time.time()
    if not isinstance(claims["iat"], int) or claims["iat"] > now + CLOCK_DRIFT:
        return _refuse_jwt(
            state, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        )
    if claims["exp"] > now + JWT_MAX_LIFETIME + CLOCK_DRIFT:
        return _refuse_jwt(state, "'Expiration time' claim ('exp') is too far in the future")
    if str(claims["iss"]) != str(app.id):
        return _refuse_jwt(state, f"Integration not found (iss {claims['iss']!r})")
    return Principal("app")


def _refuse_jwt(state: AppState, message: str) -> Principal:
    state.jwt_refusals.append(message)
    raise Refused(401, message)


def authorize(fake: FakeGitHub, principal: Principal, method: str, path: str) -> None:
    """Refused when the principal may not make this request: the App only its own endpoints, an installation
    only the repositories it covers (404 for others, as GitHub hides them), check runs only an installation."""
    app_route = (
        path == "/app" or path.startswith("/app/") or (path.startswith("/repos/") and path.endswith("/installation"))
    )
    if app_route:
        if principal.kind != "app":
            raise Refused(401, "A JSON web token could not be decoded")
        return
    if principal.kind == "app":
        raise Refused(401, "Bad credentials")
    if ("/check-runs" in path or "/deployment_protection_rule" in path) and principal.kind != "installation":
        raise Refused(403, "You must authenticate via a GitHub App.")
    if principal.kind != "installation":
        return
    installation = fake.app_state.installations.get(principal.installation_id or 0)
    if installation is None:
        raise Refused(401, "Bad credentials")
    if installation.suspended_at is not None:
        raise Refused(403, "This installation has been suspended")
    if path.startswith("/repos/"):
        parts = path.split("/")
        if len(parts) >= 4 and not installation.covers(f"{parts[2]}/{parts[3]}"):
            raise Refused(404, "Not Found")


# --- the App's endpoints -------------------------------------------------------------------------------------------


def installation_json(fake: FakeGitHub, installation: Installation) -> JSON:
    app = fake.app_state.app
    assert app is not None
    account = dict(fake._user_json(installation.account) or {})
    account["type"] = installation.account_type
    suspended_by = fake._user_json(installation.suspended_by) if installation.suspended_by else None
    return {
        "id": installation.id,
        "account": account,
        "repository_selection": "all" if installation.repositories is None else "selected",
        "access_tokens_url": f"{fake.url}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{fake.url}/installation/repositories",
        "html_url": f"{fake.web_url}/organizations/{installation.account}/settings/installations/{installation.id}",
        "app_id": app.id,
        "app_slug": app.slug,
        "target_id": account.get("id"),
        "target_type": installation.account_type,
        "permissions": dict(installation.permissions),
        "events": list(installation.events),
        "created_at": _ts(installation.created_at),
        "updated_at": _ts(installation.created_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": suspended_by,
        "suspended_at": _ts(installation.suspended_at),
    }


def get_app(fake: FakeGitHub) -> tuple[int, JSON]:
    app = fake.app_state.app
    assert app is not None
    owner = fake._user_json("octocat")
    return 200, {
        "id": app.id,
        "slug": app.slug,
        "node_id": f"MDM6QXBwe{app.id}",
        "owner": owner,
        "name": app.slug.replace("-", " ").title(),
        "description": "",
        "external_url": "https://tandem.example.com",
        "html_url": f"{fake.web_url}/apps/{app.slug}",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "permissions": DEFAULT_PERMISSIONS,
        "events": [],
        "installations_count": len(fake.app_state.installations),
    }


def get_installation(fake: FakeGitHub, installation_id: str) -> tuple[int, JSON]:
    installation = fake.app_state.installations.get(int(installation_id))
    if installation is None:
        return 404, _error("Not Found", 404)
    return 200, installation_json(fake, installation)


def get_repo_installation(fake: FakeGitHub, owner: str, name: str) -> tuple[int, JSON]:
    full_name = f"{owner}/{name}"
    if full_name not in fake._repos:
        return 404, _error("Not Found", 404)
    for installation in fake.app_state.installations.values():
        if installation.covers(full_name):
            return 200, installation_json(fake, installation)
    return 404, _error("Not Found", 404)


def mint_token(fake: FakeGitHub, installation_id: str, body: bytes) -> tuple[int, JSON]:
    state = fake.app_state
    installation = state.installations.get(int(installation_id))
    if installation is None:
        return 404, _error("Not Found", 404)
    if installation.suspended_at is not None:
        return 403, _error("This installation has been suspended", 403)
    try:
        json.loads(body or b"{}")
    except ValueError:
        return 400, _error("Problems parsing JSON", 400)
    token = MintedToken(installation.id, "ghs_" + secrets.token_hex(18), time.time() + state.token_lifetime)
    state.tokens[token.token] = token
    state.minted.append(token)
    payload: JSON = {
        "token": token.token,
        "expires_at": _ts(dt.datetime.fromtimestamp(token.expires_at, tz=dt.UTC)),
        "permissions": dict(installation.permissions),
        "repository_selection": "all" if installation.repositories is None else "selected",
    }
    return 201, payload


# --- check runs ----------------------------------------------------------------------------------------------------


def create_check_run(fake: FakeGitHub, owner: str, name: str, body: bytes) -> tuple[int, JSON]:
    data = _body(body)
    if isinstance(data, tuple):
        return data
    head_sha = data.get("head_sha")
    if not isinstance(data.get("name"), str) or not data["name"] or not isinstance(head_sha, str) or not head_sha:
        return 422, _invalid("name and head_sha are required")
    problem = _check_run_problem(data)
    if problem:
        return 422, _invalid(problem)
    state = fake.app_state
    check_run_id = fake._new_id()
    now = fake._tick()
    run: JSON = {
        "id": check_run_id,
        "head_sha": head_sha,
        "name": data["name"],
        "status": data.get("status", "queued"),
        "conclusion": data.get("conclusion"),
        "details_url": data.get("details_url"),
        "external_id": data.get("external_id", ""),
        "started_at": _ts(now),
        "completed_at": _ts(now) if data.get("status") == "completed" or data.get("conclusion") else None,
        "output": _output(data.get("output")),
    }
    state.check_runs[check_run_id] = run
    state.check_run_requests.append({"method": "POST", "repo": f"{owner}/{name}", **data})
    return 201, check_run_json(fake, owner, name, run)


def update_check_run(fake: FakeGitHub, owner: str, name: str, check_run_id: str, body: bytes) -> tuple[int, JSON]:
    data = _body(body)
    if isinstance(data, tuple):
        return data
    state = fake.app_state
    run = state.check_runs.get(int(check_run_id))
    if run is None:
        return 404, _error("Not Found", 404)
    problem = _check_run_problem(data)
    if problem:
        return 422, _invalid(problem)
    for key in ("name", "details_url", "external_id", "status", "conclusion"):
        if key in data:
            run[key] = data[key]
    if "output" in data:
        run["output"] = _output(data["output"])
    if run["status"] == "completed" or run.get("conclusion"):
        run["status"] = "completed"
        run["completed_at"] = _ts(fake._tick())
    state.check_run_requests.append({"method": "PATCH", "repo": f"{owner}/{name}", "id": run["id"], **data})
    return 200, check_run_json(fake, owner, name, run)


def check_run_json(fake: FakeGitHub, owner: str, name: str, run: JSON) -> JSON:
    api = f"{fake.url}/repos/{owner}/{name}/check-runs/{run['id']}"
    output = run["output"]
    return {
        **run,
        "node_id": f"CR_{run['id']}",
        "url": api,
        "html_url": f"{fake.web_url}/{owner}/{name}/runs/{run['id']}",
        "output": {**output, "annotations_count": 0, "annotations_url": f"{api}/annotations"},
        "check_suite": {"id": 5},
        "app": get_app(fake)[1],
        "pull_requests": [],
    }


def _check_run_problem(data: JSON) -> str:
    status = data.get("status")
    if status is not None and status not in CHECK_STATUSES:
        return f"status {status!r} is not a check run status"
    conclusion = data.get("conclusion")
    if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
        return f"conclusion {conclusion!r} is not a check run conclusion"
    if status == "completed" and conclusion is None:
        return "conclusion is required when status is completed"
    output = data.get("output")
    if output is not None:
        if (
            not isinstance(output, dict)
            or not isinstance(output.get("title"), str)
            or not isinstance(output.get("summary"), str)
        ):
            return "output needs a title and a summary"
        if len(output["summary"]) > SUMMARY_LIMIT:
            return f"output.summary is longer than {SUMMARY_LIMIT} characters"
    return ""


def _output(output: Any) -> JSON:
    if not isinstance(output, dict):
        return {"title": None, "summary": None, "text": None}
    return {"title": output.get("title"), "summary": output.get("summary"), "text": output.get("text")}


def _body(body: bytes) -> JSON | tuple[int, JSON]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return 400, _error("Problems parsing JSON", 400)
    if not isinstance(data, dict):
        return 400, _error("Problems parsing JSON", 400)
    return data


def _error(message: str, status: int) -> JSON:
    return {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}


def _invalid(message: str) -> JSON:
    return {**_error("Validation Failed", 422), "errors": [message]}


def _ts(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
