"""Reviewer suggestions that spread knowledge, requested on GitHub/GitLab when the policy asks, and knowledge per
area (bus factor): who is suggested and why, who never is, and who may read it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.integrations.vcs import VcsUnavailable
from reviews.models import (
    AuditEvent,
    ChangedFile,
    Identity,
    Membership,
    PairingParticipant,
    PairingSession,
    Policy,
    ReviewerSuggestion,
)
from reviews.policy import PolicyError, parse_policy
from reviews.selectors.familiarity import directory_area
from reviews.services.reviewers import reviewer_requests_make, reviewer_suggestions_compute
from reviews.services.tokens import api_token_create
from tests.factories import (
    CommitFactory,
    IdentityFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()
REQUEST_TWO = "rules: [{name: one, require: {approvals: 1}}]\nreviewers: {request: 2}\n"


def _changed(pull_request, *paths):
    for path in paths:
        ChangedFile.objects.create(pull_request=pull_request, path=path)


def _history(repository, author, reviewer, path, n, *, days_ago=5):
    for index in range(n):
        past = PullRequestFactory(
            repository=repository,
            author=author,
            state="merged",
            created_at=NOW - dt.timedelta(days=days_ago + index),
            merged_at=NOW - dt.timedelta(days=days_ago + index - 1),
        )
        _changed(past, path)
        if reviewer is not None:
            ReviewFactory(pull_request=past, reviewer=reviewer, submitted_at=NOW - dt.timedelta(days=days_ago + index))


@pytest.fixture
def world():
    """Team pay: Ada wrote payments/ledger, Bob reviewed it, Carol is new to it, Dave is away, a bot reviews
    everything, Eve co-authored the new change, Zed opens it."""
    pay, other = TeamFactory(slug="pay"), TeamFactory(slug="other")
    repository = RepositoryFactory(team=pay, full_path="acme/pay")
    people = {name: PersonFactory(display_name=name) for name in ("Ada", "Bob", "Carol", "Dave", "Eve", "Zed")}
    people["bot"] = PersonFactory(display_name="renovate[bot]", is_bot=True)
    for person in people.values():
        MembershipFactory(team=pay, person=person)
    people["Dave"].away_until = NOW.date() + dt.timedelta(days=3)
    people["Dave"].save()
    _history(repository, people["Ada"], people["Bob"], "payments/ledger/entries.py", 4)
    _history(repository, people["Eve"], people["Dave"], "payments/ledger/entries.py", 6, days_ago=20)
    _history(repository, people["Ada"], people["bot"], "payments/ledger/entries.py", 2, days_ago=30)
    change = PullRequestFactory(repository=repository, author=people["Zed"], state="open", head_ref="zed/ledger")
    _changed(change, "payments/ledger/balance.py")
    eve_email = Identity.objects.create(person=people["Eve"], kind=Identity.Kind.EMAIL, value="eve@example.com")
    commit = CommitFactory(repository=repository, author=people["Zed"])
    commit.co_authors.add(eve_email)
    change.commits.add(commit)
    return {"pay": pay, "other": other, "repository": repository, "change": change, **people}


def _names(row):
    return [item["name"] for item in row.suggestions]


def test_suggests_who_knows_the_area_then_a_newcomer_beside_them_with_reasons(world):
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert row.head_sha == world["change"].head_sha
    assert row.areas == ["payments/ledger/"]
    first, second = row.suggestions[0], row.suggestions[1]
    assert first["name"] == "Ada"
    assert first["kind"] == "familiar"
    assert "knows payments/ledger: 6 changes in 90 days (authored 6)" in first["reasons"]
    assert "no open reviews" in first["reasons"]
    assert second["name"] == "Carol"
    assert second["kind"] == "new_to_area"
    assert "new to this area, pairs with Ada who knows it" in second["reasons"]


def test_never_the_author_a_co_author_a_bot_or_someone_away(world):
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    suggested = set(_names(row))
    assert suggested
    assert not suggested & {"Zed", "Eve", "Dave", "renovate[bot]"}


def test_someone_back_from_away_is_suggested_again(world):
    world["Dave"].away_until = NOW.date() - dt.timedelta(days=1)
    world["Dave"].save()
    world["Ada"].away_until = NOW.date()
    world["Ada"].save()
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert row.suggestions[0]["name"] == "Dave"  # reviewed six changes there
    assert "Ada" not in _names(row)


def test_load_lowers_a_familiar_reviewer(world):
    for _ in range(5):
        waiting = PullRequestFactory(repository=world["repository"], state="open")
        waiting.requested_reviewers.add(world["Ada"])
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert row.suggestions[0]["name"] != "Ada"
    ada = next(item for item in row.suggestions if item["name"] == "Ada")
    assert "5 open reviews" in ada["reasons"]


def test_code_owners_come_first_when_the_policy_needs_them(world):
    repository = world["repository"]
    repository.codeowners = "payments/ @carol-gh\n"
    repository.save()
    IdentityFactory(person=world["Carol"], value="carol-gh", connection=repository.connection)
    Policy.objects.create(
        team=world["pay"], document="rules:\n  - name: owners\n    require: {approvals: 1, code_owners: true}\n"
    )
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert row.suggestions[0]["name"] == "Carol"
    assert row.suggestions[0]["kind"] == "code_owner"
    assert "code owner of payments/ (the policy needs one)" in row.suggestions[0]["reasons"]
    assert row.suggestions[1]["name"] == "Ada"


def test_no_suggestion_while_the_commits_are_not_known(world):
    change = world["change"]
    change.commits_incomplete = "the commit list was cut"
    change.save()
    assert reviewer_suggestions_compute(pull_request=change, now=NOW) is None


def test_pairing_on_a_change_makes_someone_familiar(world):
    repository = world["repository"]
    past = PullRequestFactory(repository=repository, author=world["Bob"], head_ref="pair/ledger", state="merged")
    _changed(past, "payments/ledger/fees.py")
    session = PairingSession.objects.create(
        repository=repository, branch="pair/ledger", started_at=NOW - dt.timedelta(days=2)
    )
    PairingParticipant.objects.create(session=session, person=world["Carol"], joined_at=NOW - dt.timedelta(days=2))
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    carol = next(item for item in row.suggestions if item["name"] == "Carol")
    assert any("paired 1" in reason for reason in carol["reasons"])


def _queries(pull_request):
    ReviewerSuggestion.objects.filter(pull_request=pull_request).delete()  # measured afresh: an insert each time
    with CaptureQueriesContext(connection) as captured:
        reviewer_suggestions_compute(pull_request=pull_request, now=NOW)
    return len(captured)


def test_query_count_does_not_grow_with_history(world):
    before = _queries(world["change"])
    _history(world["repository"], world["Bob"], world["Ada"], "payments/ledger/more.py", 25)
    _history(world["repository"], world["Carol"], world["Bob"], "docs/guide.md", 10)
    assert _queries(world["change"]) == before


def test_directory_area():
    assert directory_area("payments/ledger/x/y.py") == "payments/ledger/"
    assert directory_area("payments/x.py") == "payments/"
    assert directory_area("README.md") == ""
    assert directory_area("a/b/c.py", depth=1) == "a/"


def test_the_policy_option_is_validated():
    assert parse_policy(REQUEST_TWO).reviewers.request == 2
    assert parse_policy("rules: [{name: one, require: {approvals: 1}}]\n").reviewers.request == 0
    for bad in ("reviewers: {request: 9}", "reviewers: {request: -1}", "reviewers: {requst: 2}"):
        with pytest.raises(PolicyError) as error:
            parse_policy(f"rules: [{{name: one, require: {{approvals: 1}}}}]\n{bad}\n")
        assert "reviewers." in str(error.value.problems[0])


# --- API and pages ---------------------------------------------------------------------------------------------------


def _token(team):
    _, secret = api_token_create(name="t", teams=[team])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_api_answers_pending_then_the_suggestions_with_reasons(world):
    client, url = _token(world["pay"]), f"/api/v1/pulls/{world['change'].pk}/reviewer-suggestions"
    assert client.get(url).json()["state"] == "pending"
    reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    body = client.get(url).json()
    assert body["state"] == "ready"
    assert body["suggestions"][0]["name"] == "Ada"
    assert body["suggestions"][0]["reasons"]


def test_another_teams_token_cannot_read_suggestions_or_areas(world):
    reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    client = _token(world["other"])
    assert client.get(f"/api/v1/pulls/{world['change'].pk}/reviewer-suggestions").status_code == 404
    assert client.get("/api/v1/teams/pay/knowledge").status_code == 404


def test_pages_show_suggestions_and_lonely_areas(world, client):
    user = User.objects.create_user("ada", password="pw")
    world["Ada"].user = user
    world["Ada"].save()
    client.force_login(user)
    reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    page = client.get(f"/pulls/{world['change'].pk}/").content.decode()
    assert "Suggested reviewers" in page
    assert "new to this area, pairs with Ada who knows it" in page
    _history(world["repository"], world["Bob"], None, "billing/invoices/pdf.py", 1)
    team_page = client.get("/teams/pay/").content.decode()
    assert "Knowledge per area" in team_page
    assert "billing/invoices" in team_page


def test_a_lead_marks_someone_away_through_the_api_audited(world):
    lead_user = User.objects.create_user("lead", password="pw")
    lead = PersonFactory(display_name="Lead", user=lead_user)
    MembershipFactory(team=world["pay"], person=lead, role=Membership.Role.LEAD)
    client = APIClient()
    client.force_authenticate(lead_user)
    url = f"/api/v1/people/{world['Ada'].pk}/away"
    response = client.put(url, {"away_until": "2031-01-31"}, format="json")
    assert response.status_code == 200
    world["Ada"].refresh_from_db()
    assert world["Ada"].away_until == dt.date(2031, 1, 31)
    assert AuditEvent.objects.filter(action="person.away", target_id=str(world["Ada"].pk)).exists()
    bad = client.put(url, {"away_until": "soon"}, format="json")
    assert bad.status_code == 400
    assert "away_until" in bad.json()["fields"]


def test_a_member_cannot_mark_someone_away_nor_another_team(world):
    member_user = User.objects.create_user("member", password="pw")
    world["Bob"].user = member_user
    world["Bob"].save()
    client = APIClient()
    client.force_authenticate(member_user)
    assert client.put(f"/api/v1/people/{world['Ada'].pk}/away", {"away_until": None}, format="json").status_code == 403
    stranger = PersonFactory()
    MembershipFactory(team=world["other"], person=stranger)
    other = _token(world["other"])
    assert other.put(f"/api/v1/people/{world['Ada'].pk}/away", {"away_until": None}, format="json").status_code == 404


# --- requests on GitHub and GitLab -----------------------------------------------------------------------------------


@pytest.fixture
def on_github(world, fake_github, github_connection):
    repository = world["repository"]
    repository.connection = github_connection
    repository.full_path = "acme/pay"
    repository.save()
    fake_github.add_repo("acme/pay")
    fake_github.add_pull("acme/pay", number=world["change"].number, author="zed")
    for name in ("Ada", "Bob", "Carol"):
        IdentityFactory(person=world[name], value=name.lower(), connection=github_connection)
    Policy.objects.create(team=world["pay"], document=REQUEST_TWO)
    return fake_github


def test_top_suggestions_are_requested_on_github_once_and_a_502_is_retried(world, on_github):
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    on_github.fail_next("/requested_reviewers", status=502)
    with pytest.raises(VcsUnavailable):
        reviewer_requests_make(suggestion=row)
    row.refresh_from_db()
    assert row.requested_at is None and "502" in row.request_error
    assert reviewer_requests_make(suggestion=row) == "requested 2"
    assert reviewer_requests_make(suggestion=row) == "already requested"
    assert on_github.reviewer_requests == [("acme/pay", world["change"].number, ["ada", "carol"])]
    assert row.requested == [world["Ada"].pk, world["Carol"].pk]


def test_someone_already_requested_or_who_reviewed_is_not_requested_again(world, on_github):
    change = world["change"]
    change.requested_reviewers.add(world["Ada"])
    row = reviewer_suggestions_compute(pull_request=change, now=NOW)
    assert reviewer_requests_make(suggestion=row) == "requested 1"
    assert on_github.reviewer_requests[-1][2] == ["carol"]


def test_nothing_is_requested_without_the_policy_option(world, on_github):
    Policy.objects.filter(team=world["pay"]).update(document="rules: [{name: one, require: {approvals: 1}}]\n")
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert reviewer_requests_make(suggestion=row) == "not asked"
    assert on_github.reviewer_requests == []


def test_gitlab_reviewers_are_added_keeping_the_current_ones(world, fake_gitlab, gitlab_connection):
    repository = world["repository"]
    repository.connection = gitlab_connection
    repository.full_path = "acme/pay"
    repository.save()
    fake_gitlab.add_project("acme/pay")
    existing = fake_gitlab.add_user("someone")
    fake_gitlab.add_merge_request("acme/pay", iid=world["change"].number, author="zed", reviewers=["someone"])
    for name in ("Ada", "Carol"):
        user = fake_gitlab.add_user(name.lower())
        Identity.objects.create(
            person=world[name],
            kind=Identity.Kind.GITLAB,
            connection=gitlab_connection,
            value=name.lower(),
            external_id=str(user["id"]),
        )
    Policy.objects.create(team=world["pay"], document=REQUEST_TWO)
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert reviewer_requests_make(suggestion=row) == "requested 2"
    project, iid, ids = fake_gitlab.reviewer_updates[-1]
    assert (project, iid) == ("acme/pay", world["change"].number)
    assert ids[0] == existing["id"] and len(ids) == 3


def test_the_task_suggests_once_per_head_and_requests_once(world, on_github):
    from reviews.tasks import suggest_reviewers

    assert suggest_reviewers.apply(args=[world["change"].pk]).get() == "requested 2"
    assert suggest_reviewers.apply(args=[world["change"].pk]).get() == "already requested"
    assert ReviewerSuggestion.objects.filter(pull_request=world["change"]).count() == 1
    assert len(on_github.reviewer_requests) == 1


def test_the_verdict_pass_queues_suggestions_for_a_new_head(world, django_capture_on_commit_callbacks, monkeypatch):
    from reviews.services import verdicts

    queued = []
    monkeypatch.setattr(verdicts, "reviewer_suggestion_enqueue", queued.append)
    verdicts._suggest_reviewers_once(world["change"])
    assert queued == [world["change"].pk]
    reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    verdicts._suggest_reviewers_once(world["change"])
    assert queued == [world["change"].pk]  # this head has its suggestions


def test_a_pass_asks_whether_the_head_has_suggestions_only_when_a_push_moved_it(
    world, django_assert_num_queries, monkeypatch
):
    from reviews.services import verdicts

    queued = []
    monkeypatch.setattr(verdicts, "reviewer_suggestion_enqueue", queued.append)
    change = world["change"]
    with django_assert_num_queries(0):  # the pass's first read said so, for this very head
        verdicts._suggest_reviewers_once(change, (change.head_sha, True))
        verdicts._suggest_reviewers_once(change, (change.head_sha, False))
    assert queued == [change.pk]
    with django_assert_num_queries(1):  # the head moved since that read: asked
        verdicts._suggest_reviewers_once(change, ("0" * 40, True))
    assert queued == [change.pk, change.pk]


def test_the_pass_read_says_whether_the_head_has_suggestions(world):
    from reviews.services import verdicts

    change = world["change"]
    assert verdicts._suggestions_known(verdicts._PASS_READ.first(pk=change.pk)) == (change.head_sha, False)
    reviewer_suggestions_compute(pull_request=change, now=NOW)
    assert verdicts._suggestions_known(verdicts._PASS_READ.first(pk=change.pk)) == (change.head_sha, True)
    assert verdicts._suggestions_known(change) is None  # read otherwise: unknown, asked


def test_the_task_answers_not_asked_without_locking_the_suggestion(world, on_github):
    from reviews.tasks import suggest_reviewers

    Policy.objects.filter(team=world["pay"]).update(document="rules: [{name: one, require: {approvals: 1}}]\n")
    with CaptureQueriesContext(connection) as captured:
        assert suggest_reviewers.apply(args=[world["change"].pk]).get() == "not asked"
    assert ReviewerSuggestion.objects.filter(pull_request=world["change"]).count() == 1
    assert not [query for query in captured.captured_queries if "FOR UPDATE" in query["sql"]]
    assert on_github.reviewer_requests == []


def test_working_a_head_out_again_keeps_what_was_requested_for_it(world, on_github):
    row = reviewer_suggestions_compute(pull_request=world["change"], now=NOW)
    assert reviewer_requests_make(suggestion=row) == "requested 2"
    again = reviewer_suggestions_compute(pull_request=world["change"], now=NOW + dt.timedelta(minutes=1))
    assert again is not None and again.pk == row.pk
    stored = ReviewerSuggestion.objects.get(pk=row.pk)
    assert stored.computed_at == NOW + dt.timedelta(minutes=1)
    assert stored.requested == [world["Ada"].pk, world["Carol"].pk] and stored.requested_at is not None
    assert reviewer_requests_make(suggestion=again) == "already requested"
