"""Every merged pull request of the demo gets one answer from every surface (issue 14's "done when").

The consistency scenarios (test_consistency.py) build the edge cases one by one; this walks a whole seeded
organisation: for each merged pull request, the figures the team page and health API aggregate (computed by
`review_health`'s flows), the row stored for them (`PullRequestFigures`), the pull request page's own figures
(`pull_request_flow`) and the review facts every other surface reads (DORA's review mode, suspects, the deploy
check) must say the same thing, and the period's totals must be the sum of the pull requests.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone

from reviews.models import PullRequest, PullRequestFigures, Team
from reviews.selectors.health import pull_request_flow, review_health
from reviews.selectors.review_facts import NO_FACTS, pull_request_review_facts

pytestmark = [pytest.mark.django_db, pytest.mark.slow(60)]

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def test_every_merged_pull_request_of_the_demo_gets_one_answer_from_every_surface():
    call_command("seed_demo", "--scale", "0.05", verbosity=0)
    now = timezone.now() + dt.timedelta(days=1)
    checked = 0
    for team in Team.objects.order_by("slug"):
        pull_requests = PullRequest.objects.filter(repository__team=team)
        health = review_health(pull_requests=pull_requests, since=EPOCH, until=now)
        flows = {flow.pull_request_id: flow for flow in health.flows}
        stored = {row.pk: row for row in PullRequestFigures.objects.filter(pull_request_id__in=list(flows))}
        facts = pull_request_review_facts(pull_request_ids=list(flows))
        # The totals the team page and the health API show are the sums over the pull requests behind them.
        assert health.merged == len(flows)
        assert health.coverage == {
            kind: Counter(flow.coverage for flow in flows.values())[kind]
            for kind in ("reviewed", "paired_only", "neither")
        }
        assert health.approvals == sum(flow.approvals for flow in flows.values())
        assert health.rubber_stamps == sum(flow.rubber_stamps for flow in flows.values())
        for pull_request in PullRequest.objects.filter(pk__in=list(flows)).select_related("repository"):
            flow = flows[pull_request.pk]
            said = {
                "stored": _answer(stored[pull_request.pk]),
                "pull request page": _answer(pull_request_flow(pull_request=pull_request)[0]),  # type: ignore[index]
                "review facts": {
                    "approvals": len(facts.get(pull_request.pk, NO_FACTS).approvals),
                    "rubber_stamps": len(facts.get(pull_request.pk, NO_FACTS).rubber_stamps),
                    "paired": facts.get(pull_request.pk, NO_FACTS).paired,
                    "coverage": flow.coverage,
                },
            }
            wanted = _answer(flow)
            disagreements = {surface: answer for surface, answer in said.items() if answer != wanted}
            assert not disagreements, f"{pull_request}: the team page says {wanted}"
            checked += 1
    assert checked > 50  # the demo's merged pull requests, all of them


def _answer(figures: object) -> dict[str, object]:
    return {
        "approvals": figures.approvals,  # type: ignore[attr-defined]
        "rubber_stamps": figures.rubber_stamps,  # type: ignore[attr-defined]
        "paired": figures.paired,  # type: ignore[attr-defined]
        "coverage": figures.coverage,  # type: ignore[attr-defined]
    }
