"""Unique constraints make every upsert idempotent: duplicates are refused by the database itself."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews.models import (
    Commit,
    CommitStatus,
    Identity,
    PairingSession,
    Policy,
    PullRequest,
    Review,
    WebhookDelivery,
)
from telemetry.models import Deployment, Incident, SuspectChange
from tests.factories import (
    CommitFactory,
    ConnectionFactory,
    DeploymentFactory,
    IncidentFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


def _refused(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def test_pull_request_number_is_unique_per_repository():
    pull_request = PullRequestFactory()
    now = timezone.now()
    assert _refused(
        lambda: PullRequest.objects.create(
            repository=pull_request.repository, number=pull_request.number, title="x", created_at=now, updated_at=now
        )
    )
    # The same number in another repository is a different pull request.
    PullRequestFactory(number=pull_request.number)


def test_commit_sha_is_unique_per_repository():
    commit = CommitFactory()
    assert _refused(
        lambda: Commit.objects.create(repository=commit.repository, sha=commit.sha, authored_at=timezone.now())
    )
    Commit.objects.create(repository=RepositoryFactory(), sha=commit.sha, authored_at=timezone.now())


def test_webhook_delivery_id_is_unique_per_provider():
    WebhookDelivery.objects.create(provider="github", delivery_id="abc", event="ping", body="{}")
    assert _refused(
        lambda: WebhookDelivery.objects.create(provider="github", delivery_id="abc", event="ping", body="{}")
    )
    WebhookDelivery.objects.create(provider="gitlab", delivery_id="abc", event="Push Hook", body="{}")


def test_deployments_and_incidents_are_unique_by_source_and_external_id():
    deployment = DeploymentFactory()
    assert _refused(
        lambda: Deployment.objects.create(
            service=deployment.service, sha="f" * 40, source=deployment.source, external_id=deployment.external_id
        )
    )
    incident = IncidentFactory()
    assert _refused(
        lambda: Incident.objects.create(
            title="again", source=incident.source, external_id=incident.external_id, started_at=timezone.now()
        )
    )


def test_review_and_status_and_suspect_are_unique():
    review = ReviewFactory()
    assert _refused(
        lambda: Review.objects.create(
            pull_request=review.pull_request,
            external_id=review.external_id,
            state="approved",
            submitted_at=timezone.now(),
        )
    )
    repository = RepositoryFactory()
    CommitStatus.objects.create(
        repository=repository, sha="a" * 40, context="ci/build", state="success", updated_at=timezone.now()
    )
    assert _refused(
        lambda: CommitStatus.objects.create(
            repository=repository, sha="a" * 40, context="ci/build", state="failure", updated_at=timezone.now()
        )
    )
    incident, deployment = IncidentFactory(), DeploymentFactory()
    SuspectChange.objects.create(
        incident=incident, deployment=deployment, pull_request=review.pull_request, score=1, rank=1
    )
    assert _refused(
        lambda: SuspectChange.objects.create(
            incident=incident, deployment=deployment, pull_request=review.pull_request, score=2, rank=2
        )
    )


def test_logins_are_unique_per_connection_and_emails_globally():
    github = ConnectionFactory()
    enterprise = ConnectionFactory(base_url="https://ghe.example.com/api/v3")
    Identity.objects.create(kind="github", connection=github, value="sam")
    assert _refused(lambda: Identity.objects.create(kind="github", connection=github, value="sam"))
    Identity.objects.create(kind="github", connection=enterprise, value="sam")
    Identity.objects.create(kind="email", value="sam@example.com")
    assert _refused(lambda: Identity.objects.create(kind="email", value="sam@example.com"))


def test_a_policy_belongs_to_a_team_or_a_repository_never_both_or_neither():
    team, repository = TeamFactory(), RepositoryFactory()
    assert _refused(lambda: Policy.objects.create(document="rules: []"))
    assert _refused(lambda: Policy.objects.create(team=team, repository=repository, document="rules: []"))
    Policy.objects.create(team=team, document="rules: []")


def test_client_supplied_pairing_ids_are_unique_and_sessions_cannot_end_before_they_start():
    now = timezone.now()
    PairingSession.objects.create(source="api", external_id="client-1", started_at=now)
    assert _refused(lambda: PairingSession.objects.create(source="api", external_id="client-1", started_at=now))
    # Sessions without a client id do not collide with each other.
    PairingSession.objects.create(source="manual", started_at=now)
    PairingSession.objects.create(source="manual", started_at=now)
    assert _refused(
        lambda: PairingSession.objects.create(
            source="manual", started_at=now, ended_at=now - timezone.timedelta(minutes=1)
        )
    )
    PersonFactory()
