"""Who may do what in the admin: a matrix over every registered model's changelist, add, change and delete views
for every actor, refusals as well as permissions; and each bypass issue 13 names, tried the way a lead would.

Actors: anonymous, `member` (of shop, not staff), `lead` (leads shop), `other_lead` (leads search), `root`.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from reviews.admin_schedules import SCHEDULE_MODELS
from reviews.models import (
    ApiToken,
    Connection,
    Membership,
    Override,
    PolicyViolation,
    PullRequest,
    Repository,
    Review,
    Team,
    WebhookDelivery,
)
from telemetry.models import Incident, SuspectChange
from tests.factories import MembershipFactory, PersonFactory
from tests.reviews.admin_world import page_data, team_rows

pytestmark = pytest.mark.django_db

L, S, N = "leads", "superusers", "nobody"

# label -> who may (add, change, delete). Viewing: leads (their teams' rows) and superusers, or superusers only.
SCHEDULE_LABELS = [f"django_celery_beat.{model.__name__}" for model in SCHEDULE_MODELS]

EXPECTED: dict[str, tuple[str, str, str]] = {
    # what a lead steers
    "reviews.Policy": (L, L, N),
    "reviews.Team": (S, L, S),
    "reviews.Membership": (L, L, L),
    "reviews.Person": (L, L, L),
    "reviews.Identity": (L, L, S),
    "reviews.Repository": (L, L, L),
    "reviews.PairingSession": (L, L, L),
    "telemetry.Service": (L, L, L),
    "telemetry.ServiceRepository": (L, L, L),
    "telemetry.AlertSettings": (L, L, L),
    # records of exceptions: a token is added, the rest come from services' actions
    "reviews.ApiToken": (L, N, N),
    "reviews.Override": (N, N, N),
    "reviews.PolicyViolation": (N, N, N),
    "reviews.PolicyEvaluation": (N, N, N),
    "telemetry.SuspectChange": (N, N, N),
    "telemetry.SuspectVerdict": (N, N, N),
    "telemetry.DeployCheck": (N, N, N),
    "reviews.PolicyVersion": (N, N, N),
    "reviews.OverrideWithdrawal": (N, N, N),
    "reviews.FollowUpReview": (N, N, N),
    "reviews.AuditEvent": (N, N, N),
    "telemetry.TeamAlert": (N, N, N),
    # facts from GitHub, GitLab, CI/CD and incident tools, and what Tandem derives from them
    "reviews.PullRequest": (N, N, N),
    "reviews.Review": (N, N, N),
    "reviews.Comment": (N, N, N),
    "reviews.Commit": (N, N, N),
    "reviews.ChangedFile": (N, N, N),
    "reviews.CommitStatus": (N, N, N),
    "reviews.SyncRun": (N, N, N),
    "reviews.RiskSignal": (N, N, N),
    "telemetry.Deployment": (N, N, N),
    "telemetry.DeploymentChange": (N, N, N),
    "telemetry.Incident": (N, N, N),
    "telemetry.Notification": (N, N, N),
    "telemetry.WeeklyDigest": (N, N, N),
    # the instance: superusers only
    "reviews.Connection": (S, S, S),
    "reviews.WebhookDelivery": (N, N, N),
    "auth.User": (S, S, S),
    "auth.Group": (S, S, S),
    # beat's periodic jobs (django-celery-beat)
    **dict.fromkeys(SCHEDULE_LABELS, (S, S, S)),
}
SUPERUSERS_ONLY = {"reviews.Connection", "reviews.WebhookDelivery", "auth.User", "auth.Group", *SCHEDULE_LABELS}
ACTORS = ["anonymous", "member", "lead", "other_lead", "root"]


def test_the_matrix_names_every_registered_model():
    assert {model._meta.label for model in admin.site._registry} == set(EXPECTED)


@pytest.fixture
def world() -> dict[str, Any]:
    shop, search = team_rows("shop"), team_rows("search")
    root = User.objects.create_superuser("root", password="pw")
    shop["reviews.Connection"] = shop["reviews.Repository"].connection
    shop["reviews.WebhookDelivery"] = WebhookDelivery.objects.create(
        provider="github", delivery_id="d-1", event="ping", body="{}", status=WebhookDelivery.Status.DEAD
    )
    shop["auth.User"] = shop["member_user"]
    shop["auth.Group"] = Group.objects.create(name="auditors")
    shop.update(_schedule_rows())
    return {"shop": shop, "search": search, "root": root}


def _schedule_rows() -> dict[str, Any]:
    interval = IntervalSchedule.objects.create(every=42, period="seconds")
    return {
        "django_celery_beat.IntervalSchedule": interval,
        "django_celery_beat.CrontabSchedule": CrontabSchedule.objects.create(minute="5", hour="4"),
        "django_celery_beat.SolarSchedule": SolarSchedule.objects.create(event="sunrise", latitude=0, longitude=0),
        "django_celery_beat.ClockedSchedule": ClockedSchedule.objects.create(clocked_time=timezone.now()),
        "django_celery_beat.PeriodicTask": PeriodicTask.objects.create(
            name="matrix-check", task="reviews.tasks.reconcile_verdicts", interval=interval
        ),
    }


def _user(world: dict[str, Any], actor: str) -> User | None:
    return {
        "anonymous": None,
        "member": world["shop"]["member_user"],
        "lead": world["shop"]["lead_user"],
        "other_lead": world["search"]["lead_user"],
        "root": world["root"],
    }[actor]


def _base(model: type[Model]) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def _allowed(who: str, actor: str) -> bool:
    return who == L and actor in {"lead", "other_lead", "root"} or who == S and actor == "root"


def _expected(label: str, actor: str) -> dict[str, Any]:
    """Status codes (and, for an open change page, whether it may be saved) that `actor` gets on shop's row."""
    add, change, delete = EXPECTED[label]
    if actor in {"anonymous", "member"}:
        return dict.fromkeys(["changelist", "add", "change", "delete"], 302)  # to the login page
    if label in SUPERUSERS_ONLY and actor != "root":
        return dict.fromkeys(["changelist", "add", "change", "delete"], 403)
    own = actor in {"lead", "root"}
    expected: dict[str, Any] = {
        "changelist": 200,
        "add": 200 if _allowed(add, actor) else 403,
        # another team's row "does not exist" for a lead; refused outright when nobody may delete.
        "change": 200 if own else 302,
        "delete": 403 if not _allowed(delete, actor) else 200 if own else 302,
    }
    if own:
        expected["saves"] = _allowed(change, actor)
    return expected


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_permission_matrix(client, world, label):
    model = admin.site._registry and next(m for m in admin.site._registry if m._meta.label == label)
    row = world["shop"][label]
    for actor in ACTORS:
        client.logout()
        user = _user(world, actor)
        if user is not None:
            client.force_login(user)
        expected = _expected(label, actor)
        got = {
            "changelist": client.get(_base(model)).status_code,
            "add": client.get(f"{_base(model)}add/").status_code,
            "delete": client.get(f"{_base(model)}{row.pk}/delete/").status_code,
        }
        change = client.get(f"{_base(model)}{row.pk}/change/")
        got["change"] = change.status_code
        if change.status_code == 200:
            got["saves"] = bool(change.context["has_change_permission"])
        assert got == expected, f"{label} as {actor}"


@pytest.mark.parametrize("label", sorted(label for label, (_, _, delete) in EXPECTED.items() if delete != L))
def test_nobody_below_the_allowed_deletes_by_posting(client, world, label):
    """The delete confirmation posted anyway, by a lead of the row's team: refused, the row stays."""
    model = next(m for m in admin.site._registry if m._meta.label == label)
    row = world["shop"][label]
    client.force_login(world["shop"]["lead_user"])
    response = client.post(f"{_base(model)}{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert model._default_manager.filter(pk=row.pk).exists()


# --- the bypasses issue 13 names ---------------------------------------------------------------------------------


def _delete_selected(client: Any, model: type[Model], rows: list[Model]) -> Any:
    return client.post(
        _base(model), {"action": "delete_selected", "_selected_action": [r.pk for r in rows], "post": "yes"}
    )


def test_a_lead_cannot_delete_an_override(client, world):
    override = world["shop"]["reviews.Override"]
    client.force_login(world["shop"]["lead_user"])
    assert client.post(f"{_base(Override)}{override.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(_base(Override)).content.decode()
    assert "delete_selected" not in page
    _delete_selected(client, Override, [override])
    assert Override.objects.filter(pk=override.pk).exists()


def test_a_lead_cannot_delete_policy_violations(client, world):
    violation = world["shop"]["reviews.PolicyViolation"]
    client.force_login(world["shop"]["lead_user"])
    assert client.post(f"{_base(PolicyViolation)}{violation.pk}/delete/", {"post": "yes"}).status_code == 403
    _delete_selected(client, PolicyViolation, [violation])
    assert PolicyViolation.objects.filter(pk=violation.pk).exists()


def test_a_lead_cannot_delete_an_incident_with_its_suspects(client, world):
    incident = world["shop"]["telemetry.Incident"]
    client.force_login(world["shop"]["lead_user"])
    assert client.post(f"{_base(Incident)}{incident.pk}/delete/", {"post": "yes"}).status_code == 403
    _delete_selected(client, Incident, [incident])
    assert SuspectChange.objects.filter(incident=incident).exists()


def test_a_lead_cannot_delete_their_team(client, world):
    team = world["shop"]["team"]
    client.force_login(world["shop"]["lead_user"])
    assert client.post(f"{_base(Team)}{team.pk}/delete/", {"post": "yes"}).status_code == 403
    _delete_selected(client, Team, [team])
    assert Team.objects.filter(pk=team.pk).exists()


def test_a_superuser_is_told_why_a_team_with_a_record_is_not_deleted(client, world):
    team = world["shop"]["team"]
    client.force_login(world["root"])
    page = client.post(f"{_base(Team)}{team.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Cannot delete" in text
    assert "2 overrides of its pull requests" in text and "the record is kept" in text
    assert "Archive the team instead" in text
    selected = _delete_selected(client, Team, [team])
    assert "the record is kept" in selected.content.decode()
    assert Team.objects.filter(pk=team.pk).exists()


def test_a_team_without_a_record_is_deleted_by_a_superuser(client, world):
    empty = Team.objects.create(slug="empty", name="Empty")
    client.force_login(world["root"])
    assert client.post(f"{_base(Team)}{empty.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Team.objects.filter(pk=empty.pk).exists()


def test_a_lead_is_told_why_a_person_with_history_is_not_deleted(client, world):
    from reviews.models import Membership, Person
    from tests.factories import MembershipFactory, PersonFactory

    lead = world["shop"]["lead_user"]
    client.force_login(lead)
    reviewer = world["shop"]["reviews.Person"]  # shop's lead: overrode, reviewed
    page = client.post(f"/admin/reviews/person/{reviewer.pk}/delete/", {"post": "yes"})
    assert "Cannot delete" in page.content.decode() and "overrides they gave" in page.content.decode()
    assert Person.objects.filter(pk=reviewer.pk).exists()

    shared = PersonFactory(display_name="In both teams")
    MembershipFactory(person=shared, team=world["shop"]["team"], role=Membership.Role.MEMBER)
    MembershipFactory(person=shared, team=world["search"]["team"], role=Membership.Role.MEMBER)
    assert client.post(f"/admin/reviews/person/{shared.pk}/delete/", {"post": "yes"}).status_code == 403
    newcomer = PersonFactory(display_name="Only ours, no history")
    MembershipFactory(person=newcomer, team=world["shop"]["team"], role=Membership.Role.MEMBER)
    assert client.post(f"/admin/reviews/person/{newcomer.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Person.objects.filter(pk=newcomer.pk).exists()


def test_a_repository_with_pull_requests_is_not_deleted(client, world):
    from reviews.models import Repository

    repository = world["shop"]["reviews.Repository"]
    client.force_login(world["shop"]["lead_user"])
    page = client.post(f"{_base(Repository)}{repository.pk}/delete/", {"post": "yes"})
    assert "pull requests" in page.content.decode() and "the record is kept" in page.content.decode()
    assert Repository.objects.filter(pk=repository.pk).exists()


@pytest.mark.parametrize("actor", ["lead", "root"])
def test_nobody_edits_a_synced_field_of_a_pull_request(client, world, actor):
    pull_request = world["shop"]["reviews.PullRequest"]
    client.force_login(world["shop"]["lead_user"] if actor == "lead" else world["root"])
    page = client.get(f"{_base(PullRequest)}{pull_request.pk}/change/")
    assert 'name="title"' not in page.content.decode()
    response = client.post(
        f"{_base(PullRequest)}{pull_request.pk}/change/",
        {"title": "Rewritten", "state": "merged", "repository": pull_request.repository_id, "number": 1},
    )
    assert response.status_code == 403
    pull_request.refresh_from_db()
    assert pull_request.title == "shop change"


@pytest.mark.parametrize("actor", ["lead", "root"])
def test_nobody_adds_a_fabricated_approving_review(client, world, actor):
    pull_request = world["shop"]["reviews.PullRequest"]
    client.force_login(world["shop"]["lead_user"] if actor == "lead" else world["root"])
    count = Review.objects.count()
    fabricated = {
        "pull_request": pull_request.pk,
        "external_id": "fake",
        "reviewer": world["shop"]["reviews.Person"].pk,
        "state": "approved",
        "submitted_at_0": "2025-03-10",
        "submitted_at_1": "12:00:00",
        "comment_count": 0,
    }
    assert client.get(f"{_base(Review)}add/").status_code == 403
    assert client.post(f"{_base(Review)}add/", fabricated).status_code == 403
    # nor through the pull request's page, as a new row of its reviews inline
    page = client.get(f"{_base(PullRequest)}{pull_request.pk}/change/")
    data = page_data(page, PullRequest)
    data.update({"reviews-TOTAL_FORMS": ["1"], "reviews-0-state": ["approved"], "reviews-0-reviewer": ["1"]})
    assert client.post(f"{_base(PullRequest)}{pull_request.pk}/change/", data).status_code == 403
    assert Review.objects.count() == count


@pytest.mark.parametrize("actor", ["lead", "root"])
def test_nobody_adds_a_suspect_change_by_hand(client, world, actor):
    """It crashed with an IntegrityError (score read-only and NOT NULL); suspects come from ranking only."""
    client.force_login(world["shop"]["lead_user"] if actor == "lead" else world["root"])
    count = SuspectChange.objects.count()
    shop = world["shop"]
    response = client.post(
        f"{_base(SuspectChange)}add/",
        {
            "incident": shop["telemetry.Incident"].pk,
            "deployment": shop["telemetry.Deployment"].pk,
            "pull_request": shop["reviews.PullRequest"].pk,
        },
    )
    assert response.status_code == 403
    assert SuspectChange.objects.count() == count


def test_a_lead_still_gives_a_suspect_verdict_and_completes_a_followup_by_action(client, world):
    shop = world["shop"]
    client.force_login(shop["lead_user"])
    suspect, override = shop["telemetry.SuspectChange"], shop["reviews.Override"]
    client.post(_base(SuspectChange), {"action": "reject", "_selected_action": [suspect.pk]})
    suspect.refresh_from_db()
    assert suspect.verdict == SuspectChange.Verdict.REJECTED
    done = {"action": "mark_followup_done", "_selected_action": [override.pk], "confirm": "yes", "note": "Fine."}
    client.post(_base(Override), done)  # by the lead who overrode it: separation of duties refuses
    override.refresh_from_db()
    assert override.followup_done_at is None

    second_lead = User.objects.create_user("second-lead", password="pw", is_staff=True)
    MembershipFactory(
        team=override.pull_request.repository.team,
        person=PersonFactory(display_name="Second lead", user=second_lead),
        role=Membership.Role.LEAD,
    )
    client.force_login(second_lead)
    asked = client.post(_base(Override), {"action": "mark_followup_done", "_selected_action": [override.pk]})
    assert b"What you reviewed" in asked.content  # a recorded review, not a checkbox
    override.refresh_from_db()
    assert override.followup_done_at is None
    client.post(
        _base(Override),
        {"action": "mark_followup_done", "_selected_action": [override.pk], "confirm": "yes", "note": "Read it: fine."},
    )
    override.refresh_from_db()
    assert override.followup_done_at is not None
    assert override.followup.note == "Read it: fine."


def test_a_token_is_revoked_by_action_and_never_edited_back(client, world):
    token = world["shop"]["reviews.ApiToken"]
    client.force_login(world["shop"]["lead_user"])
    client.post(_base(ApiToken), {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    edited = client.post(f"{_base(ApiToken)}{token.pk}/change/", {"name": token.name, "teams": [], "revoked_at": ""})
    assert edited.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_superuser_reads_a_dead_delivery_and_replays_it(client, world, django_capture_on_commit_callbacks):
    delivery = world["shop"]["reviews.WebhookDelivery"]
    client.force_login(world["root"])
    listing = client.get(_base(WebhookDelivery), {"status__exact": "dead"}).content.decode()
    assert "d-1" in listing and "Next attempt at" in listing.replace("next", "Next")
    page = client.get(f"{_base(WebhookDelivery)}{delivery.pk}/change/").content.decode()
    for field in ("Next attempt at", "Dispatches", "Claim token"):
        assert field in page
    with django_capture_on_commit_callbacks(execute=False):
        client.post(_base(WebhookDelivery), {"action": "reprocess", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING


def test_only_superusers_are_offered_a_resync_of_pull_requests(client, world):
    client.force_login(world["shop"]["lead_user"])
    assert "resync_repositories" not in client.get(_base(PullRequest)).content.decode()
    client.force_login(world["root"])
    assert "resync_repositories" in client.get(_base(PullRequest)).content.decode()


def test_the_index_shows_what_a_lead_steers_before_the_raw_tables(client, world):
    client.force_login(world["shop"]["lead_user"])
    page = client.get("/admin/").content.decode()
    steer, raw = page.index("Steer your teams"), page.index("Records and raw tables")
    assert steer < page.index("Policies") < page.index("Overrides") < page.index("Suspect changes") < raw
    assert steer < page.index("Audit events") < raw
    assert raw < page.index("Pull requests")
    assert "This Tandem instance" not in page  # connections, deliveries and logins are a superuser's
    client.force_login(world["root"])
    assert "This Tandem instance" in client.get("/admin/").content.decode()
    assert client.get("/admin/reviews/").status_code == 200  # an app's own page still lists its models


def test_connections_stay_editable_by_superusers(client, world):
    connection = world["shop"]["reviews.Connection"]
    client.force_login(world["root"])
    assert client.get(f"{_base(Connection)}{connection.pk}/change/").context["has_change_permission"]


def test_a_lead_reads_only_their_teams_audit_events(client, world):
    from reviews.models import AuditEvent

    shop_event, search_event = world["shop"]["reviews.AuditEvent"], world["search"]["reviews.AuditEvent"]
    instance_event = AuditEvent.objects.create(source="admin", action="connection.change", actor="root", target_type="")
    client.force_login(world["shop"]["lead_user"])
    listed = set(client.get(_base(AuditEvent)).context["cl"].result_list)
    assert listed == {shop_event}
    assert client.get(f"{_base(AuditEvent)}{search_event.pk}/change/").status_code == 302  # "does not exist"
    client.force_login(world["root"])
    assert {shop_event, search_event, instance_event} <= set(client.get(_base(AuditEvent)).context["cl"].result_list)


def test_a_token_another_team_shares_is_not_revoked_by_one_teams_lead(client, world):
    from reviews.services.tokens import api_token_create

    shop_team, search_team = world["shop"]["reviews.Team"], world["search"]["reviews.Team"]
    shared, _ = api_token_create(name="shared CI", teams=[shop_team, search_team])
    ours, _ = api_token_create(name="our CI", teams=[shop_team])
    client.force_login(world["shop"]["lead_user"])
    client.post(_base(ApiToken), {"action": "revoke", "_selected_action": [shared.pk, ours.pk]})
    shared.refresh_from_db()
    ours.refresh_from_db()
    assert shared.revoked_at is None  # the search team's CI still depends on it
    assert ours.revoked_at is not None


def test_a_lead_picks_a_connection_when_adding_a_repository(client, world):
    connection = world["shop"]["reviews.Repository"].connection
    client.force_login(world["shop"]["lead_user"])
    page = client.get(f"{_base(Repository)}add/").content.decode()
    assert 'name="connection"' in page
    assert f'value="{connection.pk}"' in page  # a plain choice: the connections' autocomplete is superusers'
