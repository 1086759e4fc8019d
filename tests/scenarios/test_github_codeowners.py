"""CODEOWNERS read from the repository through the contents API: GitHub's locations in GitHub's order, the pull
request's base branch, conditional requests, a pasted override, syntax errors and read failures that keep the
rules asking for code owners pending."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import CodeownersFile, PolicyEvaluation, Repository
from reviews.tasks import refresh_codeowners
from tests.scenarios.conftest import REPO

pytestmark = pytest.mark.django_db

OWNERS_MUST_APPROVE = "rules:\n  - name: owners\n    require: {code_owners: true}\n"


def test_the_code_owners_in_the_repository_file_must_approve(github):
    github.fake.set_content(REPO, ".github/CODEOWNERS", "# ledger\n/ledger/** @alice @bob\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.open(1, author="ada")
    assert github.statuses(1)[-1] == ("pending", "Needs a code owner of ledger/** (alice, bob)")
    github.review(1, "cy")
    assert github.verdict(1) == "pending"
    github.review(1, "alice")
    assert github.verdict(1) == "success"
    trace = PolicyEvaluation.objects.filter(pull_request__number=1).latest("evaluated_at", "pk").trace
    assert "code owners from .github/CODEOWNERS on main" in trace["rules"][0]["reason"]


def test_github_reads_dot_github_before_the_root_and_docs(github):
    github.fake.set_content(REPO, "docs/CODEOWNERS", "* @dora\n")
    github.fake.set_content(REPO, "CODEOWNERS", "* @rob\n")
    github.fake.set_content(REPO, ".github/CODEOWNERS", "* @gil\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.open(1, author="ada")
    github.review(1, "rob")
    assert github.verdict(1) == "pending"
    github.review(1, "gil")
    assert github.verdict(1) == "success"


def test_the_file_is_read_from_the_base_branch(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.fake.set_content(REPO, "CODEOWNERS", "* @bob\n", branch="release")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.fake.add_pull(REPO, number=1, author="ada", head="ada/fix", base="release", head_sha="1" * 40)
    github.fake.add_commit(REPO, 1, author_login="ada")
    github.fake.add_file(REPO, 1, "ledger/book.py")
    github.pull_event("opened", 1)
    github.review(1, "alice")
    assert github.verdict(1) == "pending"
    github.review(1, "bob")
    assert github.verdict(1) == "success"


def test_an_unchanged_file_is_asked_for_conditionally_and_costs_no_quota(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.open(1, author="ada")
    CodeownersFile.objects.update(fetched_at=timezone.now() - dt.timedelta(hours=1))
    github.fake.clear_log()
    remaining = github.fake.rate_remaining
    github.run(refresh_codeowners)
    [asked] = github.fake.requests_to("/contents/CODEOWNERS")
    assert asked.status == 304
    # GitHub charges the 404 for .github/CODEOWNERS (looked at first), not the 304.
    assert github.fake.rate_remaining == remaining - 1


def test_a_file_that_cannot_be_read_keeps_code_owner_rules_pending_until_it_can(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.fake.fail_next("/contents/", 502)
    github.open(1, author="ada")
    state, description = github.statuses(1)[-1]
    assert state == "pending" and description.startswith("Could not read CODEOWNERS from GitHub (last try: GET")
    github.run(refresh_codeowners)  # the beat reads it again, and posts what it changed
    assert github.statuses(1)[-1] == ("pending", "Needs a code owner of * (alice)")
    github.review(1, "bob")
    assert github.verdict(1) == "pending"
    github.review(1, "alice")
    assert github.verdict(1) == "success"


def test_a_file_with_errors_keeps_code_owner_rules_pending_and_says_which_line(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n/ledger/** payments-team\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.open(1, author="ada")
    github.review(1, "alice")
    state, description = github.statuses(1)[-1]
    assert state == "pending"
    assert description.startswith("Fix CODEOWNERS (line 2: 'payments-team' is not an owner")


def test_rules_that_ask_nothing_of_code_owners_do_not_wait_for_the_file(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.open(1, author="ada")
    github.review(1, "bob")
    assert github.verdict(1) == "success"
    assert not github.fake.requests_to("/contents/")  # no rule needs it: no quota spent on it


def test_a_codeowners_pasted_in_tandem_overrides_the_file_and_says_so(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    Repository.objects.filter(full_path=REPO).update(codeowners="* @bob\n")
    github.open(1, author="ada")
    github.review(1, "bob")
    assert github.verdict(1) == "success"
    assert not github.fake.requests_to("/contents/")
    trace = PolicyEvaluation.objects.filter(pull_request__number=1).latest("evaluated_at", "pk").trace
    assert "pasted in Tandem, overriding the repository's file" in trace["rules"][0]["reason"]


def test_a_push_that_changes_codeowners_on_the_base_branch_posts_new_verdicts(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.open(1, author="ada")
    github.review(1, "bob")
    assert github.verdict(1) == "pending"

    github.fake.set_content(REPO, "CODEOWNERS", "* @alice @bob\n")
    commit = github.fake.add_commit(REPO, author_login="alice", message="Bob owns it too")
    git = commit["commit"]
    push_commit = {
        "id": commit["sha"],
        "message": git["message"],
        "timestamp": git["author"]["date"],
        "author": {**git["author"], "username": "alice"},
        "committer": {**git["committer"], "username": "alice"},
        "added": [],
        "modified": ["CODEOWNERS"],
        "removed": [],
    }
    github.send("push", {"ref": "refs/heads/main", "commits": [push_commit], "after": commit["sha"]}, sender="alice")
    assert github.verdict(1) == "success"


def test_the_beat_reads_no_codeowners_that_no_open_pull_request_waits_on(github):
    github.fake.set_content(REPO, "CODEOWNERS", "* @alice\n")
    github.use_policy(OWNERS_MUST_APPROVE)
    github.open(1, author="ada")
    github.pull_event("closed", 1, state="closed")
    CodeownersFile.objects.update(fetched_at=timezone.now() - dt.timedelta(hours=1))
    github.fake.clear_log()
    github.run(refresh_codeowners)
    assert not github.fake.requests_to("/contents/")
