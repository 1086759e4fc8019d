"""Tandem as a GitHub App, end to end against the fake GitHub: PyGithub signs the App's JWT (RS256) with the
connection's private key, the fake verifies it with the App's public key, and the installation tokens it mints are
what every other call uses."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.db import connection as db
from django.db import connections
from django.utils import timezone
from prometheus_client import REGISTRY

from reviews.integrations.github import _HANDLERS
from reviews.integrations.vcs import VcsUnavailable
from reviews.models import (
    AppInstallation,
    AuditEvent,
    Connection,
    PolicyEvaluation,
    PullRequest,
    Repository,
    SyncRun,
    WebhookDelivery,
)
from reviews.policy.markdown import md
from reviews.selectors.verdicts import verdicts_not_accepted
from reviews.services.credentials import REFRESH_BEFORE_EXPIRY, NoAccess, vcs_client_for
from reviews.services.policies import policy_save, pull_request_evaluate
from reviews.services.reporting import evaluation_report
from reviews.services.sync import repositories_due_for_sync, repository_for_sync, repository_sync
from reviews.tasks import sync_repository
from tests.factories import TeamFactory
from tests.fakes.github import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "github"
APP_FIXTURES = FIXTURES / "app"  # the App's own events name no repository
SECRET = "app webhook secret"
APP_ID = 4242
REPO = "octocat/Hello-World"

pytestmark = pytest.mark.django_db


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github(fake_github, app_key):
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake_github.register_app(app_id=APP_ID, public_key_pem=public.decode())
    return fake_github


@pytest.fixture
def app_connection(github, app_key):
    return Connection.objects.create(
        provider="github",
        name="GitHub (App)",
        base_url=github.url,
        app_id=str(APP_ID),
        app_private_key=_pem(app_key),
        webhook_secret=SECRET,
    )


def fixture(name: str) -> dict:
    folder = APP_FIXTURES if name.startswith("installation") else FIXTURES
    return json.loads((folder / f"{name}.json").read_text())


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """Post a webhook signed with the App's webhook secret, and run what it queued (inline)."""

    def post(event: str, payload: dict):
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/webhooks/github/",
                data=body,
                content_type="application/json",
                HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
                HTTP_X_HUB_SIGNATURE_256=signature,
            )

    return post


def _installed_repository(github, connection: Connection, *, n_pulls: int = 1) -> Repository:
    github.seed_repository(REPO, n_pulls=n_pulls)
    github.add_pull(REPO, author="alice")  # an open one, whose verdict is posted
    github.install_app("octocat", [REPO])
    repository = repository_for_sync(provider="github", full_path=REPO, connection=connection)
    repository_sync(repository=repository)
    return Repository.objects.select_related("connection", "app_installation").get(pk=repository.pk)


def _open_pull_request(repository: Repository) -> PullRequest:
    return repository.pull_requests.filter(state=PullRequest.State.OPEN).order_by("number").first()


def _verdict(pull_request: PullRequest) -> PolicyEvaluation:
    evaluated = pull_request_evaluate(pull_request_id=pull_request.pk)
    assert evaluated is not None
    return PolicyEvaluation.objects.select_related("pull_request__repository__connection").get(
        pk=evaluated.evaluation.pk
    )


# --- tokens ----------------------------------------------------------------------------------------------------------


def test_an_installation_token_is_minted_once_and_reused_until_near_expiry(github, app_connection):
    repository = _installed_repository(github, app_connection, n_pulls=3)

    installation = AppInstallation.objects.get()
    assert repository.app_installation == installation  # looked up once and kept on the repository
    assert (installation.account_login, installation.account_type) == ("octocat", "Organization")
    assert len(github.requests_to(f"/repos/{REPO}/installation")) == 1
    assert len(github.tokens_minted) == 1  # the whole backfill, many requests, one token
    as_installation = [r for r in github.requests if "/installation" not in r.path and not r.path.startswith("/app")]
    assert as_installation and all(
        request.headers["Authorization"] == f"token {github.tokens_minted[0].token}" for request in as_installation
    )

    for _ in range(3):  # each builds a client: the stored token serves them all
        vcs_client_for(repository).close()
    assert len(github.tokens_minted) == 1

    # 56 minutes later: within REFRESH_BEFORE_EXPIRY of its hour, the token is replaced before it is used again.
    nearly = timezone.now() + REFRESH_BEFORE_EXPIRY - dt.timedelta(seconds=30)
    AppInstallation.objects.filter(pk=installation.pk).update(token_expires_at=nearly)
    repository.refresh_from_db()
    pull_request = _open_pull_request(repository)
    evaluation_report(evaluation=_verdict(pull_request))

    assert len(github.tokens_minted) == 2
    fresh = github.tokens_minted[-1].token
    assert github.requests_to("/statuses/")[-1].headers["Authorization"] == f"token {fresh}"
    installation.refresh_from_db()
    assert installation.token == fresh and installation.tokens_minted == 2
    assert installation.token_expires_at > timezone.now() + dt.timedelta(minutes=55)
    assert len(github.requests_to(f"/repos/{REPO}/installation")) == 1  # the installation is not looked up again


def test_a_long_sync_goes_on_with_a_fresh_token_when_its_own_nears_expiry(github, app_connection):
    repository = _installed_repository(github, app_connection)
    github.app_state.token_lifetime = REFRESH_BEFORE_EXPIRY.total_seconds() - 60  # each token is nearly spent
    AppInstallation.objects.update(token_expires_at=timezone.now())
    client = vcs_client_for(Repository.objects.get(pk=repository.pk))
    try:
        client.repository(REPO)  # the same client asks for a new token before its request, not after a 401
    finally:
        client.close()
    assert len(github.tokens_minted) == 3
    assert github.requests[-1].headers["Authorization"] == f"token {github.tokens_minted[-1].token}"


def _app_calls(method: str, endpoint: str, status: str) -> float:
    labels = {"provider": "github", "method": method, "endpoint": endpoint, "status": status}
    return REGISTRY.get_sample_value("tandem_vcs_api_calls_total", labels) or 0.0


LOOKUP = ("GET", "/repos/{owner}/{repo}/installation")
MINT = ("POST", "/app/installations/{number}/access_tokens")


def test_the_apps_own_calls_are_counted_with_every_other_call_by_endpoint_and_status(github, app_connection):
    before = {
        "lookup": _app_calls(*LOOKUP, "200"),
        "minted": _app_calls(*MINT, "201"),
        "refused": _app_calls(*MINT, "403"),
        "unavailable": _app_calls(*MINT, "502"),
    }
    repository = _installed_repository(github, app_connection)
    assert _app_calls(*LOOKUP, "200") == before["lookup"] + 1
    assert _app_calls(*MINT, "201") == before["minted"] + 1

    AppInstallation.objects.update(token_expires_at=timezone.now())  # the next client needs a new token
    github.fail_next("/access_tokens", 502)
    with pytest.raises(VcsUnavailable):
        vcs_client_for(Repository.objects.get(pk=repository.pk))
    assert _app_calls(*MINT, "502") == before["unavailable"] + 1

    github.suspend_installation(repository.app_installation.installation_id)
    with pytest.raises(NoAccess):
        vcs_client_for(Repository.objects.get(pk=repository.pk))
    assert _app_calls(*MINT, "403") == before["refused"] + 1
    assert _app_calls(*MINT, "201") == before["minted"] + 1


def test_statuses_are_posted_as_the_app(github, app_connection):
    repository = _installed_repository(github, app_connection)
    evaluation = _verdict(_open_pull_request(repository))
    assert evaluation_report(evaluation=evaluation) == "reported"
    assert github.statuses_posted[-1]["context"] == "tandem/review-policy"
    assert github.status_creators[-1] == "tandem-review[bot]"


def test_the_instance_wide_app_comes_from_the_settings_and_a_key_file(github, app_key, settings, tmp_path):
    key_file = tmp_path / "tandem.private-key.pem"
    key_file.write_text(_pem(app_key))
    settings.GITHUB_API_URL = github.url
    settings.GITHUB_APP_ID = str(APP_ID)
    settings.GITHUB_APP_PRIVATE_KEY = ""
    settings.GITHUB_APP_PRIVATE_KEY_PATH = str(key_file)
    settings.GITHUB_TOKEN = ""
    connection = Connection.objects.create(provider="github", name="GitHub (from settings)", base_url=github.url)
    repository = _installed_repository(github, connection)
    assert repository.pull_requests.exists()
    assert len(github.tokens_minted) == 1


def test_a_key_file_that_cannot_be_read_says_so_and_is_read_once_it_can_be(github, app_key, settings, tmp_path):
    """A secret mounted after the process started, or a permission fixed: the next pass reads the file (a failed
    read is not remembered), and until then the reason names the file, not only 'no private key'."""
    key_file = tmp_path / "tandem.private-key.pem"
    settings.GITHUB_API_URL = github.url
    settings.GITHUB_APP_ID = str(APP_ID)
    settings.GITHUB_APP_PRIVATE_KEY = ""
    settings.GITHUB_APP_PRIVATE_KEY_PATH = str(key_file)
    settings.GITHUB_TOKEN = ""
    connection = Connection.objects.create(provider="github", name="GitHub (from settings)", base_url=github.url)
    github.seed_repository(REPO, n_pulls=1)
    github.install_app("octocat", [REPO])
    with pytest.raises(NoAccess, match="tandem.private-key.pem"):
        repository_for_sync(provider="github", full_path=REPO, connection=connection)

    key_file.write_text(_pem(app_key))
    repository = repository_for_sync(provider="github", full_path=REPO, connection=connection)
    assert repository.app_installation is not None


# --- failing closed --------------------------------------------------------------------------------------------------


def test_a_wrong_key_is_refused_and_the_verdict_stays_not_yet_with_the_reason(
    github, app_connection, other_key, deliver
):
    Connection.objects.filter(pk=app_connection.pk).update(app_private_key=_pem(other_key))
    payload = fixture("pull_request.opened")
    github.add_repo(payload["repository"]["full_name"], id=payload["repository"]["id"])
    github.install_app("Codertocat", [payload["repository"]["full_name"]])

    response = deliver("pull_request", payload)

    assert response.status_code == 202
    assert github.app_state.jwt_refusals  # the fake checked the signature against the App's public key
    assert github.tokens_minted == []
    pull_request = PullRequest.objects.get()
    evaluation = pull_request.evaluations.get()
    assert evaluation.outcome == PolicyEvaluation.Outcome.PENDING
    waiting = evaluation.trace["unknown"]["files"]
    assert f"GitHub App {APP_ID}" in waiting and "A JSON web token could not be decoded" in waiting
    assert "A JSON web token could not be decoded" in pull_request.facts_error
    assert github.statuses_posted == []  # nothing to post with: the report failed, saying why
    assert "A JSON web token could not be decoded" in evaluation.report_error
    assert evaluation.reported_at is None


def test_a_token_mint_answered_502_leaves_the_verdict_not_yet_and_a_later_pass_reports_it(
    github, app_connection, deliver
):
    payload = fixture("pull_request.opened")
    github.add_repo(payload["repository"]["full_name"], id=payload["repository"]["id"])
    github.install_app("Codertocat", [payload["repository"]["full_name"]])
    github.fail_next("/access_tokens", 502, times=2)  # the pass's facts fetch, then its report

    response = deliver("pull_request", payload)

    assert response.status_code == 202
    pull_request = PullRequest.objects.get()
    evaluation = pull_request.evaluations.get()
    assert evaluation.outcome == PolicyEvaluation.Outcome.PENDING  # unknown facts: "not yet", never a pass
    assert "502" in pull_request.facts_error
    assert all(status["state"] != "success" for status in github.statuses_posted)

    again = _verdict(pull_request)  # the next pass (the reconciler's), with GitHub minting again

    assert github.tokens_minted
    assert again.outcome == PolicyEvaluation.Outcome.PENDING  # the policy's own answer: no approval yet
    assert [status["state"] for status in github.statuses_posted][-1:] == ["pending"]


def test_a_repository_the_app_is_not_installed_on_says_so(github, app_connection):
    github.seed_repository(REPO, n_pulls=1)
    with pytest.raises(NoAccess, match=f"not installed on {REPO}"):
        repository_for_sync(provider="github", full_path=REPO, connection=app_connection)
    assert github.tokens_minted == []


def test_a_connection_restricted_to_another_account_does_not_use_this_installation(github, app_connection):
    Connection.objects.filter(pk=app_connection.pk).update(app_account="acme")
    app_connection.refresh_from_db()
    github.seed_repository(REPO, n_pulls=1)
    github.install_app("octocat", [REPO])
    with pytest.raises(NoAccess, match="not on acme"):
        repository_for_sync(provider="github", full_path=REPO, connection=app_connection)
    assert github.tokens_minted == []


# --- installation events ------------------------------------------------------------------------------------------


def test_repositories_added_to_the_installation_are_registered_and_synced(github, app_connection, deliver):
    payload = fixture("installation_repositories.added")
    installation_id = payload["installation"]["id"]
    added = payload["repositories_added"][0]
    github.add_repo(added["full_name"], id=added["id"])
    github.add_pull(added["full_name"], title="First change")
    github.install_app("Codertocat", [added["full_name"]], installation_id=installation_id)

    response = deliver("installation_repositories", payload)

    assert response.status_code == 202
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.PROCESSED
    repository = Repository.objects.get(full_path=added["full_name"])
    assert repository.is_active and repository.access_error == ""
    assert repository.external_id == str(added["id"])
    assert repository.app_installation.installation_id == installation_id
    assert SyncRun.objects.get(repository=repository).status == SyncRun.Status.COMPLETED
    assert repository.pull_requests.get().title == "First change"


def test_repositories_removed_from_the_installation_are_switched_off_with_their_history(
    github, app_connection, deliver
):
    added = fixture("installation_repositories.added")
    repo = added["repositories_added"][0]
    github.add_repo(repo["full_name"], id=repo["id"])
    github.add_pull(repo["full_name"])
    github.install_app("Codertocat", [repo["full_name"]], installation_id=added["installation"]["id"])
    deliver("installation_repositories", added)
    removed = copy.deepcopy(added)
    removed.update(action="removed", repositories_added=[], repositories_removed=added["repositories_added"])

    deliver("installation_repositories", removed)

    repository = Repository.objects.get(full_path=repo["full_name"])
    assert not repository.is_active
    assert repository.access_error.startswith("Removed from the GitHub App installation on Codertocat by Codertocat")
    assert repository.pull_requests.count() == 1  # history kept
    assert AuditEvent.objects.filter(action="repository.change", target_id=str(repository.pk)).exists()
    assert repository.pk not in repositories_due_for_sync(provider="github")

    deliver("installation_repositories", added)  # added back: switched on again
    repository.refresh_from_db()
    assert repository.is_active and repository.access_error == ""


def test_installation_created_registers_its_repositories_and_deleted_switches_them_off(github, app_connection, deliver):
    created = fixture("installation.created")
    repo = created["repositories"][0]
    github.add_repo(repo["full_name"], id=repo["id"])
    github.install_app("Codertocat", [repo["full_name"]], installation_id=created["installation"]["id"])

    deliver("installation", created)
    repository = Repository.objects.get(full_path=repo["full_name"])
    assert repository.is_active and repository.app_installation.installation_id == created["installation"]["id"]

    deleted = copy.deepcopy(created)
    deleted["action"] = "deleted"
    deliver("installation", deleted)

    repository.refresh_from_db()
    installation = AppInstallation.objects.get()
    assert installation.deleted_at is not None and installation.token == ""
    assert not repository.is_active
    assert repository.access_error.startswith("The GitHub App was uninstalled from Codertocat")


def test_a_suspended_installation_stops_posting_and_syncing_until_unsuspended(github, app_connection, deliver):
    repository = _installed_repository(github, app_connection)
    installation = repository.app_installation
    suspend = fixture("installation.suspend")
    account = github.installation_json(installation.installation_id)["account"]
    suspend["installation"].update(id=installation.installation_id, account=account)
    github.suspend_installation(installation.installation_id, by="Codertocat")

    deliver("installation", suspend)

    repository.refresh_from_db()
    installation.refresh_from_db()
    assert installation.suspended_at is not None and installation.suspended_by == "Codertocat"
    assert installation.token == ""  # GitHub revoked it
    assert "suspended by Codertocat" in repository.access_error
    statuses_before, minted_before = len(github.statuses_posted), len(github.tokens_minted)

    evaluation = _verdict(_open_pull_request(repository))
    assert evaluation_report(evaluation=evaluation) == "no access"
    evaluation.refresh_from_db()
    assert "suspended by Codertocat" in evaluation.report_error
    assert repository.pk not in repositories_due_for_sync(provider="github")
    future = timezone.now() + dt.timedelta(minutes=5)
    assert evaluation.pk not in verdicts_not_accepted(connection_ids=[app_connection.pk], now=future)
    assert sync_repository.delay(repository.pk).get().startswith("not synced: The GitHub App's installation")
    assert (len(github.statuses_posted), len(github.tokens_minted)) == (statuses_before, minted_before)

    unsuspend = copy.deepcopy(suspend)
    unsuspend["action"] = "unsuspend"
    unsuspend["installation"]["suspended_at"] = None
    unsuspend["installation"]["suspended_by"] = None
    github.unsuspend_installation(installation.installation_id)
    deliver("installation", unsuspend)

    repository.refresh_from_db()
    assert repository.access_error == ""
    assert SyncRun.objects.filter(repository=repository, status=SyncRun.Status.COMPLETED).count() == 2
    assert evaluation_report(evaluation=evaluation) == "reported"


def test_installation_events_for_a_token_connection_are_ignored(github, deliver):
    Connection.objects.create(
        provider="github", name="token", base_url=github.url, api_token=github.token, webhook_secret=SECRET
    )
    deliver("installation", fixture("installation.created"))
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.IGNORED
    assert "not a GitHub App connection" in delivery.error
    assert not Repository.objects.exists()


# --- check runs ------------------------------------------------------------------------------------------------------


def test_a_check_run_shows_the_verdicts_trace_and_is_updated_while_pending(github, app_connection):
    Connection.objects.filter(pk=app_connection.pk).update(report_as_check_run=True)
    github.add_repo(REPO)
    github.add_pull(REPO, number=1, author="alice")
    github.add_file(REPO, 1, "payments/charge.py")
    github.install_app("octocat", [REPO])
    repository = repository_for_sync(provider="github", full_path=REPO, connection=app_connection)
    team = TeamFactory()
    Repository.objects.filter(pk=repository.pk).update(team=team)
    policy_save(
        team=team,
        document="rules:\n  - name: payments needs a review\n    if: {paths: ['payments/**']}\n"
        "    require: {approvals: 1}\n",
    )
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()

    pending = _verdict(pull_request)
    assert pending.outcome == PolicyEvaluation.Outcome.PENDING
    assert evaluation_report(evaluation=pending) == "reported"
    created = github.app_state.check_run_requests[-1]
    assert created["method"] == "POST" and created["name"] == "tandem/review-policy"
    assert created["status"] == "in_progress" and created["head_sha"] == pull_request.head_sha
    assert created["details_url"].endswith(f"/pulls/{pull_request.pk}/")
    summary = created["output"]["summary"]
    assert "**payments needs a review** (pending)" in summary
    assert md(pending.trace["rules"][0]["reason"]) in summary
    assert github.statuses_posted == []  # a check run instead of a status

    github.add_review(REPO, 1, reviewer="bob", state="APPROVED")
    github.touch_pull(REPO, 1)
    repository_sync(repository=Repository.objects.get(pk=repository.pk))
    approved = _verdict(pull_request)
    assert approved.outcome == PolicyEvaluation.Outcome.APPROVED
    assert evaluation_report(evaluation=approved) == "reported"

    updated = github.app_state.check_run_requests[-1]
    assert updated["method"] == "PATCH" and updated["id"] == created_id(github)
    assert (updated["status"], updated["conclusion"]) == ("completed", "success")
    assert "Counted: bob" in updated["output"]["summary"]
    run = github.check_runs[created_id(github)]
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    approved.refresh_from_db()
    assert approved.check_run_id == created_id(github) and approved.reported_at is not None


def created_id(github) -> int:
    return next(iter(github.check_runs))


def test_a_failed_check_run_is_retried_and_reconciled_like_a_status(github, app_connection):
    Connection.objects.filter(pk=app_connection.pk).update(report_as_check_run=True)
    repository = _installed_repository(github, app_connection)
    evaluation = _verdict(_open_pull_request(repository))
    github.fail_next("/check-runs", status=502)

    assert evaluation_report(evaluation=evaluation) == "failed"
    evaluation.refresh_from_db()
    assert evaluation.reported_at is None and "502" in evaluation.report_error
    future = timezone.now() + dt.timedelta(minutes=5)
    assert evaluation.pk in verdicts_not_accepted(connection_ids=[app_connection.pk], now=future)

    assert evaluation_report(evaluation=evaluation) == "reported"
    evaluation.refresh_from_db()
    assert evaluation.reported_at is not None and evaluation.check_run_id in github.check_runs


def _check_runs_after_a_late_one(
    github: FakeGitHub, app_connection: Connection, late_outcome: str
) -> list[dict[str, Any]]:
    """A verdict of `late_outcome` whose check run reaches GitHub after a newer blocking verdict's (stored and
    reported while the first was held): the head's check runs afterwards."""
    Connection.objects.filter(pk=app_connection.pk).update(report_as_check_run=True)
    repository = _installed_repository(github, app_connection)
    pull_request = PullRequest.objects.select_related("repository__connection").get(
        pk=_open_pull_request(repository).pk
    )

    def verdict(outcome: str, minutes: int) -> PolicyEvaluation:
        at = timezone.now() + dt.timedelta(minutes=minutes)
        evaluation = PolicyEvaluation.objects.create(
            pull_request=pull_request, head_sha=pull_request.head_sha, outcome=outcome, description=outcome,
            trace={"outcome": outcome, "summary": outcome}, evaluated_at=at, last_evaluated_at=at,
        )  # fmt: skip
        evaluation.pull_request = pull_request
        return evaluation

    def report_late() -> str:
        try:
            return evaluation_report(evaluation=late)
        finally:
            connections.close_all()

    late = verdict(late_outcome, 1)  # after the sync's own verdict
    held = github.hold_next("/check-runs")
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(report_late)
        arrived = held.arrived.wait(timeout=30)
        assert arrived, f"the first check run never reached GitHub: {slow.result() if slow.done() else '…'}"
        blocked = verdict(PolicyEvaluation.Outcome.BLOCKED, 2)
        assert evaluation_report(evaluation=blocked) == "reported"
        held.released.set()
        assert slow.result(timeout=60) == "reported"
    return [run for run in github.check_runs.values() if run["head_sha"] == pull_request.head_sha]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(db.vendor != "postgresql", reason="SQLite serialises writers; the race needs PostgreSQL")
def test_an_approving_check_run_created_after_a_newer_blocking_one_is_followed_by_the_block(github, app_connection):
    # The approval's check run reaches GitHub after the block's (stored since): GitHub shows the check run created
    # last, so a new one shows the block again.
    runs = _check_runs_after_a_late_one(github, app_connection, PolicyEvaluation.Outcome.APPROVED)
    shown = max(runs, key=lambda run: run["id"])  # GitHub shows the check run of that name created last
    assert (shown["name"], shown["conclusion"]) == ("tandem/review-policy", "failure")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(db.vendor != "postgresql", reason="SQLite serialises writers; the race needs PostgreSQL")
def test_a_pending_check_run_created_after_a_newer_verdict_is_not_left_in_progress(github, app_connection):
    # The pending verdict's check run (in progress) reaches GitHub after the block's: the repair creates a new run for
    # the block, and the pending one must not be left in progress for ever (the check suite would never complete).
    runs = _check_runs_after_a_late_one(github, app_connection, PolicyEvaluation.Outcome.PENDING)
    shown = max(runs, key=lambda run: run["id"])
    assert (shown["name"], shown["conclusion"]) == ("tandem/review-policy", "failure")
    assert [run["id"] for run in runs if run["status"] != "completed"] == []


# --- the manifest --------------------------------------------------------------------------------------------------


def test_the_app_manifest_asks_for_what_tandem_reads_and_writes():
    manifest = json.loads((REPO_ROOT / "deploy" / "github-app-manifest.json").read_text())
    permissions = manifest["default_permissions"]
    assert permissions["pull_requests"] == "read" and permissions["contents"] == "read"
    assert permissions["statuses"] == "write" and permissions["checks"] == "write"
    assert permissions["metadata"] == "read"
    # Every event Tandem acts on is subscribed (installation events reach every App unasked).
    assert set(_HANDLERS) <= set(manifest["default_events"])
    assert manifest["hook_attributes"]["url"].endswith("/webhooks/github/")


# --- the private key at rest and in the admin ----------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", password="x", email="root@example.com")  # noqa: S106
    client.force_login(admin)
    return client


def _form(connection: Connection, **changes: str) -> dict[str, str]:
    return {
        "provider": connection.provider,
        "name": connection.name,
        "base_url": connection.base_url,
        "web_url": "",
        "api_token": "",
        "webhook_secret": "",
        "app_id": connection.app_id,
        "app_private_key": "",
        "app_installation_id": "",
        "app_account": connection.app_account,
        **changes,
    }


def test_the_private_key_is_encrypted_at_rest_and_rotated_with_the_other_secrets(app_connection, app_key, settings):
    with db.cursor() as cursor:
        cursor.execute("SELECT app_private_key FROM reviews_connection WHERE id = %s", [app_connection.pk])
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored and stored.startswith("gAAAAA")
    settings.CONNECTION_SECRET_KEYS = [Fernet.generate_key().decode(), *settings.CONNECTION_SECRET_KEYS]
    call_command("connection_secrets_rotate")
    settings.CONNECTION_SECRET_KEYS = settings.CONNECTION_SECRET_KEYS[:1]
    assert Connection.objects.get(pk=app_connection.pk).app_private_key == _pem(app_key)


def test_the_admin_shows_the_private_key_as_set_or_not_never_the_key(superuser_client, app_connection, app_key):
    page = superuser_client.get(f"/admin/reviews/connection/{app_connection.pk}/change/").content.decode()
    body = _pem(app_key).splitlines()[1]
    assert body not in page
    assert "GitHub App private key" in page and "Currently set." in page
    listing = superuser_client.get("/admin/reviews/connection/").content.decode()
    assert f"GitHub App {APP_ID} (its key set, from the connection GitHub (App))" in listing
    assert body not in listing


def test_the_admin_keeps_replaces_and_refuses_private_keys(superuser_client, app_connection, app_key, other_key):
    url = f"/admin/reviews/connection/{app_connection.pk}/change/"
    assert superuser_client.post(url, _form(app_connection)).status_code == 302
    assert Connection.objects.get(pk=app_connection.pk).app_private_key == _pem(app_key)  # left empty: kept

    refused = superuser_client.post(url, _form(app_connection, app_private_key="not a key"))
    assert refused.status_code == 200 and "Not a private key in PEM" in refused.content.decode()

    assert superuser_client.post(url, _form(app_connection, app_private_key=_pem(other_key))).status_code == 302
    assert Connection.objects.get(pk=app_connection.pk).app_private_key == _pem(other_key).strip()
    event = AuditEvent.objects.filter(action="connection.change").latest("at")
    assert event.changes["app_private_key"] == {"before": "set", "after": "replaced"}

    no_app = superuser_client.post(url, _form(app_connection, app_id="", report_as_check_run="on"))
    assert "Check runs are a GitHub App" in no_app.content.decode()


@pytest.mark.parametrize("mistake", [{"app_id": "not a number"}, {"truncated": "yes"}])
def test_a_form_refused_for_any_reason_never_shows_the_pasted_key_back(
    superuser_client, app_connection, other_key, mistake
):
    """The key's textarea, like the token and webhook secret's password inputs, is empty on a refused form: a typo
    elsewhere must not put the pasted PEM into the page (its HTML, the browser's cache, a screenshot)."""
    url = f"/admin/reviews/connection/{app_connection.pk}/change/"
    pem = _pem(other_key)
    pasted = "\n".join(pem.splitlines()[:-3]) if mistake.get("truncated") else pem  # a copy cut short
    changes = {name: value for name, value in mistake.items() if name != "truncated"}
    refused = superuser_client.post(url, _form(app_connection, app_private_key=pasted, **changes))
    assert refused.status_code == 200 and "errorlist" in refused.content.decode()
    assert _pem(other_key).splitlines()[1] not in refused.content.decode()


def test_the_apps_settings_are_audited(superuser_client, app_connection):
    url = f"/admin/reviews/connection/{app_connection.pk}/change/"
    assert superuser_client.post(url, _form(app_connection, app_account="acme")).status_code == 302
    event = AuditEvent.objects.filter(action="connection.change").latest("at")
    assert event.changes == {"app_account": {"before": "", "after": "acme"}}
