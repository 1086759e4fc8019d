"""The world the admin tests act in (one row of every model the admin shows, for each of two teams), and what a
browser would post from an admin page."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Model

from reviews.models import (
    ApiToken,
    AuditEvent,
    ChangedFile,
    CommitStatus,
    FollowUpReview,
    Membership,
    Override,
    OverrideWithdrawal,
    PairingParticipant,
    PairingSession,
    Policy,
    PolicyEvaluation,
    PolicyVersion,
    PolicyViolation,
    RiskSignal,
    SyncRun,
)
from telemetry.models import (
    AlertSettings,
    DeployCheck,
    DeploymentChange,
    Notification,
    ServiceRepository,
    SuspectChange,
    SuspectVerdict,
    TeamAlert,
    WeeklyDigest,
)
from tests.factories import (
    CommentFactory,
    CommitFactory,
    DeploymentFactory,
    IdentityFactory,
    IncidentFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    ServiceFactory,
    TeamFactory,
)

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


def team_rows(slug: str) -> dict[str, Any]:
    """One row of each model the admin shows, all within the team `slug`; keyed by model label."""
    team = TeamFactory(slug=slug, name=slug.title())
    lead_user = User.objects.create_user(f"{slug}-lead", password="pw", is_staff=True)
    lead = PersonFactory(display_name=f"{slug} lead", user=lead_user)
    membership = MembershipFactory(team=team, person=lead, role=Membership.Role.LEAD)
    member_user = User.objects.create_user(f"{slug}-member", password="pw")
    member = PersonFactory(display_name=f"{slug} member", user=member_user)
    MembershipFactory(team=team, person=member, role=Membership.Role.MEMBER)
    identity = IdentityFactory(person=lead, value=f"{slug}-lead")
    repository = RepositoryFactory(team=team, full_path=f"acme/{slug}")
    pull_request = PullRequestFactory(repository=repository, author=member, title=f"{slug} change")
    commit = CommitFactory(repository=repository, author=member, author_identity=identity)
    pull_request.commits.add(commit)
    policy = Policy.objects.create(team=team, document="rules:\n  - name: one\n    require: {approvals: 1}\n")
    evaluation = PolicyEvaluation.objects.create(
        pull_request=pull_request, policy=policy, head_sha="a" * 40, outcome="pending"
    )
    session = PairingSession.objects.create(repository=repository, branch="feature", started_at=NOW)
    PairingParticipant.objects.create(
        session=session, person=member, joined_at=NOW, left_at=NOW + dt.timedelta(hours=1)
    )
    token = ApiToken.objects.create(name=f"{slug} ci", prefix=f"tdm_{slug}"[:12], key_hash=f"{slug:x<64}")
    token.teams.add(team)
    service = ServiceFactory(slug=f"{slug}-api", team=team)
    ServiceRepository.objects.create(service=service, repository=repository)
    deployment = DeploymentFactory(service=service, repository=repository)
    incident = IncidentFactory(title=f"{slug} outage")
    incident.services.add(service)
    suspect = SuspectChange.objects.create(
        incident=incident, deployment=deployment, pull_request=pull_request, score=1.0, rank=1
    )
    # Records of exceptions on a second override, so the first one stays open (not withdrawn, no follow-up).
    corrected = Override.objects.create(
        pull_request=pull_request, overridden_by=lead, reason="earlier outage", followup_due_at=NOW
    )
    rows: dict[str, Any] = {
        "team": team,
        "lead_user": lead_user,
        "member_user": member_user,
        "reviews.Team": team,
        "reviews.Person": lead,
        "auth.User": lead_user,
        "reviews.Membership": membership,
        "reviews.Identity": identity,
        "reviews.Repository": repository,
        "reviews.SyncRun": SyncRun.objects.create(repository=repository),
        "reviews.PullRequest": pull_request,
        "reviews.ChangedFile": ChangedFile.objects.create(pull_request=pull_request, path="app.py"),
        "reviews.Commit": commit,
        "reviews.Review": ReviewFactory(pull_request=pull_request, reviewer=lead),
        "reviews.Comment": CommentFactory(pull_request=pull_request, author=lead),
        "reviews.CommitStatus": CommitStatus.objects.create(
            repository=repository, sha="a" * 40, context="ci/build", state="pending", updated_at=NOW
        ),
        "reviews.Policy": policy,
        "reviews.PolicyEvaluation": evaluation,
        "reviews.Override": Override.objects.create(
            pull_request=pull_request, overridden_by=lead, reason="outage", followup_due_at=NOW
        ),
        "reviews.PolicyViolation": PolicyViolation.objects.create(
            pull_request=pull_request, evaluation=evaluation, outcome="pending"
        ),
        "reviews.RiskSignal": RiskSignal.objects.create(repository=repository, reference=f"{slug}-1", occurred_at=NOW),
        "reviews.PairingSession": session,
        "reviews.ApiToken": token,
        "telemetry.Service": service,
        "telemetry.ServiceRepository": ServiceRepository.objects.get(service=service),
        "telemetry.Deployment": deployment,
        "telemetry.DeploymentChange": DeploymentChange.objects.create(
            deployment=deployment, commit=commit, pull_request=pull_request
        ),
        "telemetry.Incident": incident,
        "telemetry.SuspectChange": suspect,
        "telemetry.SuspectVerdict": SuspectVerdict.objects.create(suspect=suspect, verdict="rejected"),
        "telemetry.DeployCheck": DeployCheck.objects.create(
            service=service,
            environment="production",
            sha="a" * 40,
            repository=repository,
            level="low",
            decision="allow",
            token=token,
            deployment=deployment,
        ),
        "reviews.PolicyVersion": PolicyVersion.objects.create(policy=policy, number=1, document=policy.document),
        "reviews.OverrideWithdrawal": OverrideWithdrawal.objects.create(
            override=corrected, withdrawn_by=lead, reason="given by mistake"
        ),
        "reviews.FollowUpReview": FollowUpReview.objects.create(override=corrected, reviewer=member, note="fine"),
        "reviews.AuditEvent": AuditEvent.objects.create(
            source="admin", action="team.test", team=team, actor=f"{slug} lead", target_type="reviews.team"
        ),
        "telemetry.AlertSettings": AlertSettings.objects.create(team=team),
        "telemetry.TeamAlert": TeamAlert.objects.create(
            team=team,
            figure="pickup_time",
            direction="up",
            first_day=NOW.date(),
            last_day=NOW.date(),
            value=10,
            baseline=5,
            scale=1,
            departure=5,
            samples=8,
            deviations=3,
            sustained_days=3,
            evidence_kind="pull_request",
        ),  # fmt: skip
        "telemetry.WeeklyDigest": WeeklyDigest.objects.create(team=team, week=NOW.date(), subject="week", text="…"),
        "telemetry.Notification": Notification.objects.create(
            person=lead, kind="suspect", subject="A change", body="…", incident=incident, pull_request=pull_request
        ),
    }
    return rows


class FormFields(HTMLParser):
    """What a browser would post from the form with this id: inputs, checked boxes, selected options, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.select: str | None = None
        self.textarea: str | None = None
        self.text = ""
        self.data: dict[str, list[str]] = {}

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in {"submit", "button", "reset", "file", "image"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            self._add(a["name"], a.get("value", "on" if kind in {"checkbox", "radio"} else ""))
        elif tag == "select":
            self.select = a.get("name")
            self.data.setdefault(self.select or "", [])
        elif tag == "option" and self.select and "selected" in a:
            self._add(self.select, a.get("value", ""))
        elif tag == "textarea":
            self.textarea, self.text = a.get("name"), ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea:
            self._add(self.textarea, self.text.removeprefix("\n"))
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.text += data


def page_data(response: Any, model: type[Model]) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    parser = FormFields(f"{model._meta.model_name}_form")
    parser.feed(response.content.decode())
    return {name: values for name, values in parser.data.items() if name and "__prefix__" not in name}
