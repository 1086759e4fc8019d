"""policy-bot's contributors: whoever authored, committed or pushed a commit may not approve the pull request
(allow_contributors: false, the default); GitHub's "Update branch" merge makes nobody a contributor."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_self_approval_does_not_count(github):
    github.open(1, author="ada")
    github.review(1, "ada")
    assert github.verdict(1) == "pending"
    github.review(1, "bob")
    assert github.verdict(1) == "success"


def test_a_pusher_of_someone_elses_commit_may_not_approve(github):
    github.open(1, author="ada")
    github.push(1, pusher="bob", author="ada")  # bob pushed ada's commit to her branch
    github.review(1, "bob")
    assert github.verdict(1) == "pending"
    assert github.pull_request(1).commits.filter(pushed_by__display_name__iexact="bob").exists()


def test_a_committer_who_did_not_author_may_not_approve(github):
    github.open(1, author="ada")
    github.push(1, pusher="ada", author="ada", committer="cy")  # cy rebased or amended ada's commit
    github.review(1, "cy")
    assert github.verdict(1) == "pending"
    github.review(1, "bob")
    assert github.verdict(1) == "success"


def test_a_commit_author_may_not_approve(github):
    github.open(1, author="ada")
    github.push(1, pusher="ada", author="cy")
    github.review(1, "cy")
    assert github.verdict(1) == "pending"


def test_update_branch_on_the_web_makes_nobody_a_contributor(github):
    github.open(1, author="ada")
    github.push(1, pusher="bob", author="bob", web_flow_merge=True)  # bob pressed "Update branch"
    github.review(1, "bob")
    assert github.verdict(1) == "success"


def test_contributors_may_approve_when_the_policy_allows_it(github):
    from reviews.models import Repository
    from reviews.services.policies import policy_save

    github.open(1, author="ada")
    github.push(1, pusher="bob", author="ada")
    github.review(1, "bob")
    assert github.verdict(1) == "pending"
    repository = Repository.objects.get(full_path="acme/ledger")
    document = "rules:\n  - name: one\n    require: {approvals: 1}\noptions: {allow_contributors: true}\n"
    github.run(policy_save, repository=repository, document=document)
    assert github.verdict(1) == "success"  # the policy's change alone posts the new verdict
