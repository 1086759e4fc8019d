"""The reporter posts `tandem/review-policy` through PyGithub and python-gitlab, to the fakes."""

from __future__ import annotations

import pytest

from reviews.integrations.vcs import VcsUnavailable
from reviews.services.reporting import commit_status_report
from reviews.services.sync import repository_for_sync, repository_sync

pytestmark = pytest.mark.django_db


def test_github_status_is_posted_with_context_description_and_link(fake_github, github_connection, settings):
    settings.PUBLIC_URL = "https://tandem.example.com"
    fake_github.seed_repository("octocat/Hello-World", n_pulls=1)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()
    commit_status_report(
        pull_request=pull_request, sha=pull_request.head_sha, state="pending", description="0 of 1 approvals"
    )
    posted = fake_github.statuses_posted[-1]
    assert posted["context"] == "tandem/review-policy"
    assert posted["state"] == "pending"
    assert posted["description"] == "0 of 1 approvals"
    assert posted["target_url"] == f"https://tandem.example.com/pulls/{pull_request.pk}/"
    assert posted["sha"] == pull_request.head_sha


def test_gitlab_status_is_posted_with_name_and_link(fake_gitlab, gitlab_connection):
    fake_gitlab.seed_project("acme/monolith", n_merge_requests=1)
    repository = repository_for_sync(provider="gitlab", full_path="acme/monolith", connection=gitlab_connection)
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()
    commit_status_report(pull_request=pull_request, sha=pull_request.head_sha, state="failure", description="blocked")
    posted = fake_gitlab.statuses_posted[-1]
    assert posted["name"] == "tandem/review-policy"
    assert posted["status"] == "failed"
    assert posted["target_url"].endswith(f"/pulls/{pull_request.pk}/")


def test_a_vcs_outage_is_reported_as_retryable(fake_github, github_connection):
    fake_github.seed_repository("octocat/Hello-World", n_pulls=1)
    repository = repository_for_sync(provider="github", full_path="octocat/Hello-World", connection=github_connection)
    repository_sync(repository=repository)
    pull_request = repository.pull_requests.get()
    fake_github.fail_next("/statuses/", status=502)
    with pytest.raises(VcsUnavailable):
        commit_status_report(pull_request=pull_request, sha=pull_request.head_sha, state="success", description="ok")
