"""policy-bot's documented approval semantics, replayed as histories of GitHub webhooks; the statuses posted on
the pull request's head are read back from the fake GitHub."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reviews.models import Person, Repository
from reviews.services.policies import pull_request_override
from reviews.services.teams import membership_set, team_upsert
from tests.scenarios.conftest import PATCH_V1, PATCH_V2, PATCH_V2_REBASED, REPO

pytestmark = pytest.mark.django_db


def test_a_push_that_changes_the_patch_invalidates_the_approval(github):
    github.open(1, author="ada")
    github.review(1, "bob")
    assert github.verdict(1) == "success"
    github.push(1, pusher="ada", files={"ledger/book.py": PATCH_V2})
    assert github.verdict(1) == "pending"


def test_a_pure_rebase_keeps_the_approval(github):
    github.open(1, author="ada", files={"ledger/book.py": PATCH_V2})
    github.review(1, "bob")
    github.push(1, pusher="ada", files={"ledger/book.py": PATCH_V2_REBASED})
    assert github.verdict(1) == "success"


def test_changes_requested_blocks_until_that_reviewer_approves(github):
    github.open(1, author="ada")
    github.review(1, "cy", "CHANGES_REQUESTED")
    github.review(1, "bob")
    assert github.statuses(1)[-1] == ("failure", "Changes requested by cy")
    github.review(1, "cy", "COMMENTED")
    assert github.verdict(1) == "failure"  # a comment does not take a change request back
    github.review(1, "cy")
    assert github.verdict(1) == "success"


def test_required_checks_wait_then_pass_or_block(github):
    github.use_policy("rules:\n  - name: one\n    require: {approvals: 1}\nchecks: [ci/build]\n")
    github.open(1, author="ada")
    github.review(1, "bob")
    assert github.statuses(1)[-1] == ("pending", "Waiting for ci/build")
    github.status(github.head(1), "ci/build", "failure")
    assert github.statuses(1)[-1] == ("failure", "ci/build failed")
    github.status(github.head(1), "ci/build", "success")
    assert github.verdict(1) == "success"


def test_every_rule_that_applies_must_be_satisfied(github):
    github.use_policy(
        """
rules:
  - name: ledger needs a lead
    if: {paths: ["ledger/**"]}
    require: {approvals: 1, teams: [leads]}
  - name: docs need nobody
    if: {paths: ["docs/**"]}
    require: {approvals: 0}
  - name: everything needs one
    require: {approvals: 1}
""",
    )
    github.open(1, author="ada", files={"ledger/book.py": PATCH_V1, "docs/ledger.md": "@@ -1 +1 @@\n-a\n+b"})
    github.review(1, "bob")
    assert github.statuses(1)[-1] == ("pending", "Needs 1 approval from @leads (1 other approved)")
    github.review(1, "lee")
    lead = Person.objects.get(identities__value="lee")
    github.run(membership_set, team=team_upsert(slug="leads", name="Leads"), person=lead)
    assert github.statuses(1)[-1] == ("success", "Approved: 3 rules satisfied")


def test_an_override_covers_its_head_until_a_push_changes_the_patch(github):
    github.open(1, author="ada")
    assert github.verdict(1) == "pending"
    team = team_upsert(slug="ledger", name="Ledger")
    Repository.objects.filter(full_path=REPO).update(team=team)
    lead = Person.objects.create(display_name="Lee")  # not the author: nobody overrides their own change
    membership_set(team=team, person=lead, role="lead")
    pull_request = github.pull_request(1)
    github.run(pull_request_override, pull_request=pull_request, person=lead, reason="Hotfix for INC-9")
    assert github.statuses(1)[-1] == ("success", "Overridden by Lee: Hotfix for INC-9")
    github.push(1, pusher="ada", files={"ledger/book.py": PATCH_V2})
    assert github.verdict(1) == "pending"


def test_a_review_that_arrives_before_its_pull_request_counts_once_the_pull_request_does(github):
    github.fake.add_pull(REPO, number=1, author="ada", head="ada/early", head_sha="1" * 40)
    github.fake.add_commit(REPO, 1, author_login="ada")
    github.fake.add_file(REPO, 1, "ledger/book.py", patch=PATCH_V1)
    github.review(1, "bob")  # GitHub delivered the review's hook first
    github.pull_event("opened", 1)
    assert github.verdict(1) == "success"


def test_an_old_synchronize_delivered_late_does_not_bring_back_an_old_head(github):
    github.open(1, author="ada")
    old = github.fake.update_pull(REPO, 1)  # the hook for the first head, held up somewhere
    github.push(1, pusher="ada", files={"ledger/book.py": PATCH_V2})
    new_head = github.head(1)
    github.review(1, "bob")
    github.send(
        "pull_request",
        {
            "action": "synchronize",
            "number": 1,
            "pull_request": {**old, "head": {**old["head"], "sha": "1" * 40}, "updated_at": "2020-01-01T00:00:00Z"},
        },
    )
    assert github.pull_request(1).head_sha == new_head
    assert github.verdict(1) == "success"


def test_a_redelivered_approval_changes_nothing_and_posts_nothing(github):
    github.open(1, author="ada")
    delivery = github.review(1, "bob")
    posted = len(github.fake.statuses_posted)
    github.redeliver(delivery)
    assert len(github.fake.statuses_posted) == posted
    assert github.verdict(1) == "success"


def test_files_that_answer_502_once_keep_the_verdict_pending_until_they_recover(github):
    github.use_policy("rules:\n  - name: ledger\n    if: {paths: ['ledger/**']}\n    require: {approvals: 2}\n")
    github.fake.fail_next("/files", 502)
    github.open(1, author="ada")
    state, description = github.statuses(1)[-1]
    assert state == "pending" and description.startswith("Waiting for the list of changed files from GitHub")
    assert "success" not in [state for state, _ in github.statuses(1)]

    from reviews.models import PullRequest
    from reviews.tasks import fetch_missing_facts

    PullRequest.objects.update(facts_retry_at=timezone.now())
    github.run(fetch_missing_facts)
    assert github.statuses(1)[-1] == ("pending", "Needs 2 approvals")


def approve_without_a_sha(github, number: int, reviewer: str) -> None:
    """An approval whose commit GitHub does not name (`commit_id: null`, as for a review of a commit since gone)."""
    review = github.fake.add_review(REPO, number, reviewer=reviewer)
    github.fake._repo(REPO).pulls[number].reviews[-1].commit_id = None
    pull = github.fake.touch_pull(REPO, number)
    payload = {"action": "submitted", "review": {**review, "commit_id": None}, "pull_request": pull}
    github.send("pull_request_review", payload, sender=reviewer)


def test_an_approval_with_no_sha_counts_only_once_known_to_follow_the_last_push(github):
    """Fail closed: with no sha, only its time tells an approval from the last push. Before any push Tandem saw,
    that time is not known ("not yet"); given before the push it is stale; given after, it counts."""
    github.open(1, author="ada")
    approve_without_a_sha(github, 1, "bob")
    assert github.verdict(1) == "pending"
    assert "not known yet whether given before the last push" in str(
        github.pull_request(1).evaluations.latest("pk").trace
    )
    github.push(1, pusher="ada", files={"ledger/book.py": PATCH_V2})
    assert github.verdict(1) == "pending"
    assert "stale after push" in str(github.pull_request(1).evaluations.latest("pk").trace)
    approve_without_a_sha(github, 1, "bob")
    assert github.verdict(1) == "success"
