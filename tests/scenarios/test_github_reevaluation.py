"""A verdict is posted again when a fact behind it changes with no event on the pull request: a sync finds what a
webhook missed, a policy, a team's membership or an incident changes, an incident's window closes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import Person, Repository
from reviews.services.policies import policy_save
from reviews.services.risk import risk_signal_record, risk_signal_withdraw
from reviews.services.sync import repository_sync
from reviews.services.teams import membership_remove, membership_set, team_upsert
from reviews.tasks import reevaluate_closing_risk_windows

pytestmark = pytest.mark.django_db

RISKY = """
rules:
  - name: after an incident, two
    if: {touches_incident_within_days: 14}
    require: {approvals: 2}
  - name: one
    require: {approvals: 1}
"""


def repository() -> Repository:
    return Repository.objects.get(full_path="acme/ledger")


def test_a_sync_posts_the_verdict_an_approval_missed_by_the_webhooks_changes(github):
    github.open(1, author="ada")
    github.fake.add_review("acme/ledger", 1, reviewer="bob")  # the review's webhook never came
    github.fake.touch_pull("acme/ledger", 1)
    assert github.verdict(1) == "pending"
    github.run(repository_sync, repository=repository())
    assert github.verdict(1) == "success"


def test_joining_the_required_team_posts_the_new_verdict(github):
    github.open(1, author="ada")
    team = team_upsert(slug="payments", name="Payments")
    policy = "rules:\n  - name: payments\n    require: {approvals: 1, teams: [payments]}\n"
    github.run(policy_save, repository=repository(), document=policy)
    github.review(1, "bob")
    assert github.verdict(1) == "pending"
    bob = Person.objects.get(identities__value="bob")
    github.run(membership_set, team=team, person=bob)
    assert github.verdict(1) == "success"
    github.run(membership_remove, team=team, person=bob)
    assert github.verdict(1) == "pending"


def test_a_confirmed_incident_raises_the_bar_at_once_and_its_withdrawal_lowers_it(github):
    github.open(1, author="ada")
    github.run(policy_save, repository=repository(), document=RISKY)
    github.review(1, "bob")
    assert github.verdict(1) == "success"
    github.run(
        risk_signal_record,
        repository=repository(),
        reference="incident:7",
        occurred_at=timezone.now() - dt.timedelta(days=1),
        path_prefixes=["ledger/"],
    )
    assert github.statuses(1)[-1] == ("pending", "Needs 1 more approval")
    github.run(risk_signal_withdraw, reference="incident:7")
    assert github.verdict(1) == "success"


def test_when_an_incidents_window_closes_the_beat_posts_the_verdict(github):
    github.open(1, author="ada")
    github.run(policy_save, repository=repository(), document=RISKY)
    github.run(
        risk_signal_record,
        repository=repository(),
        reference="incident:8",
        occurred_at=timezone.now() - dt.timedelta(days=14, minutes=-1),
        path_prefixes=["ledger/"],
    )
    github.review(1, "bob")
    assert github.verdict(1) == "pending"  # still inside the 14 days, by a minute

    # Two minutes later: the window has closed, nothing happened on the pull request, the beat notices.
    from reviews.models import RiskSignal

    RiskSignal.objects.update(occurred_at=timezone.now() - dt.timedelta(days=14, minutes=1))
    assert github.run(reevaluate_closing_risk_windows) == 1
    assert github.verdict(1) == "success"
