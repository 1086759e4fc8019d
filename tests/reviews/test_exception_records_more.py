"""Review findings on issue 13: the append-only records, the verdict at merge and the compliance figures."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.db.models import ProtectedError
from django.utils import timezone

from reviews.models import FollowUpReview, Override, PolicyEvaluation
from reviews.selectors.compliance import merged_changes
from reviews.services.audit import Actor
from reviews.services.teams import person_delete
from tests.factories import PersonFactory, PullRequestFactory, RepositoryFactory, ReviewFactory, TeamFactory

pytestmark = pytest.mark.django_db


def _override(pull_request=None, by=None, head_sha: str | None = None) -> Override:
    pull_request = pull_request or PullRequestFactory()
    return Override.objects.create(
        pull_request=pull_request,
        head_sha=head_sha or pull_request.head_sha,
        overridden_by=by or PersonFactory(),
        reason="hotfix",
        followup_due_at=timezone.now() + dt.timedelta(hours=48),
    )


def test_queryset_update_cannot_mark_a_followup_done_without_a_followup_review():
    """`Override.save` refuses followup_done_at/followup_by unless a FollowUpReview exists; `.update()` too."""
    override = _override()
    with pytest.raises(PermissionDenied):
        Override.objects.filter(pk=override.pk).update(
            followup_done_at=timezone.now(), followup_by=override.overridden_by
        )
    override.refresh_from_db()
    assert (override.followup_done_at, override.followup_by_id) == (None, None)
    assert not FollowUpReview.objects.filter(override=override).exists()


def test_related_manager_update_is_guarded_too():
    override = _override()
    with pytest.raises(PermissionDenied):
        override.pull_request.overrides.update(reason="nothing happened")


def test_base_manager_update_cannot_rewrite_an_override():
    """Django's code paths use `_base_manager`: it is the append-only manager, not a plain one."""
    override = _override()
    with pytest.raises(PermissionDenied):
        Override._base_manager.filter(pk=override.pk).update(reason="nothing happened")
    override.refresh_from_db()
    assert override.reason == "hotfix"


# --- fix 3: the verdict at merge


def _merged_pull_request(team=None, **kwargs):
    repository = RepositoryFactory(team=team or TeamFactory())
    merged_at = timezone.now() - dt.timedelta(days=1)
    return PullRequestFactory(repository=repository, state="merged", merged_at=merged_at, **kwargs)


def _evaluation(pull_request, outcome="pending", head_sha=None) -> PolicyEvaluation:
    merged_at = pull_request.merged_at
    return PolicyEvaluation.objects.create(
        pull_request=pull_request,
        head_sha=head_sha or pull_request.head_sha,
        outcome=outcome,
        description="Needs 1 approval" if outcome == "pending" else "Approved: 1 of 1 approval",
        trace={},
        evaluated_at=merged_at - dt.timedelta(hours=1),
        last_evaluated_at=merged_at,
    )


def test_the_verdict_at_merge_cannot_be_rewritten():
    pull_request = _merged_pull_request()
    evaluation = _evaluation(pull_request)
    team = pull_request.repository.team
    with pytest.raises(PermissionDenied):
        PolicyEvaluation.objects.filter(pk=evaluation.pk).update(outcome="approved")
    evaluation.outcome = "approved"
    with pytest.raises(PermissionDenied):
        evaluation.save()
    since = pull_request.merged_at - dt.timedelta(days=1)
    [row] = merged_changes(team=team, since=since, until=timezone.now())
    assert row.status != "compliant"


def test_the_verdict_at_merge_cannot_be_deleted_nor_cascade_with_its_pull_request():
    pull_request = _merged_pull_request()
    evaluation = _evaluation(pull_request)
    with pytest.raises(PermissionDenied):
        evaluation.delete()
    with pytest.raises(PermissionDenied):
        PolicyEvaluation.objects.filter(pk=evaluation.pk).delete()
    with pytest.raises((PermissionDenied, ProtectedError)):
        pull_request.delete()
    assert PolicyEvaluation.objects.filter(pk=evaluation.pk).exists()


def test_reporting_fields_of_an_evaluation_stay_writable():
    pull_request = _merged_pull_request()
    evaluation = _evaluation(pull_request)
    now = timezone.now()
    PolicyEvaluation.objects.filter(pk=evaluation.pk).update(reported_at=now, report_error="", last_evaluated_at=now)
    evaluation.refresh_from_db()
    assert evaluation.reported_at == now


# --- fix 4: who approved survives


def test_deleting_a_reviewer_does_not_erase_who_approved():
    review = ReviewFactory()
    reviewer = review.reviewer
    with pytest.raises(ProtectedError):
        reviewer.delete()
    review.refresh_from_db()
    assert review.reviewer_id == reviewer.pk


def test_person_delete_names_the_reviews_that_keep_them_on_the_record():
    review = ReviewFactory()
    with pytest.raises(PermissionDenied, match="reviews"):
        person_delete(person=review.reviewer, actor=Actor(source="admin"))


# --- fix 5: compliance uses the one "override in force" rule


def test_an_override_a_push_ended_does_not_count_the_merge_as_overridden():
    """An override covers only the head it was given on. After a push ended it, the change was approved properly
    and merged approved: compliant, not `overridden` with a follow-up due."""
    pull_request = _merged_pull_request(head_sha="b" * 40, diff_ids={"a" * 40: "one", "b" * 40: "two"})
    _override(pull_request, head_sha="a" * 40)  # given on the earlier head
    _evaluation(pull_request, outcome="approved", head_sha="b" * 40)
    since = pull_request.merged_at - dt.timedelta(days=1)
    [row] = merged_changes(team=pull_request.repository.team, since=since, until=timezone.now())
    assert (row.status, row.verdict_at_merge) == ("compliant", "approved"), (row.status, row.followup)


def test_an_override_of_a_rebased_head_still_counts_the_merge_as_overridden():
    pull_request = _merged_pull_request(head_sha="b" * 40, diff_ids={"a" * 40: "same", "b" * 40: "same"})
    _override(pull_request, head_sha="a" * 40)
    _evaluation(pull_request, outcome="overridden", head_sha="b" * 40)
    since = pull_request.merged_at - dt.timedelta(days=1)
    [row] = merged_changes(team=pull_request.repository.team, since=since, until=timezone.now())
    assert row.status == "overridden"
