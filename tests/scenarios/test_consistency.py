"""One truth per figure: for every pull request, every surface says the same about how it was reviewed and paired.

Each case is one merged pull request in a team of its own (so the team's figures are that pull request's), shipped
to production by its team's service and suspected in an incident after. The surfaces asked:
- the team page (HTML) and the health API: its coverage (reviewed / paired only / neither), approvals that
  counted, rubber stamps;
- the pull request page: its pairing partners and the verdict's trace;
- the policy snapshot and the engine's verdict over it: pairing credits and approvals counted;
- DORA's CFR by review mode: which mode it falls in;
- suspect ranking: whether it reads as paired, rubber-stamped, unapproved.
Every answer is compared with what METRICS.md says the case is, worked out by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import (
    ChangedFile,
    Identity,
    Membership,
    Override,
    OverrideWithdrawal,
    PullRequest,
    Review,
    Team,
)
from reviews.policy import evaluate
from reviews.selectors.policy import effective_policy, pull_request_snapshot
from reviews.services.pairing import (
    pairing_participant_add,
    pairing_participant_remove,
    pairing_session_end,
    pairing_session_record,
    pairing_session_start,
)
from reviews.services.policies import policy_save, pull_request_evaluate
from telemetry.models import Deployment, DeploymentChange, Incident, Service, ServiceRepository, SuspectChange
from telemetry.services.correlation import incident_correlate
from tests.factories import CommitFactory, IdentityFactory, PersonFactory, PullRequestFactory, RepositoryFactory

pytestmark = pytest.mark.django_db

POLICY = "rules:\n  - name: one approval\n    require: {approvals: 1}\n    options: {pairing_credit: 1}\n"
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@dataclass
class Expected:
    """What METRICS.md says of the case."""

    partners: set[str] = field(default_factory=set)
    approvals: int = 0
    rubber_stamps: int = 0
    overridden: bool = False
    credited: set[str] | None = None  # credited for pairing, when not every partner (one who also counted as reviewer)
    rule_applies: bool = True  # the trace counts approvals only toward a rule that applies
    traced_after_merge: int = 0  # approvals the current verdict counts that came after the merge (no figure does)

    @property
    def coverage(self) -> str:
        return "reviewed" if self.approvals else "paired_only" if self.partners else "neither"

    @property
    def mode(self) -> str:
        if self.overridden:
            return "overridden"
        if self.partners:
            return "paired"
        return {0: "unreviewed", 1: "one_approval"}.get(self.approvals, "two_or_more")


class Case:
    """A team with its repository and service, and one merged pull request by Ann, written at `written`."""

    def __init__(self, name: str, now: dt.datetime, lead: Any) -> None:
        self.name = name
        self.team = Team.objects.create(slug=name, name=name)
        self.repository = RepositoryFactory(team=self.team, full_path=f"acme/{name}")
        self.service = Service.objects.create(slug=name, name=name, team=self.team)
        ServiceRepository.objects.create(service=self.service, repository=self.repository, path_filters=[])
        self.people = {who: self.person(who) for who in ("Ann", "Bo", "Cy", "Dee", "Rex")}
        self.written = now - dt.timedelta(days=3)  # the commit
        self.pull_request = PullRequestFactory(
            repository=self.repository,
            author=self.people["Ann"],
            state=PullRequest.State.MERGED,
            head_ref=f"ann/{name}",
            created_at=self.written + 10 * M,
            ready_at=self.written + 10 * M,
            last_pushed_at=self.written + 20 * M,
            first_commit_at=self.written,
            merged_at=now - dt.timedelta(days=2),
            updated_at=now - dt.timedelta(days=2),
            additions=150,
            deletions=50,
            changed_files=3,
        )
        self.commit = CommitFactory(repository=self.repository, author=self.people["Ann"], authored_at=self.written)
        self.pull_request.commits.add(self.commit)
        policy_save(team=self.team, document=POLICY)
        Membership.objects.create(team=self.team, person=lead, role=Membership.Role.LEAD)

    def set_policy(self, require: str) -> None:
        """The team's policy becomes one rule requiring `require` (with pairing credit, as `POLICY`)."""
        document = f"rules:\n  - name: the rule\n    require: {require}\n    options: {{pairing_credit: 1}}\n"
        policy_save(team=self.team, document=document)

    def person(self, name: str) -> Any:
        person = PersonFactory(display_name=f"{name} of {self.name}")
        Membership.objects.create(team=self.team, person=person)
        IdentityFactory(person=person, kind=Identity.Kind.EMAIL, connection=None, value=f"{name}.{self.name}@ex.com")
        return person

    def name_of(self, *who: str) -> set[str]:
        return {f"{name} of {self.name}" for name in who}

    def co_author(self, who: str) -> None:
        self.commit.co_authors.add(self.people[who].identities.get(kind=Identity.Kind.EMAIL))

    def approve(
        self,
        who: str,
        *,
        after_push: dt.timedelta,
        body: str = "",
        commit_sha: str = "",
        state: str = Review.State.APPROVED,
    ) -> None:
        Review.objects.create(
            pull_request=self.pull_request,
            external_id=f"{self.name}-{who}-{after_push}",
            reviewer=self.people[who],
            state=state,
            body=body,
            commit_sha=commit_sha,
            submitted_at=self.pull_request.last_pushed_at + after_push,
        )

    def session(self, who: tuple[str, ...], start: dt.datetime, end: dt.datetime, *, branch: str = "") -> None:
        pairing_session_record(
            source="manual",
            external_id=f"{self.name}-{start.timestamp()}",
            participants=[(self.people[w], "driver" if i == 0 else "navigator") for i, w in enumerate(who)],
            started_at=start,
            ended_at=end,
            repository=self.repository,
            branch=branch or self.pull_request.head_ref,
        )

    def ship_and_suspect(self, now: dt.datetime) -> None:
        deployment = Deployment.objects.create(
            service=self.service,
            environment="production",
            repository=self.repository,
            sha=self.pull_request.head_sha,
            status=Deployment.Status.SUCCESS,
            source="api",
            external_id=f"{self.name}-deploy",
            started_at=now - dt.timedelta(days=1, minutes=10),
            finished_at=now - dt.timedelta(days=1),
            changes_linked_at=now - dt.timedelta(days=1),
        )
        DeploymentChange.objects.create(deployment=deployment, pull_request=self.pull_request)
        incident = Incident.objects.create(
            title=f"{self.name} is down", source="api", external_id=f"{self.name}-incident", started_at=now - 12 * H
        )
        incident.services.set([self.service])
        incident_correlate(incident_id=incident.pk)
        pull_request_evaluate(pull_request_id=self.pull_request.pk)


# The cases: how each pull request was written and reviewed, and what METRICS.md makes of it.


def paired_around_the_change(case: Case) -> Expected:
    case.session(("Ann", "Bo"), case.written - 2 * H, case.written + H)
    return Expected(partners=case.name_of("Bo"))


def paired_before_the_change(case: Case) -> Expected:
    case.session(("Ann", "Bo"), case.written - 5 * H, case.written - 3 * H)
    return Expected()


def paired_after_the_change(case: Case) -> Expected:
    case.session(("Ann", "Bo"), case.written + 2 * H, case.written + 4 * H)
    return Expected()


def two_others_paired_after_the_merge(case: Case) -> Expected:
    merged = case.pull_request.merged_at
    case.session(("Cy", "Dee"), merged + H, merged + 3 * H)  # same repository, same branch name
    return Expected()


def the_author_left_and_came_back(case: Case) -> Expected:
    """Ann left the mob before writing the commit alone and came back after it: she paired with nobody on it."""
    people = {name: person.pk for name, person in case.people.items()}
    session, _ = pairing_session_start(
        participants=[(people["Ann"], "driver"), (people["Bo"], "navigator"), (people["Dee"], "navigator")],
        repository_id=case.repository.pk,
        branch=case.pull_request.head_ref,
        started_at=case.written - 3 * H,
    )
    pairing_participant_remove(session=session, person=people["Ann"], driver=people["Bo"], at=case.written - 2 * H)
    pairing_participant_add(session=session, person=people["Ann"], at=case.written + H)
    pairing_session_end(session=session, ended_at=case.written + 2 * H)
    return Expected()


def co_authored(case: Case) -> Expected:
    case.co_author("Bo")
    return Expected(partners=case.name_of("Bo"))


def the_partner_also_approved(case: Case) -> Expected:
    """Bo co-wrote it and approved it: a contributor's approval does not count, the pairing does."""
    case.co_author("Bo")
    case.approve("Bo", after_push=3 * H, body="Ship it")
    return Expected(partners=case.name_of("Bo"))


def bots_only(case: Case) -> Expected:
    bot = PersonFactory(display_name="renovate[bot]", is_bot=True)
    bot_email = IdentityFactory(person=bot, kind=Identity.Kind.EMAIL, connection=None, value=f"bot.{case.name}@ex.com")
    case.commit.co_authors.add(bot_email)
    Review.objects.create(
        pull_request=case.pull_request,
        external_id=f"{case.name}-bot",
        reviewer=bot,
        state=Review.State.APPROVED,
        submitted_at=case.pull_request.last_pushed_at + 2 * H,
    )
    return Expected()


def overridden(case: Case) -> Expected:
    Override.objects.create(
        pull_request=case.pull_request,
        head_sha=case.pull_request.head_sha,
        overridden_by=case.people["Rex"],
        reason="hotfix",
        followup_due_at=case.pull_request.merged_at + 2 * H,
    )
    return Expected(overridden=True)


def rubber_stamped(case: Case) -> Expected:
    case.approve("Rex", after_push=2 * M)  # 200 changed lines: anything under 10 minutes without a word
    return Expected(approvals=1, rubber_stamps=1)


def approved_with_care_by_two(case: Case) -> Expected:
    case.approve("Rex", after_push=2 * M, body="Checked the retry path")
    case.approve("Cy", after_push=3 * H)
    return Expected(approvals=2)


def approved_before_a_push_that_changed_it(case: Case) -> Expected:
    """The approval was given on an earlier head whose diff differs: under `invalidate_on_push` it is stale."""
    PullRequest.objects.filter(pk=case.pull_request.pk).update(
        diff_ids={"0" * 40: "old diff", case.pull_request.head_sha: "new diff"}
    )
    case.approve("Rex", after_push=-5 * M, commit_sha="0" * 40)
    return Expected()


def approved_from_outside_the_required_team(case: Case) -> Expected:
    """The rule counts approvals from the seniors only: Rex's approval is not counted by the verdict, so no surface
    counts it; Cy, a senior, approved with care."""
    seniors = Team.objects.create(slug=f"seniors-{case.name}", name="seniors")
    Membership.objects.create(team=seniors, person=case.people["Cy"])
    case.set_policy(f"{{approvals: 1, teams: [{seniors.slug}]}}")
    case.approve("Rex", after_push=3 * H, body="Looks right")
    case.approve("Cy", after_push=4 * H, body="Checked the retry path")
    return Expected(approvals=1)


def approved_by_someone_not_named(case: Case) -> Expected:
    """The rule counts approvals from Dee only: Rex's rubber stamp does not count, so nobody counts it."""
    case.set_policy(f"{{approvals: 1, people: [dee.{case.name}@ex.com]}}")
    case.approve("Rex", after_push=2 * M)
    return Expected()


def approved_by_someone_who_owns_nothing(case: Case) -> Expected:
    """Only code owners' approvals count: Rex owns nothing the change touched, Cy owns it."""
    case.repository.codeowners = f"* cy.{case.name}@ex.com\n"
    case.repository.save(update_fields=["codeowners"])
    ChangedFile.objects.create(pull_request=case.pull_request, path="src/app.py", additions=150, deletions=50)
    case.set_policy("{code_owners: true}")
    case.approve("Rex", after_push=3 * H, body="Fine by me")
    case.approve("Cy", after_push=4 * H, body="Owner here, fine")
    return Expected(approvals=1)


def commits_not_known_yet(case: Case) -> Expected:
    """The commits were never fetched: Bo may have written them, so his approval does not count yet (fail closed,
    as the verdict waits), and nobody is known to have paired."""
    case.pull_request.commits.clear()
    PullRequest.objects.filter(pk=case.pull_request.pk).update(details_head_sha="")
    case.approve("Bo", after_push=3 * H, body="fine")
    return Expected()


def approval_dismissed(case: Case) -> Expected:
    """GitHub turns a dismissed approval's state to dismissed: it no longer counts anywhere."""
    case.approve("Rex", after_push=3 * H, body="Looks right", state=Review.State.DISMISSED)
    return Expected()


def approved_again_after_a_dismissal(case: Case) -> Expected:
    case.approve("Rex", after_push=3 * H, body="Looks right", state=Review.State.DISMISSED)
    case.approve("Rex", after_push=5 * H, body="Checked again")
    return Expected(approvals=1)


def changes_requested_after_approving(case: Case) -> Expected:
    case.approve("Rex", after_push=3 * H, body="Looks right")
    case.approve("Rex", after_push=5 * H, body="On second thought, no", state=Review.State.CHANGES_REQUESTED)
    return Expected()


def override_withdrawn(case: Case) -> Expected:
    override = Override.objects.create(
        pull_request=case.pull_request,
        head_sha=case.pull_request.head_sha,
        overridden_by=case.people["Rex"],
        reason="hotfix",
        followup_due_at=case.pull_request.merged_at + 2 * H,
    )
    OverrideWithdrawal.objects.create(override=override, withdrawn_by=case.people["Dee"], reason="not a hotfix")
    return Expected()


def approved_without_sha_after_the_last_push(case: Case) -> Expected:
    """As GitLab approvals come (no commit sha), given after the head's last push: it counts."""
    case.approve("Rex", after_push=3 * H, body="Looks right")
    return Expected(approvals=1)


def approved_without_sha_before_the_last_push(case: Case) -> Expected:
    """As GitLab approvals come (no commit sha), given before the head's last push: stale under invalidate_on_push."""
    case.approve("Rex", after_push=-5 * M, body="Looks right")
    return Expected()


def no_rule_applies(case: Case) -> Expected:
    """The only rule is for docs: the change is outside it, so the policy's options decide what counted."""
    ChangedFile.objects.create(pull_request=case.pull_request, path="src/app.py", additions=150, deletions=50)
    policy_save(
        team=case.team,
        document="rules:\n  - name: docs\n    if: {paths: ['docs/**']}\n    require: {approvals: 1}\n"
        "options: {pairing_credit: 1}\n",
    )
    case.approve("Rex", after_push=3 * H, body="Looks right")
    return Expected(approvals=1, rule_applies=False)


def session_partner_also_approved(case: Case) -> Expected:
    """Bo paired with Ann in a session (not a commit author, so not a contributor) and approved: his approval counts
    as a review, and he is not credited a second time for pairing."""
    case.session(("Ann", "Bo"), case.written - 2 * H, case.written + H)
    case.approve("Bo", after_push=3 * H, body="Ship it")
    return Expected(partners=case.name_of("Bo"), approvals=1, credited=set())


def approved_only_after_the_merge(case: Case) -> Expected:
    """Rex approved an hour after the merge: the change was merged unreviewed (METRICS.md: "merged with at least one
    approval that counted"; merge time runs from the last approval to the merge, never negative). The verdict of
    today counts the approval (the pull request page's trace), no figure about the merge does."""
    case.approve("Rex", after_push=case.pull_request.merged_at - case.pull_request.last_pushed_at + H, body="ok")
    return Expected(traced_after_merge=1)


CASES: list[Callable[[Case], Expected]] = [
    paired_around_the_change,
    paired_before_the_change,
    paired_after_the_change,
    two_others_paired_after_the_merge,
    the_author_left_and_came_back,
    co_authored,
    the_partner_also_approved,
    bots_only,
    overridden,
    rubber_stamped,
    approved_with_care_by_two,
    approved_before_a_push_that_changed_it,
    approved_from_outside_the_required_team,
    approved_by_someone_not_named,
    approved_by_someone_who_owns_nothing,
    commits_not_known_yet,
    approval_dismissed,
    approved_again_after_a_dismissal,
    changes_requested_after_approving,
    override_withdrawn,
    approved_without_sha_after_the_last_push,
    approved_without_sha_before_the_last_push,
    no_rule_applies,
    session_partner_also_approved,
    approved_only_after_the_merge,
]


# What each surface says.


def team_page_says(client: Any, case: Case) -> dict[str, Any]:
    health = client.get(f"/teams/{case.team.slug}/").context["page"].health
    [flow] = health.flows
    coverage = next(bucket for bucket, count in health.coverage.items() if count)
    return {
        "coverage": coverage,
        "approvals": flow.approvals,
        "rubber_stamps": health.rubber_stamps,
        "paired": flow.paired,
    }


def health_api_says(api: APIClient, case: Case) -> dict[str, Any]:
    current = api.get(f"/api/v1/teams/{case.team.slug}/health").json()["current"]
    coverage = next(bucket for bucket, count in current["coverage"].items() if count)
    return {"coverage": coverage, "approvals": current["approvals"], "rubber_stamps": current["rubber_stamps"]}


def _counted(trace: dict[str, Any], via: str) -> set[str]:
    return {a["login"] for rule in trace.get("rules", ()) for a in rule["approvals_counted"] if a["via"] == via}


def pull_request_page_says(client: Any, case: Case) -> dict[str, Any]:
    context = client.get(f"/pulls/{case.pull_request.pk}/").context
    trace = context["trace"]
    return {
        "partners": {str(partner.person) for partner in context["partners"]},
        "overridden": "override" in trace,
        "approvals": len(_counted(trace, "review")),
        "figure: approvals": context["figures"].flow.approvals if context["figures"] else None,
        "credited for pairing": _counted(trace, "pairing"),
    }


def policy_says(case: Case) -> dict[str, Any]:
    pull_request = PullRequest.objects.select_related("repository__connection").get(pk=case.pull_request.pk)
    snapshot = pull_request_snapshot(pull_request=pull_request)
    trace = evaluate(snapshot, effective_policy(repository=pull_request.repository)[1]).to_dict()
    return {
        "partners": {credit.partner.label for credit in snapshot.pairing},
        "approvals": len(_counted(trace, "review")),
        "credited for pairing": _counted(trace, "pairing"),
    }


def dora_says(api: APIClient, case: Case) -> str:
    modes = api.get(f"/api/v1/teams/{case.team.slug}/dora").json()["cfr_by_review_mode"]
    [mode] = [mode for mode, rate in modes.items() if rate["pull_requests"]]
    return str(mode)


def suspects_say(case: Case) -> set[str]:
    suspect = SuspectChange.objects.get(pull_request=case.pull_request)
    return {reason["factor"] for reason in suspect.reasons}


@pytest.fixture
def viewer(client) -> tuple[Any, APIClient, Any]:
    user = User.objects.create_user("lena", password="pw")
    lead = PersonFactory(display_name="Lena Lead", user=user)
    client.force_login(user)
    api = APIClient()
    api.force_authenticate(user=user)
    return client, api, lead


@pytest.mark.parametrize("build", CASES, ids=[case.__name__ for case in CASES])
def test_every_surface_agrees_with_metrics_md(build, viewer):
    client, api, lead = viewer
    now = timezone.now()
    case = Case(build.__name__.replace("_", "-")[:50], now, lead)
    expected = build(case)
    case.ship_and_suspect(now)
    factors = suspects_say(case)
    said = {
        "team page": team_page_says(client, case),
        "health API": health_api_says(api, case),
        "pull request page": pull_request_page_says(client, case),
        "policy": policy_says(case),
        "DORA review mode": dora_says(api, case),
        "suspect: paired": "paired" in factors,
        "suspect: rubber stamp": "rubber_stamp" in factors,
        "suspect: no approval": "no_approval" in factors,
    }
    # A partner who did not also count as a reviewer is credited for pairing by a policy with pairing credit.
    credited = expected.partners if expected.credited is None else expected.credited
    credited = credited if not expected.overridden and expected.rule_applies else set()
    traced = expected.approvals if not expected.overridden and expected.rule_applies else 0
    traced += expected.traced_after_merge
    wanted = {
        "team page": {
            "coverage": expected.coverage,
            "approvals": expected.approvals,
            "rubber_stamps": expected.rubber_stamps,
            "paired": bool(expected.partners),
        },
        "health API": {
            "coverage": expected.coverage,
            "approvals": expected.approvals,
            "rubber_stamps": expected.rubber_stamps,
        },
        "pull request page": {
            "partners": expected.partners,
            "overridden": expected.overridden,
            "approvals": traced,
            "figure: approvals": expected.approvals,
            "credited for pairing": credited,
        },
        "policy": {"partners": expected.partners, "approvals": traced, "credited for pairing": credited},
        "DORA review mode": expected.mode,
        "suspect: paired": bool(expected.partners),
        "suspect: rubber stamp": bool(expected.rubber_stamps),
        "suspect: no approval": expected.approvals == 0,
    }
    disagreements = {surface: said[surface] for surface in wanted if said[surface] != wanted[surface]}
    assert not disagreements, f"expected {wanted}"
