"""What the verdict reads of pull requests, in bulk: the same snapshot as one pull request's, in a fixed number of
queries; and when the head was pushed, unknown unless the last push Tandem saw is the head's."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import ChangedFile, CodeownersFile, CommitStatus, PullRequest, RiskSignal
from reviews.selectors.policy import pull_request_snapshot, verdict_snapshots
from tests.factories import CommitFactory, PullRequestFactory, RepositoryFactory, ReviewFactory

pytestmark = pytest.mark.django_db

H = dt.timedelta(hours=1)


def with_head(pull_request: PullRequest, committed_at: dt.datetime) -> PullRequest:
    head = CommitFactory(repository=pull_request.repository, sha=pull_request.head_sha, authored_at=committed_at - H)
    head.committed_at = committed_at
    head.save()
    pull_request.commits.add(head)
    return pull_request


def test_the_last_push_seen_is_the_heads_when_the_head_was_committed_before_it():
    pushed = timezone.now() - 2 * H
    pull_request = with_head(PullRequestFactory(last_pushed_at=pushed), committed_at=pushed - H)
    assert pull_request_snapshot(pull_request=pull_request).last_pushed_at == pushed


def test_a_head_committed_after_the_last_push_seen_was_pushed_when_nobody_knows():
    pushed = timezone.now() - 2 * H
    pull_request = with_head(PullRequestFactory(last_pushed_at=pushed), committed_at=pushed + H)
    assert pull_request_snapshot(pull_request=pull_request).last_pushed_at is None


def test_no_push_seen_is_an_unknown_push_time():
    pull_request = with_head(PullRequestFactory(last_pushed_at=None), committed_at=timezone.now() - H)
    assert pull_request_snapshot(pull_request=pull_request).last_pushed_at is None


def _pull_request_with_facts(repository, index: int) -> PullRequest:
    pull_request = PullRequestFactory(repository=repository, base_ref="main", last_pushed_at=timezone.now() - H)
    ChangedFile.objects.create(pull_request=pull_request, path=f"src/file_{index}.py")
    CommitStatus.objects.create(
        repository=repository, sha=pull_request.head_sha, context="ci", state="success", updated_at=timezone.now()
    )
    ReviewFactory(pull_request=pull_request)
    return pull_request


def test_many_snapshots_are_each_pull_requests_own_in_a_fixed_number_of_queries(django_assert_max_num_queries):
    repository = RepositoryFactory()
    CodeownersFile.objects.create(
        repository=repository, branch="main", path="CODEOWNERS", text="* @lead\n", fetched_at=timezone.now()
    )
    RiskSignal.objects.create(repository=repository, reference="pd:1", occurred_at=timezone.now() - H)
    few = [_pull_request_with_facts(repository, index) for index in range(2)]
    now = timezone.now()
    pull_requests = list(
        PullRequest.objects.filter(pk__in=[pr.pk for pr in few]).select_related("repository__connection")
    )
    with django_assert_max_num_queries(20) as counted:
        snapshots = verdict_snapshots(pull_requests=pull_requests, now=now)
    for pull_request in pull_requests:
        assert snapshots[pull_request.pk] == pull_request_snapshot(pull_request=pull_request, now=now)
    assert snapshots[few[0].pk].codeowners == "* @lead\n"
    assert [change.path for change in snapshots[few[1].pk].files] == ["src/file_1.py"]
    assert dict(snapshots[few[0].pk].statuses) == {"ci": "success"}
    assert len(snapshots[few[0].pk].incident_paths) == 1

    more = few + [_pull_request_with_facts(repository, index) for index in range(2, 12)]
    pull_requests = list(
        PullRequest.objects.filter(pk__in=[pr.pk for pr in more]).select_related("repository__connection")
    )
    with django_assert_max_num_queries(len(counted)):
        assert len(verdict_snapshots(pull_requests=pull_requests, now=now)) == 12
