"""`POST /api/v1/deployments/check`: the batch a deployment would ship, its risk reasons, a level and the decision
under the team's policy; recorded, and attached to the deployment when it is reported."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.models import FollowUpReview, Override, Person, Policy, PolicyViolation, RiskSignal
from reviews.policy import PolicyError, parse_policy
from telemetry.models import DeployCheck, Deployment
from telemetry.services.deploy_check import deploy_check
from telemetry.services.linking import deployment_changes_link
from tests.telemetry.conftest import History, approve, make_deployment, make_incident, make_service

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
ONE_APPROVAL = "rules: [{name: one, require: {approvals: 1}}]\n"


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


@pytest.fixture
def service(actors, repository):
    return make_service("checkout", actors.team, [(repository, [])])


@pytest.fixture
def history(repository) -> History:
    return History(repository, start=ago(days=60))


@pytest.fixture
def reviewer(actors) -> Person:
    return actors.member


def deployed(service, history, *, at: dt.datetime, environment: str = "production") -> Deployment:
    deployment = make_deployment(service, history.head, at=at, repository=history.repository, environment=environment)
    deployment_changes_link(deployment_id=deployment.pk, allow_vcs=False)
    return deployment


def reviewed(history, number, reviewer, *, at, files=("app.py",), lines=10):
    pull_request = history.merge(number, at=at, files=files, lines=lines)
    approve(pull_request, reviewer, at=at - dt.timedelta(hours=2), body="Checked the edge cases.")
    return pull_request


def check(client, **fields):
    body = {"service": "checkout", "environment": "production", "sha": "", **fields}
    return client.post("/api/v1/deployments/check", body, format="json")


def codes(reasons) -> set[str]:
    return {reason["code"] for reason in reasons}


def test_a_well_reviewed_batch_is_low_and_allowed(actors, service, history, reviewer):
    reviewed(history, 1, reviewer, at=ago(days=3))
    deployed(service, history, at=ago(days=3) + dt.timedelta(hours=1))
    second = reviewed(history, 2, reviewer, at=ago(days=1))
    third = reviewed(history, 3, reviewer, at=ago(hours=5))

    response = check(actors.client("token"), sha=history.head)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert [change["id"] for change in body["pull_requests"]] == [second.pk, third.pk]
    assert all(change["reasons"] == [] for change in body["pull_requests"])
    assert body["level"] == "low"
    assert body["decision"] == "allow"
    assert body["reasons"] == []
    assert body["link_method"] == "graph"
    # A dry run: no deployment was made.
    assert Deployment.objects.count() == 1
    assert DeployCheck.objects.get().level == "low"


def test_a_rubber_stamped_change_to_last_weeks_incident_file_is_high(actors, service, history, reviewer):
    """Issue 18's "done when": warned about before it ships."""
    reviewed(history, 1, reviewer, at=ago(days=9), files=("payments/charge.py",))
    deployed(service, history, at=ago(days=9) + dt.timedelta(hours=1))
    RiskSignal.objects.create(
        repository=history.repository,
        path_prefixes=["payments/charge.py"],
        service_name="Checkout",
        reference="pagerduty:P1",
        occurred_at=ago(days=7),
    )
    stamped = history.merge(2, at=ago(hours=3), files=("payments/charge.py", "docs/x.md"), lines=400)
    # Approved one minute after it was ready, without a word: 400 lines deserve 20 minutes at least.
    approve(stamped, reviewer, at=stamped.ready_at + dt.timedelta(minutes=1))
    Policy.objects.create(team=actors.team, document=f"{ONE_APPROVAL}deploy: {{block_on: never}}\n")

    body = check(actors.client("token"), sha=history.head).json()

    (change,) = body["pull_requests"]
    assert codes(change["reasons"]) == {"rubber_stamped", "weak_review_incident_files"}
    assert "payments/charge.py" in next(r["text"] for r in change["reasons"] if r["level"] == "high")
    assert body["level"] == "high"
    assert body["decision"] == "warn"  # block_on: never; warn_on: medium (the default)
    assert "weak_review_incident_files" in codes(body["reasons"])


def test_the_default_policy_blocks_a_high_risk_deploy_and_a_team_sets_its_thresholds(actors, service, history):
    history.merge(1, at=ago(days=2), files=("a.py",))  # unreviewed
    make_incident([service], at=ago(hours=1), title="Checkout slow")  # still open

    body = check(actors.client("token"), sha=history.head).json()
    assert body["level"] == "high"  # an open incident, and the batch holds an unreviewed change
    assert body["decision"] == "block"
    assert codes(body["reasons"]) == {"unreviewed", "open_incident"}

    Policy.objects.create(team=actors.team, document=f"{ONE_APPROVAL}deploy: {{block_on: never, warn_on: high}}\n")
    assert check(actors.client("token"), sha=history.head).json()["decision"] == "warn"


def test_weak_reviews_by_the_one_set_of_definitions(actors, service, history, reviewer):
    reviewed(history, 1, reviewer, at=ago(days=5))
    deployed(service, history, at=ago(days=5) + dt.timedelta(hours=1))
    unreviewed = history.merge(2, at=ago(days=2))
    overridden = history.merge(3, at=ago(days=1))
    Override.objects.create(
        pull_request=overridden,
        head_sha=overridden.head_sha,
        overridden_by=actors.lead,
        reason="hotfix",
        followup_due_at=ago(hours=1),
    )
    followed_up = history.merge(4, at=ago(hours=20))
    override = Override.objects.create(
        pull_request=followed_up,
        head_sha=followed_up.head_sha,
        overridden_by=actors.lead,
        reason="hotfix",
        followup_due_at=NOW + dt.timedelta(hours=20),
    )
    FollowUpReview.objects.create(override=override, reviewer=reviewer, note="read it")
    Override.objects.filter(pk=override.pk).update(followup_done_at=NOW, followup_by=reviewer)
    violating = reviewed(history, 5, reviewer, at=ago(hours=10))
    PolicyViolation.objects.create(pull_request=violating, outcome="blocked")

    body = check(actors.client("token"), sha=history.head).json()

    reasons = {change["id"]: codes(change["reasons"]) for change in body["pull_requests"]}
    assert reasons == {
        unreviewed.pk: {"unreviewed"},
        overridden.pk: {"followup_due"},
        followed_up.pk: set(),  # overridden, and its follow-up review is done
        violating.pk: {"policy_violation"},
    }
    assert "overdue since" in next(r["text"] for r in body["pull_requests"][1]["reasons"])
    assert body["level"] == "medium"
    assert body["decision"] == "warn"
    assert codes(body["reasons"]) == {"unreviewed", "followup_due", "policy_violation"}


def test_an_unusually_large_batch_against_the_services_history(actors, service, history, reviewer):
    for number in range(1, 13):
        reviewed(history, number, reviewer, at=ago(days=30 - number))
        deployed(service, history, at=ago(days=30 - number) + dt.timedelta(hours=1))
    for number in range(13, 17):
        reviewed(history, number, reviewer, at=ago(hours=30 - number))

    body = check(actors.client("token"), sha=history.head).json()

    assert len(body["pull_requests"]) == 4
    assert codes(body["reasons"]) == {"unusual_batch"}
    assert "4 pull requests" in body["reasons"][0]["text"]
    assert "1 or fewer" in body["reasons"][0]["text"]
    assert body["level"] == "medium"


def test_a_service_with_a_recent_confirmed_cause_and_an_open_incident(actors, service, history, reviewer):
    from telemetry.models import SuspectChange

    first = reviewed(history, 1, reviewer, at=ago(days=4))
    deployment = deployed(service, history, at=ago(days=4) + dt.timedelta(hours=1))
    incident = make_incident(
        [service],
        at=ago(days=3),
        title="Double charges",
        resolved_at=ago(days=3) + dt.timedelta(hours=1),
        status="resolved",
    )
    SuspectChange.objects.create(
        incident=incident, deployment=deployment, pull_request=first, score=1, rank=1, verdict="confirmed"
    )
    make_incident([service], at=ago(minutes=30), title="Checkout slow")
    reviewed(history, 2, reviewer, at=ago(hours=2))

    body = check(actors.client("token"), sha=history.head).json()

    assert codes(body["reasons"]) == {"service_incident", "open_incident"}
    assert "Double charges" in body["reasons"][0]["text"] + body["reasons"][1]["text"]
    assert body["level"] == "medium"  # an open incident alone warns: a fix must be able to ship


def test_an_unknown_sha_fails_closed(actors, service, history, reviewer):
    reviewed(history, 1, reviewer, at=ago(days=1))

    body = check(actors.client("token"), sha="d" * 40).json()

    assert body["level"] == "medium"
    assert body["decision"] == "warn"
    assert codes(body["reasons"]) == {"unknown_sha"}
    assert "does not know commit dddddddddddd" in body["reasons"][0]["text"]
    assert body["pull_requests"] == []


def test_a_short_sha_is_made_whole(actors, service, history, reviewer):
    reviewed(history, 1, reviewer, at=ago(days=1))
    body = check(actors.client("token"), sha=history.head[:10]).json()
    assert body["sha"] == history.head
    assert body["level"] == "low"


def test_access_and_bad_input(actors, service, history, reviewer):
    reviewed(history, 1, reviewer, at=ago(days=1))
    assert check(actors.client("other_token"), sha=history.head).status_code == 404
    assert check(actors.client("outsider"), sha=history.head).status_code == 404
    assert check(actors.client("anonymous"), sha=history.head).status_code in {401, 403}
    bad_sha = check(actors.client("token"), sha="not-a-sha")
    assert bad_sha.status_code == 400
    assert "sha" in bad_sha.json()["fields"]
    no_service = actors.client("token").post("/api/v1/deployments/check", {"sha": history.head}, format="json")
    assert no_service.status_code == 400
    assert "service" in no_service.json()["fields"]
    blank_environment = check(actors.client("token"), sha=history.head, environment=" ")
    assert blank_environment.status_code == 400
    assert "environment" in blank_environment.json()["fields"]
    assert DeployCheck.objects.count() == 0


def test_the_query_count_does_not_grow_with_the_batch(actors, service, history, reviewer):
    def measured(count: int, start: int) -> tuple[int, int]:
        for number in range(start, start + count):
            pull_request = history.merge(number, at=ago(hours=200 - number), files=(f"m/{number}.py", "b.py"))
            approve(pull_request, reviewer, at=pull_request.merged_at - dt.timedelta(hours=1), body="ok")
        with CaptureQueriesContext(connection) as captured:
            checked = deploy_check(service=service, environment="production", sha=history.head)
        return len(checked.pull_requests), len(captured.captured_queries)

    RiskSignal.objects.create(
        repository=history.repository, path_prefixes=["b.py"], reference="x", occurred_at=ago(days=1)
    )
    make_incident([service], at=ago(minutes=5))
    reviewed(history, 1000, reviewer, at=ago(hours=300))
    deployed(service, history, at=ago(hours=299))
    small, small_queries = measured(5, 1)
    history_reset = deployed(service, history, at=ago(hours=150))
    assert history_reset.changes.exists()
    large, large_queries = measured(50, 100)
    assert (small, large) == (5, 50)
    assert large_queries == small_queries


def test_the_check_is_attached_to_the_deployment_reported_and_counted_by_level(
    actors, service, history, reviewer, run_on_commit
):
    history.merge(1, at=ago(days=2))  # unreviewed: medium
    client = actors.client("token")
    checked = check(client, sha=history.head).json()
    with run_on_commit():
        reported = client.post(
            "/api/v1/deployments",
            {"service": "checkout", "sha": history.head, "status": "success", "external_id": "run-1"},
            format="json",
        )
    assert reported.status_code == 201
    deployment = Deployment.objects.get()
    assert DeployCheck.objects.get(pk=checked["id"]).deployment == deployment
    Deployment.objects.filter(pk=deployment.pk).update(caused_incident=True)

    outcome = client.get("/api/v1/teams/payments/deploy-risk").json()

    assert {row["level"]: (row["deployments"], row["caused_incident"]) for row in outcome["levels"]} == {
        "low": (0, 0),
        "medium": (1, 1),
        "high": (0, 0),
        "unchecked": (0, 0),
    }
    assert actors.client("other_token").get("/api/v1/teams/payments/deploy-risk").status_code == 404


def test_a_check_is_never_rewritten():
    from reviews.models import RecordImmutable

    with pytest.raises(RecordImmutable):
        DeployCheck.objects.update(level="low")


def test_the_policy_documents_deploy_thresholds():
    assert parse_policy("rules: []\ndeploy: {block_on: medium}\n").deploy.block_on == "medium"
    assert parse_policy("rules: []\n").deploy.warn_on == "medium"
    with pytest.raises(PolicyError, match="deploy.block_on"):
        parse_policy("rules: []\ndeploy: {block_on: severe}\n")
    with pytest.raises(PolicyError, match="unknown"):
        parse_policy("rules: []\ndeploy: {block: high}\n")


def test_the_team_page_shows_incidents_per_risk_level(client, actors, service, history, reviewer):
    from telemetry.services.core import deployment_upsert

    history.merge(1, at=ago(days=2))  # unreviewed: medium
    deploy_check(service=service, environment="Production", sha=history.head)
    deployment, _ = deployment_upsert(
        service=service,
        source="api",
        external_id="run-9",
        environment="production",
        sha=history.head,
        status="success",
        started_at=ago(hours=2),
        finished_at=ago(hours=1),
        repository=history.repository,
    )
    Deployment.objects.filter(pk=deployment.pk).update(caused_incident=True)
    client.force_login(actors.lead.user)

    page = client.get("/teams/payments/").content.decode()

    assert "Deploy checks: incidents per risk level" in page
    assert '<tr data-level="medium"><td>medium</td><td>1</td><td>1</td><td>100%</td></tr>' in page
    assert "1 pull request unreviewed." in page


def test_a_sha_checked_again_is_one_risky_deploy_on_the_page_and_in_the_digest(actors, service, history):
    from telemetry.selectors.deploy_risk import risky_checks
    from telemetry.services.digest import risky_deploys

    history.merge(1, at=ago(days=2))  # unreviewed: medium
    head = history.head
    first = deploy_check(service=service, environment="production", sha=head)
    again = deploy_check(service=service, environment="production", sha=head)  # the CI job run again
    history.merge(2, at=ago(days=1))
    other = history.head
    deploy_check(service=service, environment="production", sha=other)
    deploy_check(service=service, environment="staging", sha=head)

    shown = risky_checks(team=service.team, since=ago(days=7), until=ago(days=-1), limit=10)

    assert first not in shown and again in shown
    assert sorted((check.environment, check.sha) for check in shown) == sorted(
        [("production", head), ("production", other), ("staging", head)]
    )
    assert len(risky_deploys(team=service.team, since=ago(days=7), until=ago(days=-1))) == 3
