"""Histories of webhooks, as GitHub sends them, against the fake GitHub; the statuses Tandem posts are read back.

Each step changes the fake's state first (as GitHub does before it sends the hook), then delivers the webhook
built from that state, and runs what the delivery queued (evaluation, report) inline."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from django.utils import timezone

from reviews.models import PullRequest, Repository

SECRET = "scenario-secret"
REPO = "acme/ledger"


class GitHubScenario:
    def __init__(self, client: Any, capture: Any, fake: Any, connection: Any) -> None:
        self.connection = connection
        self.client = client
        self.capture = capture
        self.fake = fake
        self.repo_json = fake.add_repo(REPO)
        self.deliveries: list[tuple[str, str, bytes]] = []

    # --- delivering webhooks ---

    def send(self, event: str, payload: dict[str, Any], *, sender: str = "ada") -> str:
        body = json.dumps({**payload, "repository": self.repo_json, "sender": self.fake._user_json(sender)}).encode()
        delivery_id = str(uuid.uuid4())
        self.deliveries.append((event, delivery_id, body))
        self._post(event, delivery_id, body)
        return delivery_id

    def redeliver(self, delivery_id: str) -> None:
        """GitHub's "Redeliver": the same delivery id and body again."""
        event, _, body = next(item for item in self.deliveries if item[1] == delivery_id)
        self._post(event, delivery_id, body)

    def _post(self, event: str, delivery_id: str, body: bytes) -> None:
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with self.capture(execute=True):
            response = self.client.post(
                "/webhooks/github/",
                data=body,
                content_type="application/json",
                HTTP_X_GITHUB_EVENT=event,
                HTTP_X_GITHUB_DELIVERY=delivery_id,
                HTTP_X_HUB_SIGNATURE_256=signature,
            )
        assert response.status_code in (200, 202), response.content

    def run(self, function: Any, **kwargs: Any) -> Any:
        """Call a service or task as a beat or a lead would, running what it queues once it commits."""
        with self.capture(execute=True):
            return function(**kwargs)

    # --- what happens on GitHub ---

    def open(self, number: int, *, author: str = "ada", files: dict[str, str] | None = None) -> str:
        branch = f"{author}/change-{number}"
        self.fake.add_pull(REPO, number=number, author=author, head=branch, head_sha=f"{number:x}" * 40)
        first = self.fake.add_commit(REPO, number, author_login=author, message=f"Start change {number}")
        for path, patch in (files or {"ledger/book.py": PATCH_V1}).items():
            self.fake.add_file(REPO, number, path, patch=patch)
        return self.pull_event("opened", number, sender=author) or first["sha"]

    def pull_event(self, action: str, number: int, *, sender: str = "ada", **changes: Any) -> str:
        pull = self.fake.update_pull(REPO, number, **changes) if changes else self.fake.touch_pull(REPO, number)
        self.send("pull_request", {"action": action, "number": number, "pull_request": pull}, sender=sender)
        return ""

    def review(self, number: int, reviewer: str, state: str = "APPROVED", *, commit_id: str | None = None) -> str:
        review = self.fake.add_review(REPO, number, reviewer=reviewer, state=state, commit_id=commit_id)
        pull = self.fake.touch_pull(REPO, number)
        payload = {"action": "submitted", "review": review, "pull_request": pull}
        return self.send("pull_request_review", payload, sender=reviewer)

    def push(
        self,
        number: int,
        *,
        pusher: str,
        author: str | None = None,
        committer: str | None = None,
        files: dict[str, str] | None = None,
        web_flow_merge: bool = False,
    ) -> str:
        """A commit pushed to the pull request's branch: the push hook, then `synchronize`. Returns the new head."""
        pull = self.fake._pull(REPO, number)
        extra: dict[str, Any] = {}
        if web_flow_merge:
            extra = {
                "committer_login": "web-flow",
                "committer_name": "GitHub",
                "committer_email": "noreply@github.com",
                "parents": [pull.head_sha, self.fake._repo(REPO).history[0].sha],
                "message": f"Merge branch 'main' into {pull.head_ref}",
            }
        elif committer is not None:
            extra = {"committer_login": committer, "committer_name": committer.capitalize()}
            extra["committer_email"] = f"{committer}@example.com"
        before = pull.head_sha
        commit = self.fake.add_commit(REPO, number, author_login=author or pusher, **extra)
        if files is not None:
            pull.files.clear()
            for path, patch in files.items():
                self.fake.add_file(REPO, number, path, patch=patch)
        git = commit["commit"]
        push_commit = {
            "id": commit["sha"],
            "message": git["message"],
            "timestamp": git["author"]["date"],
            "author": {**git["author"], "username": author or pusher},
            "committer": {**git["committer"], "username": committer or ("web-flow" if web_flow_merge else pusher)},
        }
        payload = {
            "ref": f"refs/heads/{pull.head_ref}",
            "before": before,
            "after": commit["sha"],
            "commits": [push_commit],
            "pusher": {"name": pusher, "email": f"{pusher}@example.com"},
        }
        self.send("push", payload, sender=pusher)
        self.pull_event("synchronize", number, sender=pusher)
        return str(commit["sha"])

    def status(self, sha: str, context: str, state: str) -> str:
        payload = {
            "id": self.fake._new_id(),
            "sha": sha,
            "context": context,
            "state": state,
            "description": "",
            "target_url": None,
            "updated_at": timezone.now().isoformat(),
            "created_at": timezone.now().isoformat(),
        }
        return self.send("status", payload, sender="ci-bot")

    # --- reading back ---

    def repository(self) -> Repository:
        """The repository as Tandem knows it (created now, as the first webhook would, for a policy set first)."""
        repository, _ = Repository.objects.get_or_create(
            connection=self.connection,
            external_id=str(self.repo_json["id"]),
            defaults={"full_path": REPO, "default_branch": self.repo_json["default_branch"]},
        )
        return repository

    def use_policy(self, document: str) -> None:
        from reviews.services.policies import policy_save

        self.run(policy_save, repository=self.repository(), document=document)

    def head(self, number: int) -> str:
        return str(self.fake._pull(REPO, number).head_sha)

    def statuses(self, number: int) -> list[tuple[str, str]]:
        """(state, description) of every `tandem/review-policy` posted on the pull request's current head."""
        head = self.head(number)
        return [
            (posted["state"], posted["description"])
            for posted in self.fake.statuses_posted
            if posted["sha"] == head and posted["context"] == "tandem/review-policy"
        ]

    def verdict(self, number: int) -> str:
        posted = self.statuses(number)
        assert posted, f"no status posted on pull request {number}'s head"
        return posted[-1][0]

    def description(self, number: int) -> str:
        return self.statuses(number)[-1][1]

    def pull_request(self, number: int) -> PullRequest:
        return PullRequest.objects.get(repository__full_path=REPO, number=number)


PATCH_V1 = "@@ -10,3 +10,4 @@ def post(entry):\n-    book(entry)\n+    checked = check(entry)\n+    book(checked)"
PATCH_V2 = "@@ -10,3 +10,4 @@ def post(entry):\n-    book(entry)\n+    checked = verify(entry)\n+    book(checked)"
PATCH_V2_REBASED = PATCH_V2.replace("@@ -10,3 +10,4 @@", "@@ -30,3 +30,4 @@")


@pytest.fixture
def github(client, django_capture_on_commit_callbacks, fake_github, github_connection) -> GitHubScenario:
    github_connection.webhook_secret = SECRET
    github_connection.save()
    return GitHubScenario(client, django_capture_on_commit_callbacks, fake_github, github_connection)


GITLAB_TOKEN = "scenario-gitlab-token"


def _gitlab_time(value: str) -> str:
    import datetime as dt

    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class GitLabScenario:
    """Merge request hooks as GitLab sends them, against the fake GitLab; statuses read back from it."""

    def __init__(self, client: Any, capture: Any, fake: Any, connection: Any) -> None:
        self.client = client
        self.capture = capture
        self.fake = fake
        self.connection = connection
        self.project = fake.add_project(REPO)

    def run(self, function: Any, **kwargs: Any) -> Any:
        with self.capture(execute=True):
            return function(**kwargs)

    def repository(self) -> Repository:
        repository, _ = Repository.objects.get_or_create(
            connection=self.connection,
            external_id=str(self.project["id"]),
            defaults={"full_path": REPO, "default_branch": self.project["default_branch"]},
        )
        return repository

    def use_policy(self, document: str) -> None:
        from reviews.services.policies import policy_save

        self.run(policy_save, repository=self.repository(), document=document)

    def open(self, iid: int, *, author: str = "ada", diff: str = PATCH_V1) -> None:
        self.fake.add_merge_request(REPO, iid=iid, author=author, source_branch=f"{author}/change", sha=f"{iid:x}" * 40)
        self.fake.add_diff(REPO, iid, new_path="ledger/book.py", diff=diff)
        self.hook(iid, "open", author)

    def approve(self, iid: int, user: str) -> None:
        self.fake.add_approval(REPO, iid, user=user)
        self.hook(iid, "approved", user)

    def push(self, iid: int, sha: str, diff: str) -> None:
        old = self.fake.merge_request(REPO, iid)["sha"]
        self.fake._projects[REPO].merge_requests[iid].diffs.clear()
        self.fake.add_diff(REPO, iid, new_path="ledger/book.py", diff=diff)
        self.fake.add_commit(REPO, iid, sha=sha, push_note=True)
        self.hook(iid, "update", "ada", oldrev=old)

    def push_by(self, iid: int, *, pusher: str, sha: str, diff: str) -> None:
        """`pusher` pushes a commit authored by the merge request's author: the push hook, then the update hook."""
        mr = self.fake.merge_request(REPO, iid)
        old = mr["sha"]
        self.fake._projects[REPO].merge_requests[iid].diffs.clear()
        self.fake.add_diff(REPO, iid, new_path="ledger/book.py", diff=diff)
        commit = self.fake.add_commit(REPO, iid, sha=sha, author_name="Ada", author_email="ada@example.com")
        user = self.fake.add_user(pusher)
        payload = {
            "object_kind": "push",
            "event_name": "push",
            "ref": f"refs/heads/{mr['source_branch']}",
            "before": old,
            "after": sha,
            "user_id": user["id"],
            "user_name": user["name"],
            "user_username": pusher,
            "user_email": "",
            "project_id": self.project["id"],
            "project": {
                "id": self.project["id"],
                "name": self.project["name"],
                "web_url": self.project["web_url"],
                "path_with_namespace": self.project["path_with_namespace"],
                "default_branch": self.project["default_branch"],
            },
            "commits": [
                {
                    "id": sha,
                    "message": commit.get("message", "Change things"),
                    "timestamp": commit.get("authored_date") or commit.get("created_at"),
                    "author": {"name": "Ada", "email": "ada@example.com"},
                    "added": [],
                    "modified": ["ledger/book.py"],
                    "removed": [],
                }
            ],
            "total_commits_count": 1,
        }
        with self.capture(execute=True):
            response = self.client.post(
                "/webhooks/gitlab/",
                data=json.dumps(payload),
                content_type="application/json",
                HTTP_X_GITLAB_EVENT="Push Hook",
                HTTP_X_GITLAB_TOKEN=GITLAB_TOKEN,
                HTTP_X_GITLAB_EVENT_UUID=str(uuid.uuid4()),
            )
        assert response.status_code == 202, response.content
        self.hook(iid, "update", pusher, oldrev=old)

    def hook(self, iid: int, action: str, user: str, **extra: object) -> None:
        mr = self.fake.touch_merge_request(REPO, iid)
        actor = self.fake.add_user(user)
        project = self.project
        payload = {
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": {"id": actor["id"], "name": actor["name"], "username": actor["username"], "email": "[REDACTED]"},
            "project": {
                "id": project["id"],
                "name": project["name"],
                "web_url": project["web_url"],
                "path_with_namespace": project["path_with_namespace"],
                "default_branch": project["default_branch"],
            },
            "object_attributes": {
                "id": mr["id"],
                "iid": mr["iid"],
                "title": mr["title"],
                "description": mr["description"],
                "state": mr["state"],
                "draft": mr["draft"],
                "author_id": mr["author"]["id"],
                "source_branch": mr["source_branch"],
                "target_branch": mr["target_branch"],
                "created_at": _gitlab_time(mr["created_at"]),
                "updated_at": _gitlab_time(mr["updated_at"]),
                "merge_commit_sha": None,
                "url": mr["web_url"],
                "last_commit": {"id": mr["sha"]},
                "action": action,
                **extra,
            },
            "labels": [],
        }
        with self.capture(execute=True):
            response = self.client.post(
                "/webhooks/gitlab/",
                data=json.dumps(payload),
                content_type="application/json",
                HTTP_X_GITLAB_EVENT="Merge Request Hook",
                HTTP_X_GITLAB_TOKEN=GITLAB_TOKEN,
                HTTP_X_GITLAB_EVENT_UUID=str(uuid.uuid4()),
            )
        assert response.status_code == 202, response.content

    def statuses(self, iid: int) -> list[tuple[str, str]]:
        head = self.fake.merge_request(REPO, iid)["sha"]
        return [
            (posted["status"], posted["description"])
            for posted in self.fake.statuses_posted
            if posted["sha"] == head and posted["name"] == "tandem/review-policy"
        ]

    def verdict(self, iid: int) -> str:
        posted = self.statuses(iid)
        assert posted, f"no status posted on merge request {iid}'s head"
        return posted[-1][0]


@pytest.fixture
def gitlab(client, django_capture_on_commit_callbacks, fake_gitlab, gitlab_connection) -> GitLabScenario:
    gitlab_connection.webhook_secret = GITLAB_TOKEN
    gitlab_connection.save()
    return GitLabScenario(client, django_capture_on_commit_callbacks, fake_gitlab, gitlab_connection)
