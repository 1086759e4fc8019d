"""Review findings on issue 13: the append-only records, the verdict at merge and the compliance figures."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from reviews.models import FollowUpReview, Override
from tests.factories import PersonFactory, PullRequestFactory

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
