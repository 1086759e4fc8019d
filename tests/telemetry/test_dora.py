"""Every DORA figure (METRICS.md) checked against a small history computed by hand.

The period is 1–14 March 2025. Service `checkout`:

| deployment | finished | ships | suspects |
|---|---|---|---|
| D0 | 27 Feb 10:00 | PR0 | (before the period) |
| D1 | 3 Mar 10:00 | PR1 | |
| D2 | 4 Mar 10:00 | PR2, PR3 | PR2 and PR3 confirmed (incident I1) |
| D3 | 4 Mar 15:00 | PR4 | |
| —  | 5 Mar (staging), 6 Mar (failed) | | not production / not successful |
| D4 | 10 Mar 09:00 | PR5, PR8 (a bot's) | PR5 suspected, unconfirmed (I2) |
| D5 | 12 Mar 09:00 | PR6 | PR6 rejected (I5) |

| PR | first commit | ready | first review activity | approvals | merged | lead | coding | pickup | review | deploy |
|---|---|---|---|---|---|---|---|---|---|---|
| 1 | 1 Mar 10:00 | 2 Mar 10:00 | comment 2 Mar 12:00 | 1 (14:00) | 2 Mar 16:00 | 48 | 24 | 2 | 4 | 18 |
| 2 | 3 Mar 08:00 | 3 Mar 09:00 | none (a bot approved) | 0 | 3 Mar 20:00 | 26 | 1 | 11 | 0 | 14 |
| 3 | 2 Mar 10:00 | 3 Mar 10:00 | approval 3 Mar 11:00 | 2 | 4 Mar 08:00 | 48 | 24 | 1 | 21 | 2 |
| 4 | 4 Mar 09:00 | 4 Mar 10:00 | approval 11:00 | 1, overridden | 4 Mar 12:00 | 6 | 1 | 1 | 1 | 3 |
| 5 | 8 Mar 09:00 | 9 Mar 09:00 | comment 9 Mar 10:00 | 1, paired | 9 Mar 18:00 | 48 | 24 | 1 | 8 | 15 |
| 6 | 11 Mar 08:00 | 11 Mar 09:00 | approval 13:00 | 1 | 11 Mar 15:00 | 25 | 1 | 4 | 2 | 18 |

Incidents of checkout: I3 started 28 Feb 10:00, resolved 1 Mar 02:00 (16 h, resolved in the period); I1 4 Mar
18:00–20:00 (2 h); I2 10 Mar 12:00–18:00 (6 h); I4 resolved 15 Mar (outside); I5 never resolved.

Service `ledger` (same team): D6 13 Mar 12:00 ships PR7 (first commit 08:00, ready 09:00, no review, merged
10:00: lead 4 h, coding 1, pickup 1, review 0, deploy 2); incident I6 13 Mar 14:00–15:00 (1 h).
"""

from __future__ import annotations

import datetime as dt

import pytest

from reviews.models import Comment, Commit, Identity, Override, Person, PullRequest, Review
from telemetry.models import Deployment, DeploymentChange, SuspectChange
from telemetry.selectors.dora import service_dora, team_dora
from tests.telemetry.conftest import make_incident, make_service

pytestmark = pytest.mark.django_db

SINCE = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
UNTIL = dt.datetime(2025, 3, 15, tzinfo=dt.UTC)


def at(day: int, hour: int, month: int = 3) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, tzinfo=dt.UTC)


class Builder:
    def __init__(self, repository, reviewers: list[Person]) -> None:
        self.repository = repository
        self.reviewers = reviewers
        self.count = 0

    def pull(self, number: int, first: dt.datetime, ready: dt.datetime, merged: dt.datetime, **extra) -> PullRequest:
        return PullRequest.objects.create(
            repository=self.repository,
            number=number,
            title=f"PR{number}",
            author=extra.pop("author", None) or Person.objects.create(display_name=f"Author {number}"),
            state=PullRequest.State.MERGED,
            created_at=ready - dt.timedelta(minutes=5),
            updated_at=merged,
            ready_at=ready,
            first_commit_at=first,
            merged_at=merged,
            additions=10,
            deletions=2,
            head_sha=f"{number:040x}",
            details_head_sha=f"{number:040x}",  # its commits are known (none), as after a sync
            **extra,
        )

    def review(self, pull: PullRequest, reviewer: Person, when: dt.datetime, state: str = "approved") -> None:
        self.count += 1
        Review.objects.create(
            pull_request=pull,
            external_id=str(self.count),
            reviewer=reviewer,
            state=state,
            commit_sha=pull.head_sha,  # given on the head, as GitHub says of its reviews
            submitted_at=when,
        )

    def comment(self, pull: PullRequest, author: Person, when: dt.datetime) -> None:
        self.count += 1
        Comment.objects.create(pull_request=pull, external_id=str(self.count), author=author, created_at=when)


def deployment(service, finished: dt.datetime, pulls=(), environment="production", status="success") -> Deployment:
    row = Deployment.objects.create(
        service=service,
        environment=environment,
        sha=f"{finished.timestamp():040.0f}"[-40:],
        status=status,
        source="api",
        external_id=f"{service.slug}-{finished.isoformat()}-{environment}-{status}",
        finished_at=finished,
    )
    DeploymentChange.objects.bulk_create([DeploymentChange(deployment=row, pull_request=p) for p in pulls])
    return row


def suspect(incident, deployment_row, pull, verdict) -> None:
    SuspectChange.objects.create(
        incident=incident, deployment=deployment_row, pull_request=pull, score=10, rank=1, verdict=verdict
    )


@pytest.fixture
def world(actors, repository):
    checkout = make_service("checkout", actors.team, [(repository, [])])
    ledger = make_service("ledger", actors.team, [(repository, [])])
    ann, bob = actors.lead, actors.member
    bot = Person.objects.create(display_name="dependabot[bot]", is_bot=True)
    b = Builder(repository, [ann, bob])

    pr0 = b.pull(100, at(25, 10, 2), at(26, 10, 2), at(26, 20, 2))
    pr1 = b.pull(1, at(1, 10), at(2, 10), at(2, 16))
    b.comment(pr1, bob, at(2, 12))
    b.review(pr1, ann, at(2, 14))
    pr2 = b.pull(2, at(3, 8), at(3, 9), at(3, 20))
    b.review(pr2, bot, at(3, 10))  # a bot's approval is no review
    b.comment(pr2, pr2.author, at(3, 10))  # nor is the author's own comment
    pr3 = b.pull(3, at(2, 10), at(3, 10), at(4, 8))
    b.review(pr3, ann, at(3, 11))
    b.review(pr3, bob, at(3, 12))
    pr4 = b.pull(4, at(4, 9), at(4, 10), at(4, 12))
    b.review(pr4, ann, at(4, 11))
    Override.objects.create(
        pull_request=pr4, head_sha=pr4.head_sha, overridden_by=ann, reason="outage fix", followup_due_at=at(6, 12)
    )
    author5 = Person.objects.create(display_name="Author 5")
    pr5 = b.pull(5, at(8, 9), at(9, 9), at(9, 18), author=author5)
    b.comment(pr5, bob, at(9, 10))
    b.review(pr5, ann, at(9, 11))
    paired_commit = Commit.objects.create(
        repository=repository, sha="5" * 40, author=author5, authored_at=at(8, 9), parents=[]
    )
    paired_commit.co_authors.add(Identity.objects.create(kind="email", value="bob@example.com", person=bob))
    pr5.commits.add(paired_commit)
    pr6 = b.pull(6, at(11, 8), at(11, 9), at(11, 15))
    b.review(pr6, bob, at(11, 13))
    pr7 = b.pull(7, at(13, 8), at(13, 9), at(13, 10))
    pr8 = b.pull(8, at(9, 8), at(9, 9), at(9, 10), author=bot)

    deployment(checkout, at(27, 10, 2), [pr0])
    deployment(checkout, at(3, 10), [pr1])
    d2 = deployment(checkout, at(4, 10), [pr2, pr3])
    deployment(checkout, at(4, 15), [pr4])
    deployment(checkout, at(5, 10), [pr5], environment="staging")
    deployment(checkout, at(6, 10), [pr5], status="failure")
    d4 = deployment(checkout, at(10, 9), [pr5, pr8])
    d5 = deployment(checkout, at(12, 9), [pr6])
    deployment(ledger, at(13, 12), [pr7])
    deployment(checkout, at(15, 9), [pr3])  # after the period (and not PR3's first production deployment anyway)

    i1 = make_incident([checkout], at=at(4, 18), title="I1", resolved_at=at(4, 20), status="resolved")
    i2 = make_incident([checkout], at=at(10, 12), title="I2", resolved_at=at(10, 18), status="resolved")
    make_incident([checkout], at=at(28, 10, 2), title="I3", resolved_at=at(1, 2), status="resolved")
    make_incident([checkout], at=at(14, 20), title="I4", resolved_at=at(15, 1), status="resolved")
    i5 = make_incident([checkout], at=at(12, 10), title="I5")
    make_incident([ledger], at=at(13, 14), title="I6", resolved_at=at(13, 15), status="resolved")
    suspect(i1, d2, pr2, "confirmed")
    suspect(i1, d2, pr3, "confirmed")
    suspect(i2, d4, pr5, "suspected")
    suspect(i5, d5, pr6, "rejected")
    return checkout, ledger


def test_service_figures_match_the_hand_computed_history(world):
    checkout, _ = world
    report = service_dora(service=checkout, since=SINCE, until=UNTIL)

    frequency = report.deployment_frequency
    assert frequency.deployments == 5
    assert frequency.per_day == 0.36  # 5 / 14 days
    assert frequency.deployment_days == 4
    assert frequency.median_days_per_week == 2.0  # weeks of 2 and 2 deployment days
    assert frequency.band == "high"

    lead = report.lead_time
    assert lead.pull_requests == 6  # PR0 shipped before the period; PR8 is a bot's
    assert lead.median_hours == 37.0  # 6, 25, 26, 48, 48, 48
    assert lead.p90_hours == 48.0
    assert lead.parts == {"coding": 12.5, "pickup": 1.5, "review": 3.0, "merge_to_deploy": 14.5}

    failure = report.change_failure_rate
    assert (failure.deployments, failure.failed, failure.rate) == (5, 1, 0.2)
    assert failure.with_unconfirmed_suspects == 1  # D4: shown, never counted

    restore = report.time_to_restore
    assert restore.incidents == 3  # I3 (16 h), I1 (2 h), I2 (6 h)
    assert restore.median_hours == 6.0
    assert restore.p90_hours == 14.0

    modes = {mode: (rate.pull_requests, rate.failed, rate.rate) for mode, rate in report.cfr_by_review_mode.items()}
    assert modes == {
        "paired": (1, 0, 0.0),
        "one_approval": (2, 0, 0.0),
        "two_or_more": (1, 1, 1.0),
        "overridden": (1, 0, 0.0),
        "unreviewed": (1, 1, 1.0),
    }


def test_team_figures_add_up_its_services(world, actors):
    report = team_dora(team=actors.team, since=SINCE, until=UNTIL)
    assert report.services == ["checkout", "ledger"]
    assert report.deployment_frequency.deployments == 6
    assert report.deployment_frequency.per_day == 0.43
    assert report.deployment_frequency.median_days_per_week == 2.5  # weeks of 2 and 3 deployment days
    assert report.lead_time.median_hours == 26.0  # 4, 6, 25, 26, 48, 48, 48
    assert report.change_failure_rate.rate == round(1 / 6, 4)
    assert report.time_to_restore.median_hours == 4.0  # 1, 2, 6, 16
    assert report.cfr_by_review_mode["unreviewed"].pull_requests == 2
    assert report.cfr_by_review_mode["unreviewed"].rate == 0.5


@pytest.mark.parametrize(
    ("deployments", "band"),
    [
        ([(day, hour) for day in range(1, 15) for hour in (10, 15)], "elite"),  # several a day, every day
        ([(day, 12) for day in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)], "high"),  # once a working day
        ([(1, 12), (2, 12), (3, 12), (8, 12), (9, 12), (10, 12)], "high"),  # three days a week is not "several a day"
        ([(1, 12), (8, 12)], "high"),  # once a week
        ([(2, 12)], "medium"),  # one week in two
        ([], "low"),
    ],
)
def test_the_band_follows_metrics_md_on_whole_weeks(actors, deployments, band):
    service = make_service("web", actors.team)
    for day, hour in deployments:
        deployment(service, at(day, hour))
    report = service_dora(service=service, since=SINCE, until=SINCE + dt.timedelta(days=14))
    assert report.deployment_frequency.band == band
    assert (report.deployment_frequency.whole_weeks, report.deployment_frequency.partial_week_days) == (2, 0)


def test_a_partial_week_is_left_out_of_the_band_and_said_to_be_partial(actors):
    service = make_service("web", actors.team)
    for day in range(8, 11):  # the partial week: several a day
        for hour in (9, 12, 15):
            deployment(service, at(day, hour))
    deployment(service, at(2, 12))
    report = service_dora(service=service, since=SINCE, until=SINCE + dt.timedelta(days=10))

    frequency = report.deployment_frequency
    assert frequency.deployments == 10  # the rate counts every day of the period
    assert (frequency.whole_weeks, frequency.partial_week_days) == (1, 3)
    assert frequency.median_deployments_per_week == 1.0
    assert frequency.band == "high"  # from the one whole week, not from the busy partial one
    api = actors.client("member").get("/api/v1/services/web/dora", {"since": "2025-03-01", "until": "2025-03-10"})
    assert api.json()["deployment_frequency"]["partial_week_days"] == 3


def test_a_period_without_a_whole_week_has_no_band(actors):
    service = make_service("web", actors.team)
    deployment(service, at(2, 12))
    report = service_dora(service=service, since=SINCE, until=SINCE + dt.timedelta(days=5))
    assert (report.deployment_frequency.whole_weeks, report.deployment_frequency.band) == (0, "")


def test_an_empty_period_has_no_rates(actors):
    report = service_dora(service=make_service("quiet", actors.team), since=SINCE, until=UNTIL)
    assert report.change_failure_rate.rate is None
    assert report.lead_time.median_hours is None
    assert report.time_to_restore.median_hours is None
    assert report.cfr_by_review_mode["paired"].rate is None


def test_the_api_serves_team_and_service_figures_to_the_team_only(world, actors):
    period = {"since": "2025-03-01", "until": "2025-03-14"}
    team = actors.client("token").get("/api/v1/teams/payments/dora", period)
    assert team.status_code == 200
    body = team.json()
    assert body["team"] == "payments"
    assert body["since"] == "2025-03-01T00:00:00+00:00"
    assert body["until"] == "2025-03-15T00:00:00+00:00"
    assert body["deployment_frequency"]["deployments"] == 6
    assert body["change_failure_rate"]["rate"] == round(1 / 6, 4)

    service = actors.client("member").get("/api/v1/services/checkout/dora", period).json()
    assert service["lead_time"]["parts"]["merge_to_deploy"] == 14.5
    assert service["cfr_by_review_mode"]["two_or_more"]["failed"] == 1

    assert actors.client("other_token").get("/api/v1/teams/payments/dora", period).status_code == 404
    assert actors.client("outsider").get("/api/v1/services/checkout/dora", period).status_code == 404
    assert actors.client("anonymous").get("/api/v1/teams/payments/dora", period).status_code == 401
    bad = actors.client("token").get("/api/v1/teams/payments/dora", {"since": "2025-03-20", "until": "2025-03-01"})
    assert bad.status_code == 400
    assert "since" in bad.json()["fields"]
    assert actors.client("token").get("/api/v1/teams/payments/dora", {"since": "March"}).status_code == 400
    default = actors.client("token").get("/api/v1/teams/payments/dora").json()
    assert dt.datetime.fromisoformat(default["until"]) - dt.datetime.fromisoformat(default["since"]) == dt.timedelta(
        days=28
    )
