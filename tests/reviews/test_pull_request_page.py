"""The pull request page: its timeline, the figures the team page counts for it, and `repo#number` addresses."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews.models import Membership
from telemetry.models import DeploymentChange, SuspectChange
from tests.factories import (
    CommitFactory,
    DeploymentFactory,
    IncidentFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    ServiceFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(client):
    team = TeamFactory(slug="shop", name="Shop")
    user = User.objects.create_user("member", password="pw")
    MembershipFactory(team=team, person=PersonFactory(user=user), role=Membership.Role.MEMBER)
    client.force_login(user)
    return team, RepositoryFactory(team=team, full_path="acme/payments-api")


def _stamped(repository):
    """Ready at T, pushed at T+1 h, approved 1 minute later without a word on 200 lines (a rubber stamp), merged
    at T+3 h, first commit at T-2 h."""
    ready = timezone.now() - dt.timedelta(days=2)
    pull_request = PullRequestFactory(
        repository=repository, number=392, title="Retry payments", state="merged", created_at=ready, ready_at=ready,
        last_pushed_at=ready + dt.timedelta(hours=1), merged_at=ready + dt.timedelta(hours=3),
        first_commit_at=ready - dt.timedelta(hours=2), additions=150, deletions=50,
    )  # fmt: skip
    ReviewFactory(
        pull_request=pull_request,
        reviewer=PersonFactory(display_name="Rita Reviewer"),
        submitted_at=ready + dt.timedelta(hours=1, minutes=1),
    )
    return pull_request


def _row(page: str, figure: str) -> str:
    return page[page.index(f'data-figure="{figure}"') :].split("</tr>")[0]


def test_pull_request_page_shows_the_figures_the_team_page_counts(client, shop):
    team, repository = shop
    pull_request = _stamped(repository)
    page = client.get(f"/pulls/{pull_request.pk}/").content.decode()
    assert "1.02 h" in _row(page, "time-to-first-review")
    assert "1.98 h" in _row(page, "review-time")
    assert "5.0 h" in _row(page, "cycle-time")
    assert "m (200 changed lines)" in _row(page, "size")
    assert "reviewed" in _row(page, "coverage")
    assert "Rita Reviewer, 1.0 min after the last push on 200 lines" in _row(page, "rubber-stamps")
    assert f'href="/teams/{team.slug}/"' in page  # back to its team
    # The team page counts the same stamp.
    assert "Rita Reviewer 1" in client.get("/teams/shop/").content.decode()


def test_an_open_pull_request_says_its_figures_come_at_merge(client, shop):
    pull_request = PullRequestFactory(repository=shop[1])
    page = client.get(f"/pulls/{pull_request.pk}/").content.decode()
    assert "this one's figures come when it is merged" in page


def test_timeline_runs_from_opened_to_the_incident_it_is_suspected_of(client, shop):
    team, repository = shop
    pull_request = _stamped(repository)
    commit = CommitFactory(repository=repository, message="Retry on 502\n\nbody", authored_at=pull_request.ready_at)
    pull_request.commits.add(commit)
    service = ServiceFactory(team=team, name="Checkout")
    deployment = DeploymentFactory(service=service, finished_at=pull_request.merged_at + dt.timedelta(hours=1))
    DeploymentChange.objects.create(deployment=deployment, commit=commit, pull_request=pull_request)
    incident = IncidentFactory(title="Checkout down", started_at=deployment.finished_at + dt.timedelta(hours=2))
    incident.services.add(service)
    SuspectChange.objects.create(incident=incident, deployment=deployment, pull_request=pull_request, score=9, rank=1)
    page = client.get(f"/pulls/{pull_request.pk}/").content.decode()
    timeline = page[page.index('<ol class="timeline">') :].split("</ol>")[0]
    kinds = [chunk.split('"')[0] for chunk in timeline.split('data-event="')[1:]]
    assert kinds == ["opened", "commit", "review", "approved", "merged", "deployed", "incident"]
    assert "Retry on 502" in timeline
    assert "Rita Reviewer: Approved" in timeline
    assert "Deployed to Checkout production: success" in timeline
    assert "Incident “Checkout down” started; this change is suspect #1 (suspected)" in timeline


def test_opens_by_repository_and_number_with_gitlab_subgroups(client, shop):
    team, repository = shop
    pull_request = _stamped(repository)
    nested = PullRequestFactory(repository=RepositoryFactory(team=team, full_path="group/sub/project"), number=12)
    assert "Retry payments" in client.get("/pulls/acme/payments-api/392/").content.decode()
    response = client.get("/pulls/group/sub/project/12/")
    assert response.status_code == 200 and nested.title in response.content.decode()
    assert client.get("/pulls/acme/payments-api/393/").status_code == 404
    other = PullRequestFactory(repository=RepositoryFactory(team=TeamFactory(slug="other"), full_path="acme/secret"))
    assert client.get(f"/pulls/acme/secret/{other.number}/").status_code == 404
    assert client.get(f"/pulls/{pull_request.pk}/").status_code == 200


def test_pull_request_page_queries_do_not_grow_with_its_history(client, shop):
    pull_request = _stamped(shop[1])
    pull_request.commits.add(CommitFactory(repository=shop[1], authored_at=pull_request.ready_at))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/pulls/{pull_request.pk}/").status_code == 200
        return len(captured.captured_queries)

    small = queries()
    for index in range(20):
        ReviewFactory(pull_request=pull_request, submitted_at=pull_request.merged_at - dt.timedelta(minutes=index))
        pull_request.commits.add(CommitFactory(repository=shop[1], authored_at=pull_request.ready_at))
    assert queries() == small
