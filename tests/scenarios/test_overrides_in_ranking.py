"""Adversarial surface cases (issue 14 review): built with the consistency test's Case and surface readers."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reviews.models import Override, OverrideWithdrawal, PullRequest
from tests.scenarios.test_consistency import (  # noqa: F401
    Case,
    M,
    dora_says,
    health_api_says,
    policy_says,
    pull_request_page_says,
    suspects_say,
    team_page_says,
    viewer,
)

pytestmark = pytest.mark.django_db
H = 60 * M


def _surfaces(client, api, case):
    factors = suspects_say(case)
    return {
        "team page": team_page_says(client, case),
        "health API": health_api_says(api, case),
        "pull request page": pull_request_page_says(client, case),
        "policy": policy_says(case),
        "DORA review mode": dora_says(api, case),
        "suspect factors": factors,
    }


def test_an_override_that_was_withdrawn_is_not_an_override_in_suspect_ranking(viewer):  # noqa: F811 (the fixture is imported)
    client, api, lead = viewer
    now = timezone.now()
    case = Case("withdrawn-override", now, lead)
    override = Override.objects.create(
        pull_request=case.pull_request,
        head_sha=case.pull_request.head_sha,
        overridden_by=case.people["Rex"],
        reason="hotfix",
        followup_due_at=case.pull_request.merged_at + 2 * H,
    )
    OverrideWithdrawal.objects.create(override=override, withdrawn_by=case.people["Rex"], reason="mistake")
    case.approve("Cy", after_push=3 * H, body="looked at it")
    case.ship_and_suspect(now)
    said = _surfaces(client, api, case)
    assert said["DORA review mode"] == "one_approval"
    assert said["pull request page"]["overridden"] is False
    assert "override" not in said["suspect factors"], said


def test_an_override_ended_by_a_later_push_is_not_an_override_in_suspect_ranking(viewer):  # noqa: F811 (the fixture is imported)
    client, api, lead = viewer
    now = timezone.now()
    case = Case("override-ended-by-push", now, lead)
    PullRequest.objects.filter(pk=case.pull_request.pk).update(
        diff_ids={"0" * 40: "old diff", case.pull_request.head_sha: "new diff"}
    )
    Override.objects.create(
        pull_request=case.pull_request,
        head_sha="0" * 40,
        overridden_by=case.people["Rex"],
        reason="hotfix",
        followup_due_at=case.pull_request.merged_at + 2 * H,
    )
    case.approve("Cy", after_push=3 * H, body="looked at it")
    case.ship_and_suspect(now)
    said = _surfaces(client, api, case)
    assert said["DORA review mode"] == "one_approval"
    assert "override" not in said["suspect factors"], said


def test_self_approval_and_dismissed_approval_count_nowhere(viewer):  # noqa: F811 (the fixture is imported)
    from reviews.models import Review

    client, api, lead = viewer
    now = timezone.now()
    case = Case("self-and-dismissed", now, lead)
    case.approve("Ann", after_push=3 * H, body="lgtm me")
    case.approve("Cy", after_push=3 * H, body="ok")
    Review.objects.filter(pull_request=case.pull_request, reviewer=case.people["Cy"]).update(
        state=Review.State.DISMISSED
    )
    case.ship_and_suspect(now)
    said = _surfaces(client, api, case)
    assert said["team page"]["approvals"] == 0
    assert said["health API"]["coverage"] == "neither"
    assert said["policy"]["approvals"] == 0
    assert said["DORA review mode"] == "unreviewed"
    assert "no_approval" in said["suspect factors"]
