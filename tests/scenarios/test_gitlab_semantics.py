"""GitLab's approval semantics as histories of merge request hooks against the fake GitLab: approvals by the
author do not count, a push that changes the diff resets approvals and a rebase does not, and code owners come
from the repository's CODEOWNERS in GitLab's order (CODEOWNERS, docs/CODEOWNERS, .gitlab/CODEOWNERS)."""

from __future__ import annotations

import pytest

from reviews.models import PolicyEvaluation
from tests.scenarios.conftest import PATCH_V1, PATCH_V2, PATCH_V2_REBASED, REPO

pytestmark = pytest.mark.django_db

OWNERS_MUST_APPROVE = "rules:\n  - name: owners\n    require: {code_owners: true}\n"


def test_the_authors_approval_does_not_count_anothers_does(gitlab):
    gitlab.open(1, author="ada")
    gitlab.approve(1, "ada")
    assert gitlab.verdict(1) == "pending"
    gitlab.approve(1, "bob")
    assert gitlab.verdict(1) == "success"


def test_a_push_that_changes_the_diff_resets_the_approval_and_a_rebase_does_not(gitlab):
    gitlab.open(1, author="ada", diff=PATCH_V1)
    gitlab.approve(1, "bob")
    gitlab.push(1, "b" * 40, PATCH_V2)
    assert gitlab.verdict(1) == "pending"
    gitlab.fake.remove_approval(REPO, 1, user="bob")
    gitlab.approve(1, "bob")
    assert gitlab.verdict(1) == "success"
    gitlab.push(1, "c" * 40, PATCH_V2_REBASED)
    assert gitlab.verdict(1) == "success"


def test_gitlab_reads_the_root_codeowners_before_docs_and_dot_gitlab(gitlab):
    gitlab.fake.set_file(REPO, ".gitlab/CODEOWNERS", "* @gil\n")
    gitlab.fake.set_file(REPO, "docs/CODEOWNERS", "* @dora\n")
    gitlab.fake.set_file(REPO, "CODEOWNERS", "[Ledger]\n/ledger/ @rob\n")
    gitlab.use_policy(OWNERS_MUST_APPROVE)
    gitlab.open(1, author="ada")
    assert gitlab.statuses(1)[-1] == ("pending", "Needs a code owner of ledger/ (rob)")
    gitlab.approve(1, "gil")
    assert gitlab.verdict(1) == "pending"
    gitlab.approve(1, "rob")
    assert gitlab.verdict(1) == "success"


def test_an_unchanged_codeowners_is_answered_304(gitlab):
    from datetime import timedelta

    from django.utils import timezone

    from reviews.models import CodeownersFile
    from reviews.tasks import refresh_codeowners

    gitlab.fake.set_file(REPO, "CODEOWNERS", "* @rob\n")
    gitlab.use_policy(OWNERS_MUST_APPROVE)
    gitlab.open(1, author="ada")
    CodeownersFile.objects.update(fetched_at=timezone.now() - timedelta(hours=1))
    gitlab.fake.reset_log()
    gitlab.run(refresh_codeowners)
    [asked] = gitlab.fake.requests_to("/repository/files/")
    assert asked.headers.get("if-none-match")
    assert CodeownersFile.objects.get().text == "* @rob\n"
    gitlab.approve(1, "rob")
    assert gitlab.verdict(1) == "success"


def test_whoever_pushed_a_commit_may_not_approve(gitlab):
    gitlab.open(1, author="ada")
    gitlab.push_by(1, pusher="bob", sha="b" * 40, diff=PATCH_V2)
    gitlab.approve(1, "bob")
    assert gitlab.verdict(1) == "pending"
    trace = PolicyEvaluation.objects.filter(pull_request__number=1).latest("evaluated_at", "pk").trace
    assert ("Bob", "contributor") in [(d["login"], d["reason"]) for d in trace["rules"][0]["approvals_discarded"]]
    gitlab.approve(1, "cy")
    assert gitlab.verdict(1) == "success"


def test_an_approval_with_no_sha_is_reset_by_a_later_push_as_gitlab_does(gitlab):
    """GitLab's "remove all approvals when commits are added to the source branch": an approval given before a
    push no longer counts. An approval hook that names no commit is told from the push by its time alone, and
    before Tandem saw any push, when the head was pushed is not known: it does not count yet."""
    gitlab.open(1, author="ada", diff=PATCH_V1)
    gitlab.fake.add_approval(REPO, 1, user="bob")
    gitlab.hook(1, "approved", "bob", last_commit=None)
    assert gitlab.verdict(1) == "pending"
    gitlab.push(1, "b" * 40, PATCH_V2)
    assert gitlab.verdict(1) == "pending"
    trace = PolicyEvaluation.objects.filter(pull_request__number=1).latest("evaluated_at", "pk").trace
    assert ("Bob", "stale after push") in [(d["login"], d["reason"]) for d in trace["rules"][0]["approvals_discarded"]]
    gitlab.fake.remove_approval(REPO, 1, user="bob")
    gitlab.fake.add_approval(REPO, 1, user="bob")
    gitlab.hook(1, "approved", "bob", last_commit=None)
    assert gitlab.verdict(1) == "success"
