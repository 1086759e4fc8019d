"""GitHub's deployment protection rules answered by the deploy check, end to end through the fake GitHub: the
webhook is stored and processed, the check recorded, and the answer sent from a task as the App's installation,
retried after a 502, sent once however often the event comes."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import Policy, Repository
from telemetry.models import DeployCheck, Service
from telemetry.services.protection_rules import RECHECK_AFTER_MINUTES, protection_rules_recheck
from telemetry.tasks import answer_protection_rule
from tests.factories import TeamFactory
from tests.reviews.test_github_app import app_connection, app_key, deliver, fixture, github  # noqa: F401 - fixtures
from tests.telemetry.conftest import History, make_deployment, make_service, sha_of

pytestmark = pytest.mark.django_db

RUN_ID = 4242


def _request(github_url: str, full_name: str, sha: str) -> dict:
    """A `deployment_protection_rule` delivery as GitHub sends it (the @octokit/openapi-webhooks shape), built
    on the repository, sender and installation of the deployment fixture."""
    base = fixture("deployment.created")
    deployment = copy.deepcopy(base["deployment"])
    deployment["sha"] = sha
    return {
        "action": "requested",
        "environment": "production",
        "event": "push",
        "sha": sha,
        "ref": "refs/heads/main",
        "deployment_callback_url": (f"{github_url}/repos/{full_name}/actions/runs/{RUN_ID}/deployment_protection_rule"),
        "deployment": deployment,
        "pull_requests": [],
        "repository": base["repository"],
        "sender": base["sender"],
        "installation": base["installation"],
    }


@pytest.fixture
def installed(github, app_connection):  # noqa: F811 - the fixtures imported above
    payload = fixture("deployment.created")
    full_name = payload["repository"]["full_name"]
    github.add_repo(full_name, id=payload["repository"]["id"])
    github.install_app(full_name.split("/")[0], [full_name])
    team = TeamFactory(slug="payments")
    repository = Repository.objects.create(
        connection=app_connection, external_id=str(payload["repository"]["id"]), full_path=full_name, team=team
    )
    make_service("hello", team, [(repository, [])])
    return team, full_name


def _deployed_yesterday(full_name: str) -> History:
    """The repository's main line, deployed a day ago: a sha pushed after it is a batch Tandem can see, once synced."""
    history = History(Repository.objects.get(full_path=full_name), start=timezone.now() - dt.timedelta(days=2))
    make_deployment(Service.objects.get(slug="hello"), history.head, at=timezone.now() - dt.timedelta(days=1))
    return history


def test_a_blocked_check_rejects_the_deployment_after_a_502_and_answers_once(github, installed, deliver):  # noqa: F811
    team, full_name = installed
    Policy.objects.create(
        team=team, document="rules: [{name: one, require: {approvals: 1}}]\ndeploy: {block_on: medium}\n"
    )
    github.fail_next("/deployment_protection_rule", 502)
    payload = _request(github.url, full_name, "c" * 40)

    response = deliver("deployment_protection_rule", payload)

    assert response.status_code == 202
    check = DeployCheck.objects.get()
    assert (check.source, check.level, check.decision) == ("github_protection_rule", "medium", "block")
    assert check.answered_at is None  # the first attempt met the 502: the task asked to be retried
    assert "502" in check.answer_error
    assert github.protection_rule_reviews == []

    answer_protection_rule.apply(args=[check.pk], retries=1)  # the retry, as the worker runs it

    check.refresh_from_db()
    assert check.answered_at is not None
    assert check.answer_error == ""
    assert check.answer_attempts == 2  # the 502, then the answer GitHub accepted
    assert len(github.requests_to(f"/actions/runs/{RUN_ID}/deployment_protection_rule")) == 2
    (review,) = github.protection_rule_reviews
    assert (review["repo"], review["run_id"], review["environment_name"], review["state"]) == (
        full_name,
        RUN_ID,
        "production",
        "rejected",
    )
    assert "hello: medium risk, block" in review["comment"]
    assert "does not know commit cccccccccccc" in review["comment"]

    deliver("deployment_protection_rule", payload)  # GitHub redelivers it

    assert DeployCheck.objects.count() == 1
    assert len(github.protection_rule_reviews) == 1
    assert len(github.requests_to(f"/actions/runs/{RUN_ID}/deployment_protection_rule")) == 2


def test_a_batch_tandem_sees_is_approved_with_the_level(github, installed, deliver):  # noqa: F811
    _, full_name = installed
    history = _deployed_yesterday(full_name)
    pushed = history.commit("pushed straight to main", at=timezone.now() - dt.timedelta(hours=1))

    deliver("deployment_protection_rule", _request(github.url, full_name, pushed.sha))

    check = DeployCheck.objects.get()
    assert (check.level, check.decision, check.link_method) == ("low", "allow", "graph")
    (review,) = github.protection_rule_reviews
    assert review["state"] == "approved"
    assert "hello: low risk, allow" in review["comment"]


def _recheck(django_capture_on_commit_callbacks, *, at: dt.datetime) -> int:
    """One run of beat's re-check at `at`, running the answers it queued (inline)."""
    with django_capture_on_commit_callbacks(execute=True):
        return protection_rules_recheck(now=at)


@pytest.mark.parametrize("deploy", ["", "deploy: {warn_on: high, block_on: never}\n"])
def test_a_sha_tandem_has_not_synced_waits_and_is_rejected_if_it_never_comes(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    deploy,
    django_capture_on_commit_callbacks,
    settings,
):
    team, full_name = installed
    settings.PROTECTION_RULE_WAIT_MINUTES = 60
    if deploy:
        Policy.objects.create(team=team, document="rules: [{name: one, require: {approvals: 1}}]\n" + deploy)

    deliver("deployment_protection_rule", _request(github.url, full_name, "d" * 40))

    first = DeployCheck.objects.get()
    assert first.decision == "warn"  # the check says "not known to be safe" whatever the thresholds
    assert github.protection_rule_reviews == []  # not yet: GitHub's request waits for the sync

    # The backoff: re-checked at 1, 2, 4, 8, 16 and 32 minutes, never approved, each a recorded check.
    for minutes in (0.5, 1, 2, 4, 8, 16, 32, 45):
        assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=minutes)) == 0
    assert DeployCheck.objects.count() == 1 + len(RECHECK_AFTER_MINUTES)
    assert github.protection_rule_reviews == []

    # Past the wait: one last check, and the answer, fail closed, with the reason in words.
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=61)) == 1
    (review,) = github.protection_rule_reviews
    assert review["state"] == "rejected"  # GitHub never deploys a batch Tandem could not see
    assert "does not know commit dddddddddddd" in review["comment"]
    assert "within 60 minutes of the request" in review["comment"]
    assert DeployCheck.objects.filter(answered_at__isnull=True).count() == 0

    # Answered once: later runs and a redelivered event send nothing more.
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=62)) == 0
    deliver("deployment_protection_rule", _request(github.url, full_name, "d" * 40))
    assert len(github.protection_rule_reviews) == 1


def test_a_sha_that_syncs_while_the_request_waits_is_checked_again_at_once_and_approved(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    _, full_name = installed
    history = _deployed_yesterday(full_name)
    pushed_sha = sha_of(f"{full_name}:pushed straight to main")

    deliver("deployment_protection_rule", _request(github.url, full_name, pushed_sha))
    waiting = DeployCheck.objects.get()
    assert [reason["code"] for reason in waiting.reasons] == ["unknown_sha"]
    assert _recheck(django_capture_on_commit_callbacks, at=waiting.checked_at + dt.timedelta(seconds=20)) == 0
    assert DeployCheck.objects.count() == 1  # nothing new to see, and the first backoff step is not due

    history.commit("pushed straight to main", at=timezone.now())  # the push arrives (webhook or sync)
    assert _recheck(django_capture_on_commit_callbacks, at=waiting.checked_at + dt.timedelta(seconds=30)) == 1

    latest = DeployCheck.objects.order_by("-pk").first()
    assert (latest.level, latest.decision, latest.link_method) == ("low", "allow", "graph")
    (review,) = github.protection_rule_reviews
    assert review["state"] == "approved"
    assert "hello: low risk, allow" in review["comment"]
    assert "does not know commit" not in review["comment"]  # the answer is the newest check's, not the first's


def test_the_last_check_is_made_once_and_its_answer_queued_once_whatever_runs_again(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    _, full_name = installed
    deliver("deployment_protection_rule", _request(github.url, full_name, "e" * 40))
    first = DeployCheck.objects.get()
    late = first.checked_at + dt.timedelta(minutes=90)
    github.fail_next("/deployment_protection_rule", 502)

    assert _recheck(django_capture_on_commit_callbacks, at=late) == 1  # the answer met the 502: a retry is due
    assert github.protection_rule_reviews == []
    assert _recheck(django_capture_on_commit_callbacks, at=late) == 0  # the task's retry answers, not beat again
    assert DeployCheck.objects.filter(callback_key__endswith="#final").count() == 1

    answer_protection_rule.apply(args=[first.pk], retries=1)
    (review,) = github.protection_rule_reviews
    assert review["state"] == "rejected"


def test_other_actions_are_not_answered(github, installed, deliver):  # noqa: F811
    _, full_name = installed
    payload = {**_request(github.url, full_name, "d" * 40), "action": "something_new"}
    deliver("deployment_protection_rule", payload)
    assert DeployCheck.objects.count() == 0
    assert github.protection_rule_reviews == []


def test_a_request_whose_beat_was_down_for_hours_gets_one_last_check_and_one_answer(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    django_capture_on_commit_callbacks,
    settings,
):
    _, full_name = installed
    settings.PROTECTION_RULE_WAIT_MINUTES = 60
    deliver("deployment_protection_rule", _request(github.url, full_name, "f" * 40))
    first = DeployCheck.objects.get()

    # Beat comes back three hours later: no burst of the missed re-checks, one final check and one rejection.
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(hours=3)) == 1
    assert DeployCheck.objects.count() == 2
    assert DeployCheck.objects.filter(callback_key__endswith="#final").count() == 1
    (review,) = github.protection_rule_reviews
    assert review["state"] == "rejected"
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(hours=3, minutes=1)) == 0
    assert len(github.protection_rule_reviews) == 1


def test_a_job_run_again_after_a_rejection_is_asked_about_anew_and_answered(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    django_capture_on_commit_callbacks,
    settings,
):
    # GitHub keeps the run id when a job is re-run (only its attempt changes), so the callback URL is the same;
    # the deployment is new. The rejection's comment itself says "re-run the job once Tandem has synced".
    _, full_name = installed
    settings.PROTECTION_RULE_WAIT_MINUTES = 60
    history = _deployed_yesterday(full_name)
    pushed_sha = sha_of(f"{full_name}:pushed late")
    deliver("deployment_protection_rule", _request(github.url, full_name, pushed_sha))
    first = DeployCheck.objects.get()
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=61)) == 1
    assert [review["state"] for review in github.protection_rule_reviews] == ["rejected"]

    history.commit("pushed late", at=timezone.now())
    rerun = _request(github.url, full_name, pushed_sha)
    rerun["deployment"]["id"] += 1
    github.workflow_run_again(full_name, RUN_ID)
    deliver("deployment_protection_rule", rerun)
    assert [review["state"] for review in github.protection_rule_reviews] == ["rejected", "approved"]
    assert "hello: low risk, allow" in github.protection_rule_reviews[1]["comment"]

    deliver("deployment_protection_rule", rerun)  # redelivered: answered once
    assert len(github.protection_rule_reviews) == 2


def test_a_sha_that_syncs_after_the_last_backoff_step_is_still_checked_again_at_once(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    django_capture_on_commit_callbacks,
    settings,
):
    _, full_name = installed
    settings.PROTECTION_RULE_WAIT_MINUTES = 60
    history = _deployed_yesterday(full_name)
    pushed_sha = sha_of(f"{full_name}:pushed after half an hour")
    deliver("deployment_protection_rule", _request(github.url, full_name, pushed_sha))
    first = DeployCheck.objects.get()
    for minutes in RECHECK_AFTER_MINUTES:
        _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=minutes))
    assert DeployCheck.objects.count() == 1 + len(RECHECK_AFTER_MINUTES)

    history.commit("pushed after half an hour", at=timezone.now())  # the push arrives 40 minutes in
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=40)) == 1
    (review,) = github.protection_rule_reviews
    assert review["state"] == "approved"  # not 20 more minutes of waiting for the final check


def test_a_request_with_the_longest_names_github_allows_is_checked_and_answered(
    github,  # noqa: F811
    installed,
    deliver,  # noqa: F811
    django_capture_on_commit_callbacks,
    settings,
):
    # A repository name may be 100 characters and an owner 39 on GitHub: with a 100-character environment the
    # request's key outgrew its column (a DataError on PostgreSQL: the delivery failed and GitHub was never answered).
    _, full_name = installed
    settings.PROTECTION_RULE_WAIT_MINUTES = 60
    request = _request(github.url, full_name, "a" * 40)
    request["environment"] = "e" * 100
    request["deployment_callback_url"] = request["deployment_callback_url"].replace(
        f"/repos/{full_name}/", f"/repos/{'o' * 39}/{'r' * 100}/"
    )
    deliver("deployment_protection_rule", request)
    first = DeployCheck.objects.get()
    assert _recheck(django_capture_on_commit_callbacks, at=first.checked_at + dt.timedelta(minutes=61)) == 1
    (review,) = github.protection_rule_reviews
    assert (review["state"], review["environment_name"]) == ("rejected", "e" * 100)
