"""A value of the wrong type in a GraphQL answer (GitHub's or GitLab's) is a PayloadError naming its path, never an
AttributeError and never a value coerced into something else (a login ["mallory"] stored as "['mallory']"); a
sync that meets one records it and keeps its watermark, as for a REST answer (issue 14 review)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from reviews.integrations.github_api import GitHubClient
from reviews.integrations.gitlab_api import GitLabClient
from reviews.integrations.records import PayloadError, RepositoryRecord
from reviews.models import Connection, PullRequest, SyncRun
from reviews.services.sync import repository_for_sync, repository_sync
from tests.fakes import github_graphql as fake_github_graphql
from tests.fakes import gitlab_graphql as fake_gitlab_graphql
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab

REPO = "octocat/Hello-World"
Change = Callable[[dict[str, Any]], Any]


def _corrupt_github(monkeypatch: pytest.MonkeyPatch, change: Change) -> None:
    """Every pull request GitHub's GraphQL answers with goes through `change` first."""
    serve = fake_github_graphql.serve

    def corrupted(fake: Any, body: Any) -> Any:
        status, payload, headers = serve(fake, body)
        repository = payload["data"]["repository"]
        nodes = repository["pullRequests"]["nodes"] if "pullRequests" in repository else repository.values()
        for node in nodes:
            change(node)
        return status, payload, headers

    monkeypatch.setattr(fake_github_graphql, "serve", corrupted)


def _corrupt_gitlab(monkeypatch: pytest.MonkeyPatch, change: Change) -> None:
    """Every merge request GitLab's GraphQL answers with goes through `change` first."""
    serve = fake_gitlab_graphql.serve

    def corrupted(fake: Any, body: Any) -> Any:
        status, payload = serve(fake, body)
        for node in payload["data"]["project"]["mergeRequests"]["nodes"]:
            change(node)
        return status, payload

    monkeypatch.setattr(fake_gitlab_graphql, "serve", corrupted)


# --- GitHub ---------------------------------------------------------------------------------------------------


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        fake.add_pull(REPO, number=1, author="octocat")
        yield fake


def _github_details(github: FakeGitHub) -> list[Any]:
    client = GitHubClient(github.url, github.token, seconds_between_writes=None)
    repository = RepositoryRecord(provider="github", external_id="1296269", full_path=REPO)
    return list(client.pull_requests_details(REPO, [1], repository))


def _set_connection(key: str, value: Any) -> Change:
    return lambda node: node.update({key: {"totalCount": 1, "nodes": value, "pageInfo": {"hasNextPage": False}}})


GITHUB_WRONG = [
    ("author-str", lambda node: node.update(author="octocat"), "pullRequest(1).author: expected an object"),
    ("login-list", lambda node: node["author"].update(login=["mallory"]), "pullRequest(1).author.login: expected a"),
    ("mergeCommit-list", lambda node: node.update(mergeCommit=["abc"]), "pullRequest(1).mergeCommit: expected an"),
    ("reviews-nodes-str", _set_connection("reviews", "abc"), "pullRequest(1).reviews.nodes: expected an array"),
    ("commit-node-int", _set_connection("commits", [7]), "pullRequest(1).commits.nodes[0]: expected an object"),
    (
        "git-email-int",
        _set_connection("commits", [{"commit": {"oid": "a" * 40, "author": {"email": 5}}}]),
        "pullRequest(1).commits.nodes[0].commit.author.email: expected a string",
    ),
    (
        "hasNextPage-str",
        lambda node: node.update(labels={"nodes": [], "pageInfo": {"hasNextPage": "yes"}}),
        "pullRequest(1).labels.pageInfo.hasNextPage: expected a boolean",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [case[1:] for case in GITHUB_WRONG], ids=[case[0] for case in GITHUB_WRONG]
)
def test_a_wrong_type_in_githubs_graphql_answer_is_a_payload_error_naming_its_path(
    github, monkeypatch, change, message
):
    _corrupt_github(monkeypatch, change)
    with pytest.raises(PayloadError, match=re.escape(message)):
        _github_details(github)


# --- GitLab ---------------------------------------------------------------------------------------------------

GITLAB_PATH = "acme/api"


@pytest.fixture
def gitlab():
    with FakeGitLab() as fake:
        fake.add_project(GITLAB_PATH, project_id=4242)
        fake.add_merge_request(GITLAB_PATH, iid=1, author="alice")
        fake.add_approval(GITLAB_PATH, 1, user="bob")
        yield fake


def _gitlab_details(gitlab: FakeGitLab) -> list[Any]:
    client = GitLabClient(gitlab.url, gitlab.token)
    listed = list(client.merge_requests_since(GITLAB_PATH, None))
    return list(client.merge_requests_details(GITLAB_PATH, listed))


NODE = "project.mergeRequests.nodes[0]"
GITLAB_WRONG = [
    ("notes-str", lambda node: node.update(notes="abc"), f"{NODE}.notes: expected an object"),
    ("notes-nodes-obj", lambda node: node["notes"].update(nodes={"a": 1}), f"{NODE}.notes.nodes: expected an array"),
    (
        "note-author-list",
        lambda node: node["notes"]["nodes"][0].update(author=["bob"]),
        f"{NODE}.notes.nodes[0].author: expected an object",
    ),
    (
        "approver-username-list",
        lambda node: node["approvedBy"]["nodes"][0].update(username=["mallory"]),
        f"{NODE}.approvedBy.nodes[0].username: expected a string",
    ),
    (
        "hasNextPage-str",
        lambda node: node["approvedBy"]["pageInfo"].update(hasNextPage="no"),
        f"{NODE}.approvedBy.pageInfo.hasNextPage: expected a boolean",
    ),
    ("summary-list", lambda node: node.update(diffStatsSummary=[3]), f"{NODE}.diffStatsSummary: expected an object"),
    ("status-int", lambda node: node.update(detailedMergeStatus=7), f"{NODE}.detailedMergeStatus: expected a string"),
    ("iid-list", lambda node: node.update(iid=["1"]), f"{NODE}.iid: expected an id"),
]


@pytest.mark.parametrize(
    ("change", "message"), [case[1:] for case in GITLAB_WRONG], ids=[case[0] for case in GITLAB_WRONG]
)
def test_a_wrong_type_in_gitlabs_graphql_answer_is_a_payload_error_naming_its_path(
    gitlab, monkeypatch, change, message
):
    _corrupt_gitlab(monkeypatch, change)
    with pytest.raises(PayloadError, match=re.escape(message)):
        _gitlab_details(gitlab)


# --- a sync that meets one ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_a_sync_records_an_unreadable_graphql_answer_and_keeps_its_watermark(provider, monkeypatch):
    fake_class, corrupt = (FakeGitHub, _corrupt_github) if provider == "github" else (FakeGitLab, _corrupt_gitlab)
    with fake_class() as fake:
        if provider == "github":
            fake.seed_repository(REPO, n_pulls=3)
        else:
            fake.seed_project(REPO, n_merge_requests=3)
        connection = Connection.objects.create(provider=provider, name="vcs", base_url=fake.url, api_token=fake.token)
        repository = repository_for_sync(provider=provider, full_path=REPO, connection=connection)
        repository_sync(repository=repository, graphql=True)
        repository.refresh_from_db()
        watermark = repository.synced_until
        assert watermark is not None
        if provider == "github":
            fake.touch_pull(REPO, 2)
            corrupt(monkeypatch, lambda node: node["author"].update(login=["mallory"]))
        else:
            fake.touch_merge_request(REPO, 2)
            corrupt(monkeypatch, lambda node: node.update(detailedMergeStatus=["x"]))
        with pytest.raises(PayloadError):
            repository_sync(repository=repository, graphql=True)
    run = SyncRun.objects.order_by("pk").last()
    assert run is not None and run.status == SyncRun.Status.FAILED
    assert run.error.startswith("PayloadError: ") and "expected a" in run.error
    repository.refresh_from_db()
    assert repository.synced_until == watermark
    assert not PullRequest.objects.filter(author__identities__value="['mallory']").exists()
