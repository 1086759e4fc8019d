"""Adversarial REST answer (issue 14 review): when fetching a pull request's facts meets a value of the wrong type,
the failure is recorded on the row with its reason (as a VCS failure is), not raised out of the verdict pass."""

from __future__ import annotations

import datetime as dt

import pytest

from reviews.models import PullRequest
from reviews.services.sync import pull_request_facts_fetch
from tests.factories import RepositoryFactory

pytestmark = pytest.mark.django_db


def test_a_malformed_answer_is_recorded_on_the_row(fake_github, github_connection, monkeypatch):
    from tests.fakes.github import FakeGitHub

    original = FakeGitHub._pull_json

    def corrupted(self, *args, **kwargs):
        answer = original(self, *args, **kwargs)
        return {**answer, "user": "ada"}  # a string where GitHub sends an account object

    fake_github.add_repo("acme/shop")
    fake_github.add_pull("acme/shop", number=7, author="ada", head_sha="7" * 40)
    fake_github.add_file("acme/shop", 7, "app.py", patch="@@ -1 +1 @@\n-a\n+b")
    repository = RepositoryFactory(connection=github_connection, full_path="acme/shop")
    now = dt.datetime.now(dt.UTC)
    pull_request = PullRequest.objects.create(
        repository=repository,
        number=7,
        title="t",
        state=PullRequest.State.OPEN,
        head_sha="7" * 40,
        created_at=now,
        updated_at=now,
    )
    monkeypatch.setattr(FakeGitHub, "_pull_json", corrupted)
    fetched = pull_request_facts_fetch(pull_request=pull_request)
    pull_request.refresh_from_db()
    assert not fetched
    assert "user" in pull_request.facts_error
