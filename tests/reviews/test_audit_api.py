"""The audit trail over the API, the exact compliance figures (no cap at 50) and the evidence export, with a
permission matrix over every write this touches: anonymous, member, lead, lead of another team, token of the
team, token of another team, superuser."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import AuditEvent, Membership, Override, PolicyEvaluation, PolicyViolation, Review
from reviews.services.audit import Actor
from reviews.services.policies import policy_save, pull_request_override
from reviews.services.tokens import api_token_create
from telemetry.evidence import evidence_verify
from tests.factories import MembershipFactory, PersonFactory, PullRequestFactory, RepositoryFactory, TeamFactory

pytestmark = pytest.mark.django_db
DOC = "rules:\n  - name: two\n    require: {approvals: 2}\n"
TODAY = timezone.localdate()
PERIOD = f"since={TODAY - dt.timedelta(days=365)}&until={TODAY + dt.timedelta(days=1)}"
WHO = ["anonymous", "member", "lead", "other_lead", "token", "other_token", "superuser"]


@pytest.fixture
def world():
    team, other = TeamFactory(slug="shop"), TeamFactory(slug="search")
    repository = RepositoryFactory(team=team, default_branch="main")
    people = {}
    for name, which, role in (
        ("lead", team, Membership.Role.LEAD),
        ("member", team, Membership.Role.MEMBER),
        ("other_lead", other, Membership.Role.LEAD),
    ):
        user = User.objects.create_user(name, password="pw")
        people[name] = PersonFactory(display_name=name, user=user)
        MembershipFactory(team=which, person=people[name], role=role)
    User.objects.create_superuser("root", password="pw")
    _, token = api_token_create(name="ci", teams=[team], created_by=people["lead"].user)
    _, other_token = api_token_create(name="other ci", teams=[other])
    pull_request = PullRequestFactory(repository=repository, author=PersonFactory(), head_sha="a" * 40)
    return {"team": team, "repository": repository, "pull_request": pull_request, "token": token,
            "other_token": other_token, **people}  # fmt: skip


def client(world, who: str) -> APIClient:
    api = APIClient()
    if who in {"token", "other_token"}:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {world[who]}")
    elif who == "superuser":
        api.force_login(User.objects.get(username="root"))
    elif who != "anonymous":
        api.force_login(world[who].user)
    return api


def an_override(world) -> Override:
    return pull_request_override(pull_request=world["pull_request"], person=world["lead"], reason="hotfix")


# --- the permission matrix -----------------------------------------------------------------------------------------

# Expected status per caller: the team's leads (and its token, for policy edits) may; the rest are refused.
MATRIX = {
    "policy_put": dict(anonymous=401, member=403, lead=200, other_lead=404, token=200, other_token=404, superuser=200),
    "policy_restore": dict(
        anonymous=401, member=403, lead=201, other_lead=404, token=201, other_token=404, superuser=201
    ),
    "override": dict(anonymous=401, member=403, lead=201, other_lead=404, token=403, other_token=404, superuser=403),
    "withdraw": dict(anonymous=401, member=403, lead=201, other_lead=404, token=403, other_token=404, superuser=403),
    "followup": dict(anonymous=401, member=201, lead=403, other_lead=404, token=403, other_token=404, superuser=403),
    "evidence": dict(anonymous=401, member=200, lead=200, other_lead=404, token=200, other_token=404, superuser=200),
    "audit": dict(anonymous=401, member=200, lead=200, other_lead=200, token=403, other_token=403, superuser=200),
}


def call(world, what: str, api: APIClient):
    if what == "policy_put":
        return api.put("/api/v1/teams/shop/policy", {"document": DOC, "reason": "r"}, format="json")
    if what == "policy_restore":
        policy_save(team=world["team"], document=DOC)
        return api.post("/api/v1/teams/shop/policy/versions/1/restore", {}, format="json")
    if what == "override":
        return api.post(f"/api/v1/pulls/{world['pull_request'].pk}/override", {"reason": "hotfix"}, format="json")
    if what == "withdraw":
        return api.post(f"/api/v1/overrides/{an_override(world).pk}/withdraw", {"reason": "oops"}, format="json")
    if what == "followup":
        return api.post(f"/api/v1/overrides/{an_override(world).pk}/followup", {"note": "read it"}, format="json")
    if what == "evidence":
        return api.get(f"/api/v1/evidence?team=shop&{PERIOD}&format=csv")
    return api.get("/api/v1/audit-events")


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("what", list(MATRIX))
def test_permission_matrix(world, what, who):
    response = call(world, what, client(world, who))
    assert response.status_code == MATRIX[what][who], getattr(response, "content", b"")[:300]
    if response.status_code in {200, 201} and what not in {"evidence", "audit"}:
        event = AuditEvent.objects.order_by("-pk").first()
        assert event is not None and event.source == "api"
    if response.status_code >= 400 and what in {"override", "withdraw", "followup"}:
        # Refused writes leave no trace but the refusal: nothing recorded, nothing withdrawn or followed up.
        assert not AuditEvent.objects.filter(source="api").exists()


# --- the audit trail -----------------------------------------------------------------------------------------------


def test_a_policy_edit_is_audited_with_before_and_after(world):
    client(world, "lead").put("/api/v1/teams/shop/policy", {"document": DOC, "reason": "audit"}, format="json")
    event = AuditEvent.objects.get(action="policy.edit")
    assert (event.team, event.actor_person) == (world["team"], world["lead"])
    assert (event.source, event.reason) == ("api", "audit")
    assert event.changes["document"] == {"before": None, "after": DOC}


def test_audit_events_are_filtered_and_scoped(world):
    policy_save(team=world["team"], document=DOC, actor=Actor(source="api", user=world["lead"].user,
                                                              person=world["lead"]))  # fmt: skip
    an_override(world)
    lead = client(world, "lead")
    assert {e["action"] for e in lead.get("/api/v1/audit-events").json()["results"]} == {
        "policy.edit", "override.create", "token.create",
    }  # fmt: skip
    assert [e["action"] for e in lead.get("/api/v1/audit-events?action=override.create").json()["results"]] == [
        "override.create"
    ]
    assert len(lead.get("/api/v1/audit-events?actor=lead").json()["results"]) == 1
    future = (timezone.now() + dt.timedelta(days=1)).date().isoformat()
    assert lead.get(f"/api/v1/audit-events?since={future}").json()["results"] == []
    other = client(world, "other_lead").get("/api/v1/audit-events").json()["results"]
    assert [e["action"] for e in other] == ["token.create"]  # their own team's token only


def test_the_policy_history_shows_each_versions_diff_and_author(world):
    lead = client(world, "lead")
    lead.put("/api/v1/teams/shop/policy", {"document": DOC, "reason": "first"}, format="json")
    client(world, "token").put("/api/v1/teams/shop/policy", {"document": DOC.replace("2", "3")}, format="json")
    versions = lead.get("/api/v1/teams/shop/policy/versions").json()["versions"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[0]["author"] == {"user": "lead", "token": {"name": "ci", "prefix": world["token"][:12]}}
    assert "-    require: {approvals: 2}" in versions[0]["diff"]
    assert "+    require: {approvals: 3}" in versions[0]["diff"]
    assert versions[1]["reason"] == "first"


def test_the_schema_lists_the_new_endpoints(world):
    schema = client(world, "lead").get("/api/schema/?format=json").json()
    for path in ("/api/v1/audit-events", "/api/v1/evidence", "/api/v1/overrides/{id}/followup"):
        assert path in schema["paths"]


# --- compliance, exactly -------------------------------------------------------------------------------------------


def merged(world, n: int, **extra):
    now = timezone.now()
    pulls = []
    for i in range(n):
        pr = PullRequestFactory(
            repository=world["repository"], state="merged", base_ref="main", head_sha=f"{i:040x}",
            merged_at=now - dt.timedelta(hours=i + 1), merge_commit_sha=f"{i:040x}", **extra,
        )  # fmt: skip
        pulls.append(pr)
    return pulls


def test_compliance_counts_exactly_past_fifty(world):
    pulls = merged(world, 62)
    for pr in pulls[:55]:
        evaluation = PolicyEvaluation.objects.create(
            pull_request=pr, head_sha=pr.head_sha, outcome="pending", evaluated_at=pr.merged_at - dt.timedelta(hours=1)
        )
        PolicyViolation.objects.create(pull_request=pr, evaluation=evaluation, outcome="pending")
    for pr in pulls[55:60]:
        PolicyEvaluation.objects.create(
            pull_request=pr, head_sha=pr.head_sha, outcome="approved", evaluated_at=pr.merged_at - dt.timedelta(hours=1)
        )
    pull_request_override(pull_request=pulls[60], person=world["lead"], reason="hotfix")
    lead = client(world, "lead")
    figures = lead.get("/api/v1/teams/shop/health?days=30").json()["compliance"]
    assert (figures["merged"], figures["violations"], figures["compliant"], figures["overridden"]) == (62, 55, 5, 1)
    assert figures["not_evaluated"] == 1
    assert figures["followups"] == {"done": 0, "due": 1, "overdue": 0}
    assert figures["by_reason"][0] == {"reason": "merged while pending", "count": 55}
    assert figures["by_repository"][0]["violation"] == 55
    page = lead.get("/api/v1/teams/shop/compliance?page_size=50").json()
    assert page["count"] == 62 and len(page["results"]) == 50
    assert lead.get("/api/v1/teams/shop/compliance?page=2&page_size=50").json()["results"][-1]["status"]
    api = APIClient()
    api.force_login(world["lead"].user)
    html = api.get("/teams/shop/").content.decode()
    assert "<strong>62</strong></a> changes merged" in html  # the count links to its pull requests
    # The compliance page is the drill-down list of merges, with the verdict columns.
    listing = api.get("/teams/shop/compliance/?days=30", follow=True).content.decode()
    assert listing.count('data-column="status"') == 50
    listing = api.get("/teams/shop/pulls/?days=30&metric=merged&page=2").content.decode()
    assert listing.count('data-column="status"') == 12


# --- evidence ------------------------------------------------------------------------------------------------------


def evidence(world, fmt: str, who: str = "lead") -> bytes:
    response = client(world, who).get(f"/api/v1/evidence?team=shop&{PERIOD}&format={fmt}")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_evidence_carries_approvals_verdict_overrides_and_its_digest(world):
    pr = merged(world, 1)[0]
    reviewer = PersonFactory(display_name="rita")
    Review.objects.create(pull_request=pr, external_id="r1", reviewer=reviewer, state="approved",
                          commit_sha=pr.head_sha, submitted_at=pr.merged_at - dt.timedelta(minutes=5))  # fmt: skip
    # The author's own approval is evidence too, but it never counted.
    Review.objects.create(pull_request=pr, external_id="r0", reviewer=pr.author, state="approved",
                          commit_sha=pr.head_sha, submitted_at=pr.merged_at - dt.timedelta(minutes=9))  # fmt: skip
    at = pr.merged_at - dt.timedelta(minutes=1)
    PolicyEvaluation.objects.create(
        pull_request=pr, head_sha=pr.head_sha, outcome="approved", trace={"rules": []}, evaluated_at=at
    )
    body = evidence(world, "json")
    assert evidence_verify(body)
    document = json.loads(body)
    change = document["changes"][0]
    assert [(a["reviewer"], a["head"], a["counted"]) for a in change["approvals"]] == [
        (pr.author.display_name, pr.head_sha, False),
        ("rita", pr.head_sha, True),
    ]
    assert (change["verdict_at_merge"], change["status"], change["trace"]) == ("approved", "compliant", {"rules": []})
    assert document["rows"] == 1 and len(document["sha256"]) == 64
    csv_body = evidence(world, "csv")
    assert evidence_verify(csv_body)
    assert csv_body.decode().splitlines()[-1].startswith("# sha256: ")
    assert not evidence_verify(csv_body.replace(b"rita", b"ruth"))


def test_evidence_streams_in_chunks_with_a_bounded_number_of_queries(world, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import telemetry.evidence

    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as queries:
            evidence(world, "csv")
        return len(queries)

    first = merged(world, 3)
    for pr in first:
        an = pull_request_override(pull_request=pr, person=world["lead"], reason="x")
        assert an.pk
    three = queries_for_export()
    for pr in merged(world, 30)[3:]:
        pull_request_override(pull_request=pr, person=world["lead"], reason="x")
    # Thirty changes cost what three do: no query per row.
    assert queries_for_export() == three
    monkeypatch.setattr(telemetry.evidence, "CHUNK", 7)
    body = evidence(world, "csv")
    assert evidence_verify(body)
    assert body.decode().count("\n# rows: 33\n") == 1


@pytest.mark.parametrize("review", [2**70, "²", 0])
def test_a_followup_naming_a_review_id_out_of_range_is_a_400(world, review):
    url = f"/api/v1/overrides/{an_override(world).pk}/followup"
    api = client(world, "member")
    api.raise_request_exception = False
    response = api.post(url, {"note": "read it", "review": review}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "review" in response.json()["fields"]
