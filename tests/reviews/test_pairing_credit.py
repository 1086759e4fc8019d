"""Pairing credit end to end: rows in, verdict out. A pull request by A co-authored with B, no other review."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from reviews.integrations.records import CommitRecord, GitUserRecord, PullRequestRecord, RepositoryRecord, UserRecord
from reviews.integrations.trailers import co_authors
from reviews.services.policies import policy_save, pull_request_evaluate
from reviews.services.pull_requests import commit_upsert, pull_request_commits_add, pull_request_upsert
from reviews.services.teams import team_upsert
from tests.factories import ConnectionFactory, RepositoryFactory, facts_fetched

pytestmark = pytest.mark.django_db

ONE_APPROVAL = "rules:\n  - name: one approval\n    require: {approvals: 1}\n"


@pytest.fixture
def paired_pull_request():
    team = team_upsert(slug="shop", name="Shop")
    connection = ConnectionFactory()
    repository = RepositoryFactory(connection=connection, team=team, full_path="acme/shop")
    now = timezone.now()
    ann = UserRecord(provider="github", login="ann", external_id="1", name="Ann", email="ann@example.com")
    from reviews.services.people import person_from_account

    person_from_account(
        connection=connection,
        account=UserRecord(provider="github", login="bo", external_id="2", name="Bo", email="bo@example.com"),
    )
    record = PullRequestRecord(
        repository=RepositoryRecord(provider="github", external_id=repository.external_id, full_path="acme/shop"),
        number=1, external_id="1", title="Retry payments", author=ann, state="open",
        created_at=now - dt.timedelta(hours=2), updated_at=now, head_sha="h" * 40, head_ref="ann/retry",
    )  # fmt: skip
    pull_request, _ = pull_request_upsert(repository=repository, record=record)
    message = "Retry payments\n\nCo-authored-by: Bo <bo@example.com>"
    commit = commit_upsert(
        repository=repository,
        record=CommitRecord(
            sha="h" * 40, message=message, author=GitUserRecord("Ann", "ann@example.com"),
            authored_at=now - dt.timedelta(hours=1), author_account=ann, co_authors=co_authors(message),
        ),
    )  # fmt: skip
    pull_request_commits_add(pull_request=pull_request, commits=[commit])
    facts_fetched(pull_request)
    return team, pull_request


def _verdict(team, pull_request, document):
    policy_save(team=team, document=document)
    return pull_request_evaluate(pull_request_id=pull_request.pk).evaluation


def test_passes_a_one_approval_policy_with_pairing_credit(paired_pull_request):
    team, pull_request = paired_pull_request
    evaluation = _verdict(team, pull_request, ONE_APPROVAL + "    options: {pairing_credit: 1}\n")
    assert evaluation.outcome == "approved"
    counted = evaluation.trace["rules"][0]["approvals_counted"]
    assert [(a["login"], a["via"]) for a in counted] == [("Bo", "pairing")]


def test_fails_without_pairing_credit(paired_pull_request):
    team, pull_request = paired_pull_request
    assert _verdict(team, pull_request, ONE_APPROVAL).outcome == "pending"


def test_fails_where_an_independent_review_is_required(paired_pull_request):
    team, pull_request = paired_pull_request
    document = ONE_APPROVAL + "    options: {pairing_credit: 1, require_independent_review: true}\n"
    evaluation = _verdict(team, pull_request, document)
    assert evaluation.outcome == "pending"
    assert "independent" in evaluation.trace["rules"][0]["reason"].lower()
