"""Review policy end to end: webhooks in, evaluation, `tandem/review-policy` posted to the fake GitHub and the
fake GitLab, through PyGithub and python-gitlab."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid

import pytest

from reviews.models import Membership, Person, PolicyEvaluation, PolicyViolation, PullRequest, Repository
from reviews.services.policies import policy_save, pull_request_override
from reviews.services.teams import membership_set, team_upsert

pytestmark = pytest.mark.django_db

SECRET = "flow-secret"
REPO = "acme/shop"


@pytest.fixture
def github_flow(client, django_capture_on_commit_callbacks, fake_github, github_connection):
    """Posts GitHub webhooks built from the fake's own state, as GitHub would send them."""
    github_connection.webhook_secret = SECRET
    github_connection.save()
    repo_json = fake_github.add_repo(REPO)

    class Flow:
        fake = fake_github

        def send(self, event: str, payload: dict) -> None:
            body = json.dumps({**payload, "repository": repo_json, "sender": {"login": "ada", "id": 1}}).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(
                    "/webhooks/github/",
                    data=body,
                    content_type="application/json",
                    HTTP_X_GITHUB_EVENT=event,
                    HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
                    HTTP_X_HUB_SIGNATURE_256=signature,
                )
            assert response.status_code == 202, response.content

        def pull_event(self, action: str, pull: dict) -> None:
            self.send("pull_request", {"action": action, "number": pull["number"], "pull_request": pull})

        def review(self, number: int, reviewer: str, state: str = "APPROVED") -> None:
            review = fake_github.add_review(REPO, number, reviewer=reviewer, state=state)
            pull = fake_github.touch_pull(REPO, number)
            self.send("pull_request_review", {"action": "submitted", "review": review, "pull_request": pull})

        def push(self, number: int, head_sha: str, patch: str) -> None:
            fake_github._pull(REPO, number).files.clear()
            fake_github.add_file(REPO, number, "shop/cart.py", additions=2, deletions=1, patch=patch)
            pull = fake_github.update_pull(REPO, number, head_sha=head_sha)
            self.pull_event("synchronize", pull)

        def last_status(self) -> dict:
            return self.fake.statuses_posted[-1]

    return Flow()


PATCH_V1 = (
    "@@ -10,3 +10,4 @@ def total(cart):\n-    return sum(cart)\n+    amount = sum(cart)\n+    return round(amount, 2)"
)
PATCH_V2 = (
    "@@ -10,3 +10,4 @@ def total(cart):\n-    return sum(cart)\n+    amount = sum(cart)\n+    return round(amount, 4)"
)
PATCH_V2_REBASED = PATCH_V2.replace("@@ -10,3 +10,4 @@", "@@ -42,3 +42,4 @@")


def _team_with(*logins: str):
    team = team_upsert(slug="shop", name="Shop")
    Repository.objects.filter(full_path=REPO).update(team=team)
    return team


def test_github_story_from_opened_to_rebase(github_flow):
    fake = github_flow.fake
    pull = fake.add_pull(REPO, number=1, author="ada", head="ada/rounding", head_sha="a" * 40)
    fake.add_file(REPO, 1, "shop/cart.py", additions=2, deletions=1, patch=PATCH_V1)

    github_flow.pull_event("opened", fake.update_pull(REPO, 1))
    status = github_flow.last_status()
    assert (status["state"], status["context"], status["sha"]) == ("pending", "tandem/review-policy", "a" * 40)
    assert status["description"].startswith("Needs 1 approval")
    pull_request = PullRequest.objects.get(number=1)
    assert status["target_url"].endswith(f"/pulls/{pull_request.pk}/")

    github_flow.review(1, "ada")  # the author's own approval
    assert github_flow.last_status()["state"] == "pending"
    trace = PolicyEvaluation.objects.filter(pull_request=pull_request).latest("evaluated_at").trace
    discarded = trace["rules"][0]["approvals_discarded"]
    assert [(d["login"], d["reason"]) for d in discarded] == [("ada", "author")]

    github_flow.review(1, "bob")
    assert github_flow.last_status()["state"] == "success"

    github_flow.push(1, "b" * 40, PATCH_V2)  # a real change: bob's approval is stale
    status = github_flow.last_status()
    assert (status["state"], status["sha"]) == ("pending", "b" * 40)

    github_flow.review(1, "bob")
    assert github_flow.last_status()["state"] == "success"

    github_flow.push(1, "c" * 40, PATCH_V2_REBASED)  # a pure rebase: same change on a new base
    status = github_flow.last_status()
    assert (status["state"], status["sha"]) == ("success", "c" * 40)
    assert pull is not None


def test_changes_requested_blocks_until_the_same_reviewer_approves(github_flow):
    fake = github_flow.fake
    fake.add_pull(REPO, number=2, author="ada", head_sha="d" * 40)
    fake.add_file(REPO, 2, "shop/cart.py", patch=PATCH_V1)
    github_flow.pull_event("opened", fake.update_pull(REPO, 2))
    github_flow.review(2, "carol", state="CHANGES_REQUESTED")
    github_flow.review(2, "bob")
    assert github_flow.last_status()["state"] == "failure"
    github_flow.review(2, "carol")
    assert github_flow.last_status()["state"] == "success"


def test_unchanged_verdicts_are_not_posted_twice(github_flow):
    fake = github_flow.fake
    fake.add_pull(REPO, number=3, author="ada", head_sha="e" * 40)
    fake.add_file(REPO, 3, "shop/cart.py", patch=PATCH_V1)
    github_flow.pull_event("opened", fake.update_pull(REPO, 3))
    posted = len(fake.statuses_posted)
    evaluations = PolicyEvaluation.objects.count()
    calls = len(fake.requests)
    github_flow.pull_event("labeled", fake.update_pull(REPO, 3, labels=["bug"]))
    assert len(fake.requests) == calls  # same head: nothing to fetch, nothing to post
    assert len(fake.statuses_posted) == posted
    assert PolicyEvaluation.objects.count() == evaluations  # the same verdict is confirmed, not stored again
    assert PolicyEvaluation.objects.get(pull_request__number=3).last_evaluated_at is not None


def test_team_policy_requiring_two_approvals_and_a_lead_override(github_flow):
    fake = github_flow.fake
    fake.add_pull(REPO, number=4, author="ada", head_sha="f" * 40)
    fake.add_file(REPO, 4, "shop/cart.py", patch=PATCH_V1)
    github_flow.pull_event("opened", fake.update_pull(REPO, 4))
    team = _team_with()
    policy_save(team=team, document="rules:\n  - name: two reviewers\n    require: {approvals: 2}\n")
    github_flow.review(4, "bob")
    assert github_flow.last_status()["state"] == "pending"
    assert github_flow.last_status()["description"].startswith("Needs 1 more approval")

    pull_request = PullRequest.objects.get(number=4)
    # Not the author: nobody overrides a change they wrote (`override.allow_self` is off by default).
    lead = Person.objects.get(identities__value="bob")
    membership_set(team=team, person=lead, role=Membership.Role.LEAD)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        override = pull_request_override(pull_request=pull_request, person=lead, reason="Hotfix for INC-7")
    status = github_flow.last_status()
    assert status["state"] == "success"
    assert status["description"].startswith("Overridden by")
    assert override.followup_due_at > override.created_at


def test_merge_while_pending_is_a_violation(github_flow):
    fake = github_flow.fake
    fake.add_pull(REPO, number=5, author="ada", head_sha="9" * 40)
    fake.add_file(REPO, 5, "shop/cart.py", patch=PATCH_V1)
    github_flow.pull_event("opened", fake.update_pull(REPO, 5))
    from django.utils import timezone

    later = timezone.now() + dt.timedelta(seconds=5)  # GitHub's times have whole seconds
    merged = fake.update_pull(REPO, 5, state="closed", merged_at=later, closed_at=later, updated_at=later)
    github_flow.pull_event("closed", merged)
    violation = PolicyViolation.objects.get(pull_request__number=5)
    assert violation.outcome == "pending"


# --- the same story on GitLab ---------------------------------------------------------------------------------

GITLAB_TOKEN = "flow-gitlab-token"


def _gitlab_time(value: str) -> str:
    import datetime as _dt

    moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.fixture
def gitlab_flow(client, django_capture_on_commit_callbacks, fake_gitlab, gitlab_connection):
    gitlab_connection.webhook_secret = GITLAB_TOKEN
    gitlab_connection.save()
    project = fake_gitlab.add_project(REPO)

    class Flow:
        fake = fake_gitlab

        def hook(self, iid: int, action: str, user: str, **extra: object) -> None:
            mr = fake_gitlab.touch_merge_request(REPO, iid)
            actor = fake_gitlab.add_user(user)
            payload = {
                "object_kind": "merge_request",
                "event_type": "merge_request",
                "user": {
                    "id": actor["id"],
                    "name": actor["name"],
                    "username": actor["username"],
                    "email": "[REDACTED]",
                },
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
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(
                    "/webhooks/gitlab/",
                    data=json.dumps(payload),
                    content_type="application/json",
                    HTTP_X_GITLAB_EVENT="Merge Request Hook",
                    HTTP_X_GITLAB_TOKEN=GITLAB_TOKEN,
                    HTTP_X_GITLAB_EVENT_UUID=str(uuid.uuid4()),
                )
            assert response.status_code == 202, response.content

        def approve(self, iid: int, user: str) -> None:
            fake_gitlab.add_approval(REPO, iid, user=user)
            self.hook(iid, "approved", user)

        def push(self, iid: int, sha: str, diff: str) -> None:
            old = fake_gitlab.merge_request(REPO, iid)["sha"]
            fake_gitlab._projects[REPO].merge_requests[iid].diffs.clear()
            fake_gitlab.add_diff(REPO, iid, new_path="shop/cart.py", diff=diff)
            fake_gitlab.add_commit(REPO, iid, sha=sha, push_note=True)
            self.hook(iid, "update", "ada", oldrev=old)

        def last_status(self) -> dict:
            return fake_gitlab.statuses_posted[-1]

    return Flow()


def test_gitlab_story_from_opened_to_rebase(gitlab_flow):
    fake = gitlab_flow.fake
    fake.add_merge_request(REPO, iid=1, author="ada", source_branch="ada/rounding", sha="a" * 40)
    fake.add_diff(REPO, 1, new_path="shop/cart.py", diff=PATCH_V1)
    gitlab_flow.hook(1, "open", "ada")
    status = gitlab_flow.last_status()
    assert (status["status"], status["name"], status["sha"]) == ("pending", "tandem/review-policy", "a" * 40)

    gitlab_flow.approve(1, "ada")  # the author's own approval
    assert gitlab_flow.last_status()["status"] == "pending"

    gitlab_flow.approve(1, "bob")
    assert gitlab_flow.last_status()["status"] == "success"

    gitlab_flow.push(1, "b" * 40, PATCH_V2)
    status = gitlab_flow.last_status()
    assert (status["status"], status["sha"]) == ("pending", "b" * 40)

    fake.remove_approval(REPO, 1, user="bob")
    gitlab_flow.approve(1, "bob")
    assert gitlab_flow.last_status()["status"] == "success"

    gitlab_flow.push(1, "c" * 40, PATCH_V2_REBASED)
    status = gitlab_flow.last_status()
    assert (status["status"], status["sha"]) == ("success", "c" * 40)


# --- fail closed: a verdict waits for the facts it rests on ------------------------------------------------------

PAYMENTS_ONLY = "rules:\n  - name: payments\n    if: {paths: ['payments/**']}\n    require: {approvals: 2}\n"


def _backoff_elapses_and_the_beat_fires(capture) -> int:
    """The row's next try falls due, and the beat job that fetches missing facts runs."""
    from django.utils import timezone

    from reviews.tasks import fetch_missing_facts

    PullRequest.objects.update(facts_retry_at=timezone.now() - dt.timedelta(seconds=1))
    with capture(execute=True):
        return fetch_missing_facts()


def test_github_files_that_fail_to_arrive_hold_the_verdict_until_they_do(
    github_flow, django_capture_on_commit_callbacks
):
    fake = github_flow.fake
    fake.add_pull(REPO, number=7, author="ada", head_sha="7" * 40)
    fake.add_file(REPO, 7, "payments/ledger.py", patch=PATCH_V1)
    fake.fail_next("/pulls/7/files", 502, times=2)

    github_flow.pull_event("opened", fake.update_pull(REPO, 7))
    status = github_flow.last_status()
    assert (status["state"], status["sha"]) == ("pending", "7" * 40)
    assert status["description"].startswith("Waiting for the list of changed files from GitHub")

    # With no files, a paths-only policy would apply to nothing and pass with no review at all.
    with django_capture_on_commit_callbacks(execute=True):
        policy_save(team=_team_with(), document=PAYMENTS_ONLY)
    assert github_flow.last_status()["state"] == "pending"
    assert github_flow.last_status()["description"].startswith("Waiting for the list of changed files from GitHub")
    pull_request = PullRequest.objects.get(number=7)
    assert pull_request.facts_attempts == 2 and "502" in pull_request.facts_error

    assert _backoff_elapses_and_the_beat_fires(django_capture_on_commit_callbacks) == 1
    status = github_flow.last_status()
    assert (status["state"], status["sha"]) == ("pending", "7" * 40)
    assert status["description"].startswith("Needs 2 approvals")
    assert _backoff_elapses_and_the_beat_fires(django_capture_on_commit_callbacks) == 0  # nothing missing now

    github_flow.review(7, "bob")
    github_flow.review(7, "carol")
    assert github_flow.last_status()["state"] == "success"


def test_github_files_past_its_listing_limit_keep_the_verdict_pending(github_flow, django_capture_on_commit_callbacks):
    fake = github_flow.fake
    fake.add_pull(REPO, number=8, author="ada", head_sha="8" * 40)
    for index in range(3001):
        fake.add_file(REPO, 8, f"docs/page-{index:04}.md", patch=PATCH_V1)
    fake.add_file(REPO, 8, "payments/ledger.py", patch=PATCH_V1)  # listed 3,002nd: GitHub never shows it
    github_flow.pull_event("opened", fake.update_pull(REPO, 8))
    with django_capture_on_commit_callbacks(execute=True):
        policy_save(team=_team_with(), document=PAYMENTS_ONLY)

    status = github_flow.last_status()
    assert status["state"] == "pending"
    assert status["description"].startswith("GitHub listed 3,000 of 3,002 changed files")
    assert len(status["description"]) <= 140
    assert _backoff_elapses_and_the_beat_fires(django_capture_on_commit_callbacks) == 0  # asking again won't help


def test_gitlab_diff_still_being_prepared_holds_the_verdict_until_it_is_ready(
    gitlab_flow, django_capture_on_commit_callbacks
):
    fake = gitlab_flow.fake
    fake.add_merge_request(REPO, iid=9, author="ada", source_branch="ada/ledger", sha="9" * 40)
    fake.add_diff(REPO, 9, new_path="payments/ledger.py", diff=PATCH_V1)
    fake.set_diff_ready(REPO, 9, False)

    gitlab_flow.hook(9, "open", "ada")
    with django_capture_on_commit_callbacks(execute=True):
        policy_save(team=_team_with(), document=PAYMENTS_ONLY)
    status = gitlab_flow.last_status()
    assert (status["status"], status["sha"]) == ("pending", "9" * 40)
    assert status["description"].startswith("Waiting for the list of changed files from GitLab")
    assert "preparing" in PullRequest.objects.get(number=9).facts_error

    fake.set_diff_ready(REPO, 9, True)
    assert _backoff_elapses_and_the_beat_fires(django_capture_on_commit_callbacks) == 1
    # GitLab refuses pending -> pending: the new reason shows on the same unfinished status, now running.
    [shown] = [s for s in fake.statuses("9" * 40) if s["name"] == "tandem/review-policy"]
    assert (shown["status"], shown["description"]) == ("running", "Needs 2 approvals")
    evaluation = PolicyEvaluation.objects.filter(pull_request__number=9).latest("evaluated_at")
    assert evaluation.reported_at is not None and evaluation.description == "Needs 2 approvals"


def test_an_override_ends_when_a_push_changes_the_patch_but_survives_a_rebase(github_flow):
    from django.test import TestCase

    fake = github_flow.fake
    fake.add_pull(REPO, number=10, author="ada", head_sha="1" * 40)
    fake.add_file(REPO, 10, "shop/cart.py", patch=PATCH_V1)
    github_flow.pull_event("opened", fake.update_pull(REPO, 10))
    team = _team_with()
    pull_request = PullRequest.objects.get(number=10)
    lead = Person.objects.create(display_name="Lee the lead")  # not the author: allow_self is off
    membership_set(team=team, person=lead, role=Membership.Role.LEAD)
    with TestCase.captureOnCommitCallbacks(execute=True):
        pull_request_override(pull_request=pull_request, person=lead, reason="Hotfix for INC-9")
    assert github_flow.last_status()["state"] == "success"

    github_flow.push(10, "2" * 40, PATCH_V1.replace("@@ -10,3 +10,4 @@", "@@ -50,3 +50,4 @@"))  # a pure rebase
    assert (github_flow.last_status()["state"], github_flow.last_status()["sha"]) == ("success", "2" * 40)

    github_flow.push(10, "3" * 40, PATCH_V2)  # the patch changed: the override covered the old one only
    status = github_flow.last_status()
    assert (status["state"], status["sha"]) == ("pending", "3" * 40)
    trace = PolicyEvaluation.objects.filter(pull_request=pull_request).latest("evaluated_at").trace
    assert "no longer applies" in trace["override_ended"]["why"]
