"""Suspect changes: the pull requests shipped before an incident, ranked with reasons in words; the same input
gives the same ranking, and ranking again never duplicates rows."""

from __future__ import annotations

import datetime as dt

import pytest

from reviews.models import (
    Comment,
    Commit,
    Identity,
    Override,
    PairingParticipant,
    PairingSession,
    Person,
    PolicyViolation,
)
from telemetry.models import Deployment, SuspectChange
from telemetry.ranking import ChangeFacts, ConfirmedFile, duration, rank_changes
from telemetry.services.correlation import incident_correlate
from telemetry.services.linking import deployment_changes_link
from tests.telemetry.conftest import T0, approve, hours, make_deployment, make_incident, make_service

pytestmark = pytest.mark.django_db


def deploy(service, repository, sha, at, **kwargs) -> Deployment:
    deployment = make_deployment(service, sha, at=at, repository=repository, **kwargs)
    deployment_changes_link(deployment_id=deployment.pk)
    return deployment


def ranking(incident) -> list[tuple[int, int, float]]:
    return list(
        SuspectChange.objects.filter(incident=incident)
        .order_by("rank")
        .values_list("rank", "pull_request__number", "score")
    )


def factors(incident, number: int) -> set[str]:
    suspect = SuspectChange.objects.get(incident=incident, pull_request__number=number)
    return {reason["factor"] for reason in suspect.reasons}


@pytest.fixture
def checkout(actors, repository):
    return make_service("checkout", actors.team, [(repository, [])])


@pytest.fixture
def earlier_confirmed_cause(checkout, repository, history, actors):
    """Ten days ago, a change to payments/charge.py was the confirmed cause of an incident."""
    old = history.merge(90, at=T0 - dt.timedelta(days=11), files=["payments/charge.py"])
    deployment = deploy(checkout, repository, history.head, T0 - dt.timedelta(days=10, hours=12))
    incident = make_incident([checkout], at=T0 - dt.timedelta(days=10), title="Double charges")
    SuspectChange.objects.create(
        incident=incident,
        deployment=deployment,
        pull_request=old,
        score=50,
        rank=1,
        verdict=SuspectChange.Verdict.CONFIRMED,
    )
    return incident


def test_the_latest_deployment_is_not_always_the_likeliest_cause(
    checkout, repository, history, actors, earlier_confirmed_cause
):
    deploy(checkout, repository, history.head, T0 - hours(80))  # before the window: the previous deployment
    author = Person.objects.create(display_name="Rita Risky")
    risky = history.merge(
        1, at=T0 - hours(30), author=author, merged_by=author, lines=900, files=["payments/charge.py", "payments/x.py"]
    )
    Override.objects.create(
        pull_request=risky,
        head_sha=risky.head_sha,  # given on the head it merged: in force
        overridden_by=actors.lead,
        reason="hotfix before the sale",
        followup_due_at=T0,
    )
    deploy(checkout, repository, history.head, T0 - hours(20))
    careful = Person.objects.create(display_name="Carl Careful")
    partner = Person.objects.create(display_name="Pia Partner")
    safe = history.merge(2, at=T0 - hours(2), author=careful, lines=6, files=["web/button.css"])
    approve(safe, actors.member, at=T0 - hours(3), body="Checked on staging")
    approve(safe, actors.lead, at=T0 - hours(2.5))
    for n in range(3):
        Comment.objects.create(
            pull_request=safe, external_id=f"c{n}", author=actors.member, body="nit", created_at=T0 - hours(3)
        )
    branch = Commit.objects.get(sha=safe.head_sha)
    branch.author = careful
    branch.save()
    branch.co_authors.add(Identity.objects.create(kind="email", value="pia@example.com", person=partner))
    latest = deploy(checkout, repository, history.head, T0 - hours(1))
    incident = make_incident([checkout], at=T0, title="Checkout 500s")

    incident_correlate(incident_id=incident.pk)

    assert [(rank, number) for rank, number, _ in ranking(incident)] == [(1, 1), (2, 2)]
    top = SuspectChange.objects.get(incident=incident, rank=1)
    texts = [reason["text"] for reason in top.reasons]
    assert "merged without an approval that counted under its policy" in texts
    assert "merged by its author" in texts
    assert any(
        text.startswith("merged through a policy override by Lena Lead: “hotfix before the sale”") for text in texts
    )
    assert any("payments/charge.py" in text and "Double charges" in text for text in texts)
    assert "large change: 900 changed lines in 2 files" in texts
    assert "deployed 20 h before the incident started" in texts
    second = SuspectChange.objects.get(incident=incident, rank=2)
    assert second.deployment == latest
    assert {"last_deployment", "approvals", "paired", "discussion"} <= factors(incident, 2)
    assert any(r["text"] == "written in a pair with Pia Partner" for r in second.reasons)
    # Reasons come strongest first.
    points = [abs(reason["points"]) for reason in top.reasons]
    assert points == sorted(points, reverse=True)


def test_only_production_deployments_of_the_services_within_the_window_are_suspects(
    checkout, repository, history, actors
):
    other = make_service("search", actors.other_team, [(repository, [])])
    deploy(checkout, repository, history.head, T0 - hours(100))
    history.merge(1, at=T0 - hours(90))
    deploy(checkout, repository, history.head, T0 - hours(73))  # just outside 72 h
    history.merge(2, at=T0 - hours(60))
    deploy(checkout, repository, history.head, T0 - hours(50), environment="staging")
    deploy(checkout, repository, history.head, T0 - hours(71))  # inside
    history.merge(3, at=T0 - hours(10))
    deploy(other, repository, history.head, T0 - hours(5))  # another service
    deploy(checkout, repository, history.head, T0 + hours(1))  # after the incident started
    incident = make_incident([checkout], at=T0)

    incident_correlate(incident_id=incident.pk)

    assert [number for _, number, _ in ranking(incident)] == [2]


def test_ranking_again_is_idempotent_and_keeps_a_leads_verdict(checkout, repository, history):
    deploy(checkout, repository, history.head, T0 - hours(80))
    history.merge(1, at=T0 - hours(40))
    history.merge(2, at=T0 - hours(39))
    deploy(checkout, repository, history.head, T0 - hours(30))
    history.merge(3, at=T0 - hours(10))
    deploy(checkout, repository, history.head, T0 - hours(5))
    incident = make_incident([checkout], at=T0)

    incident_correlate(incident_id=incident.pk)
    first = list(SuspectChange.objects.order_by("pk").values_list("pk", "pull_request_id", "rank", "score", "reasons"))
    incident_correlate(incident_id=incident.pk)
    assert (
        list(SuspectChange.objects.order_by("pk").values_list("pk", "pull_request_id", "rank", "score", "reasons"))
        == first
    )
    assert len(first) == 3

    # A lead rejects one; then the incident turns out to have started earlier: only #1 and #2 were shipped before.
    SuspectChange.objects.filter(incident=incident, pull_request__number=3).update(verdict="rejected")
    incident.started_at = T0 - hours(20)
    incident.save()
    incident_correlate(incident_id=incident.pk)
    assert [
        (number, verdict)
        for number, verdict in SuspectChange.objects.order_by("rank").values_list("pull_request__number", "verdict")
    ] == [(1, "suspected"), (2, "suspected"), (3, "rejected")]

    incident.started_at = T0 - hours(70)
    incident.save()
    incident_correlate(incident_id=incident.pk)
    assert list(SuspectChange.objects.values_list("pull_request__number", "rank")) == [(3, 1)]  # the decided one


def test_equal_scores_are_ranked_by_pull_request_id(checkout, repository, history):
    deploy(checkout, repository, history.head, T0 - hours(80))
    author = Person.objects.create(display_name="Same")
    history.merge(5, at=T0 - hours(11), author=author)
    history.merge(4, at=T0 - hours(11), author=author)
    deploy(checkout, repository, history.head, T0 - hours(10))
    incident = make_incident([checkout], at=T0)
    incident_correlate(incident_id=incident.pk)
    rows = ranking(incident)
    assert rows[0][2] == rows[1][2]
    assert [number for _, number, _ in rows] == [5, 4]  # #5 was created first: the lower id


def test_fast_approval_of_a_large_change_and_a_policy_violation_count_against_it(checkout, repository, history, actors):
    deploy(checkout, repository, history.head, T0 - hours(80))
    pull_request = history.merge(1, at=T0 - hours(10), lines=600)
    pull_request.last_pushed_at = T0 - hours(11)
    pull_request.save()
    approve(pull_request, actors.member, at=T0 - hours(11) + dt.timedelta(minutes=6))
    PolicyViolation.objects.create(pull_request=pull_request, outcome="blocked")
    deploy(checkout, repository, history.head, T0 - hours(9))
    incident = make_incident([checkout], at=T0)
    incident_correlate(incident_id=incident.pk)
    suspect = SuspectChange.objects.get()
    texts = {reason["factor"]: reason["text"] for reason in suspect.reasons}
    assert texts["rubber_stamp"] == "approved 6 min after the last push for 600 changed lines (1.0 min per 100 lines)"
    assert texts["violation"] == "merged while its review policy was not satisfied (blocked)"
    assert texts["silent_approval"] == "approved without a single review comment"
    assert "no_approval" not in texts


def test_a_pairing_session_with_the_author_counts_as_paired(checkout, repository, history, actors):
    deploy(checkout, repository, history.head, T0 - hours(80))
    author = Person.objects.create(display_name="Ann Author")
    partner = Person.objects.create(display_name="Nick Navigator")
    history.merge(1, at=T0 - hours(10), author=author)
    session = PairingSession.objects.create(repository=repository, started_at=T0 - hours(20), ended_at=T0 - hours(17))
    for person in (author, partner):
        PairingParticipant.objects.create(session=session, person=person, joined_at=session.started_at)
    deploy(checkout, repository, history.head, T0 - hours(9))
    incident = make_incident([checkout], at=T0)
    incident_correlate(incident_id=incident.pk)
    reasons = SuspectChange.objects.get().reasons
    assert {"factor": "paired", "points": -10.0, "text": "written in a pair with Nick Navigator"} in reasons


def test_a_late_deployment_brings_its_changes_into_an_existing_incident(
    checkout, actors, repository, history, run_on_commit
):
    deploy(checkout, repository, history.head, T0 - hours(80))
    history.merge(1, at=T0 - hours(10))
    incident = make_incident([checkout], at=T0)
    incident_correlate(incident_id=incident.pk)
    assert not SuspectChange.objects.exists()

    with run_on_commit():
        response = actors.client("token").post(
            "/api/v1/deployments",
            {
                "service": "checkout",
                "sha": history.head,
                "status": "success",
                "external_id": "late-1",
                "finished_at": (T0 - hours(6)).isoformat(),
            },
            format="json",
        )
    assert response.status_code == 201
    assert [number for _, number, _ in ranking(incident)] == [1]


# --- the pure ranking ------------------------------------------------------------------------------------------------


def facts(pk: int, **overrides) -> ChangeFacts:
    values = {
        "pull_request_id": pk,
        "deployment_id": 1,
        "deployed_at": T0 - hours(12),
        "last_deployment": False,
        "changed_lines": 40,
        "changed_files": 2,
        "approvals": 1,
        "review_comments": 1,
        "rubber_stamp_after": None,
        "self_merged": False,
    }
    return ChangeFacts(**{**values, **overrides})


def test_the_same_facts_give_the_same_ranking_in_any_order():
    changes = [
        facts(1),
        facts(2, approvals=0),
        facts(3, deployed_at=T0 - hours(1), last_deployment=True),
        facts(4, confirmed_files=(ConfirmedFile("a.py", "Outage", T0 - hours(300)),)),
    ]
    window = hours(72)
    forward = rank_changes(changes, incident_started_at=T0, window=window)
    backward = rank_changes(list(reversed(changes)), incident_started_at=T0, window=window)
    assert forward == backward
    assert [change.rank for change in forward] == [1, 2, 3, 4]
    assert forward[-1].pull_request_id == 1


def test_scores_never_go_below_zero():
    [ranked] = rank_changes(
        [facts(1, deployed_at=T0 - hours(72), changed_lines=0, approvals=3, review_comments=9, paired_with=("A",))],
        incident_started_at=T0,
        window=hours(72),
    )
    assert ranked.score == 0.0
    assert ranked.reasons  # the mitigating facts are still told


def test_unknown_size_is_said():
    [ranked] = rank_changes([facts(1, changed_lines=None)], incident_started_at=T0, window=hours(72))
    assert any(reason.text == "size unknown (its files were never synced)" for reason in ranked.reasons)


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (dt.timedelta(minutes=45), "45 min"),
        (hours(2), "2 h"),
        (hours(2) + dt.timedelta(minutes=10), "2 h 10 min"),
        (hours(27), "1 d 3 h"),
        (hours(48), "2 d"),
    ],
)
def test_durations_read_as_people_say_them(span, text):
    assert duration(span) == text


def test_a_confirmed_cause_follows_the_deployment_that_really_shipped_it(
    checkout, actors, repository, history, run_on_commit
):
    from telemetry.services.suspects import suspect_confirm

    deploy(checkout, repository, history.head, T0 - hours(80))
    history.merge(1, at=T0 - hours(30))
    after_one = history.head
    history.merge(2, at=T0 - hours(20))
    both = deploy(checkout, repository, history.head, T0 - hours(10))
    incident = make_incident([checkout], at=T0)
    incident_correlate(incident_id=incident.pk)
    suspect_confirm(suspect=SuspectChange.objects.get(pull_request__number=1), decided_by=actors.lead)
    assert Deployment.objects.get(pk=both.pk).caused_incident

    late = make_deployment(checkout, after_one, at=T0 - hours(25), repository=repository)
    with run_on_commit():
        deployment_changes_link(deployment_id=late.pk)  # re-links `both`, then ranks the incident again

    cause = SuspectChange.objects.get(pull_request__number=1)
    assert (cause.verdict, cause.deployment_id) == ("confirmed", late.pk)
    assert Deployment.objects.get(pk=late.pk).caused_incident
    assert not Deployment.objects.get(pk=both.pk).caused_incident
