"""The pairing sessions API: start, driver switches, mobbing, end, lists, scoping and every refusal."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from reviews.models import Identity, PairingParticipant, PairingSession, Person
from reviews.services.pairing import PairingInvalid, pairing_session_record, pairing_session_start
from reviews.services.tokens import api_token_create
from tests.factories import IdentityFactory, MembershipFactory, PersonFactory, RepositoryFactory, TeamFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/pairing-sessions"


@pytest.fixture
def team():
    return TeamFactory(slug="payments")


@pytest.fixture
def other_team():
    return TeamFactory(slug="search")


def _member(team, name: str, login: str) -> Person:
    person = PersonFactory(display_name=name)
    MembershipFactory(team=team, person=person)
    IdentityFactory(person=person, kind=Identity.Kind.GITHUB, value=login)
    IdentityFactory(person=person, kind=Identity.Kind.EMAIL, connection=None, value=f"{login}@example.com")
    return person


@pytest.fixture
def ann(team):
    return _member(team, "Ann", "ann")


@pytest.fixture
def bo(team):
    return _member(team, "Bo", "bo")


@pytest.fixture
def cy(team):
    return _member(team, "Cy", "cy")


@pytest.fixture
def dee(team):
    return _member(team, "Dee", "dee")


@pytest.fixture
def outsider(other_team):
    return _member(other_team, "Olu", "olu")


def _client(team=None) -> APIClient:
    client = APIClient()
    if team is not None:
        _, secret = api_token_create(name=f"ci for {team.slug}", teams=[team])
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api(team):
    """A token of the team: the actor that may act on its people's sessions."""
    return _client(team)


@pytest.fixture
def other_api(other_team):
    """A token of another team."""
    return _client(other_team)


@pytest.fixture
def anonymous():
    return _client()


def _start(api, *participants, **extra):
    payload = {
        "participants": [{"person": p, "role": "driver" if i == 0 else "navigator"} for i, p in enumerate(participants)]
    }
    return api.post(SESSIONS, {**payload, **extra}, format="json")


def _assert_refused(response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.json()
    body = response.json()
    assert body["error"]
    if field:
        assert field in body["fields"]


def _nothing_written() -> None:
    assert PairingSession.objects.count() == 0
    assert PairingParticipant.objects.count() == 0


# Starting ------------------------------------------------------------------------------------------------------------


def test_start_with_ids_logins_and_emails_creates_a_session_with_one_driver(api, ann, bo, cy):
    repository = RepositoryFactory()
    response = _start(api, ann.pk, "github:Bo", "CY@example.com", repository=repository.pk, branch="ann/retry")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["active"] is True
    assert body["driver"] == ann.pk
    assert body["repository"] == {"id": repository.pk, "full_path": repository.full_path}
    assert body["branch"] == "ann/retry"
    assert {p["person"]["id"]: p["role"] for p in body["participants"]} == {
        ann.pk: "driver",
        bo.pk: "navigator",
        cy.pk: "navigator",
    }


def test_a_retried_start_with_the_same_client_id_returns_the_same_session(api, ann, bo):
    first = _start(api, ann.pk, bo.pk, client_id="laptop-42")
    again = _start(api, ann.pk, bo.pk, client_id="laptop-42")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["client_id"] == "laptop-42"
    assert PairingSession.objects.count() == 1


def test_a_start_retried_after_the_session_changed_returns_it_as_it_is(api, ann, bo, cy):
    first = _start(api, ann.pk, bo.pk, client_id="laptop-42").json()
    api.post(f"{SESSIONS}/{first['id']}/participants", {"person": cy.pk}, format="json")
    api.delete(f"{SESSIONS}/{first['id']}/participants/{bo.pk}")
    api.post(f"{SESSIONS}/{first['id']}/end", {}, format="json")
    again = _start(api, ann.pk, bo.pk, client_id="laptop-42")
    assert again.status_code == 200, again.json()
    assert again.json() == api.get(f"{SESSIONS}/{first['id']}").json()
    assert PairingSession.objects.count() == 1


def test_two_api_sessions_cannot_share_a_client_id_in_the_database(ann, bo):
    from django.db import IntegrityError, transaction

    PairingSession.objects.create(source="api", external_id="laptop-42", started_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        PairingSession.objects.create(source="api", external_id="laptop-42", started_at=timezone.now())
    # Sessions without a client id are many.
    PairingSession.objects.create(source="api", external_id="", started_at=timezone.now())
    PairingSession.objects.create(source="api", external_id="", started_at=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_a_start_make_one_session(ann, bo):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers anyway; the row locks and the constraint matter on PostgreSQL")
    barrier = threading.Barrier(3)

    def start(_: int) -> tuple[int, bool]:
        try:
            barrier.wait()
            session, created = pairing_session_start(
                participants=[(ann.pk, "driver"), (bo.pk, "navigator")], client_id="laptop-42"
            )
            return session.pk, created
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(start, range(3)))
    assert len({pk for pk, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False, False, True]
    assert PairingSession.objects.count() == 1
    assert PairingParticipant.objects.count() == 2


def test_a_start_that_lost_the_race_for_its_client_id_returns_the_winners_session(ann, bo, monkeypatch):
    """The unique constraint is the last guard: a retry that passed the look-up still gets the first session."""
    from reviews.services.pairing import sessions as service

    first, _ = pairing_session_start(participants=[(ann.pk, "driver"), (bo.pk, "navigator")], client_id="laptop-42")
    real_filter = PairingSession.objects.filter

    def blind_lookup(*args, **kwargs):
        if kwargs.get("external_id") == "laptop-42" and "pk" not in kwargs:
            return PairingSession.objects.none()  # the winner's row not yet visible to this retry
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(service.PairingSession.objects, "filter", blind_lookup)
    monkeypatch.setattr(service, "_check_free", lambda people, field: None)  # nor its participants
    again, created = pairing_session_start(
        participants=[(ann.pk, "driver"), (bo.pk, "navigator")], client_id="laptop-42"
    )
    assert (again.pk, created) == (first.pk, False)
    assert PairingSession.objects.count() == 1


def test_a_client_id_reused_for_other_people_is_a_conflict(api, ann, bo, cy, dee):
    _start(api, ann.pk, bo.pk, client_id="laptop-42")
    _assert_refused(_start(api, cy.pk, dee.pk, client_id="laptop-42"), 409)
    assert PairingSession.objects.count() == 1


def test_start_in_the_past_is_allowed_but_not_in_the_future(api, ann, bo):
    earlier = timezone.now() - dt.timedelta(hours=1)
    response = _start(api, ann.pk, bo.pk, started_at=earlier.isoformat())
    assert response.status_code == 201
    assert PairingSession.objects.get().started_at == earlier
    PairingSession.objects.all().delete()
    later = timezone.now() + dt.timedelta(hours=1)
    _assert_refused(_start(api, ann.pk, bo.pk, started_at=later.isoformat()), 400, "started_at")
    _nothing_written()


@pytest.mark.parametrize(
    "reference",
    [99999, "github:nobody", "nobody@example.com", "gitlab:", "not a person", True, None, ""],
)
def test_start_with_an_unknown_person_is_refused(api, ann, reference):
    _assert_refused(_start(api, ann.pk, reference), 400, "participants")
    _nothing_written()


def test_start_with_an_identity_not_attached_to_a_person_is_refused(api, ann):
    IdentityFactory(person=None, kind=Identity.Kind.EMAIL, connection=None, value="stranger@example.com")
    response = _start(api, ann.pk, "stranger@example.com")
    _assert_refused(response, 400, "participants")
    assert "not linked to a person yet" in response.json()["error"]
    _nothing_written()


def test_start_with_fewer_than_two_participants_is_refused(api, ann):
    _assert_refused(_start(api, ann.pk), 400, "participants")
    _assert_refused(api.post(SESSIONS, {"participants": []}, format="json"), 400, "participants")
    _nothing_written()


def test_start_with_the_same_person_twice_is_refused(api, ann):
    _assert_refused(_start(api, ann.pk, "github:ann"), 400, "participants")
    _nothing_written()


def test_start_with_no_driver_or_two_drivers_is_refused(api, ann, bo):
    no_driver = {"participants": [{"person": ann.pk}, {"person": bo.pk, "role": "navigator"}]}
    two_drivers = {"participants": [{"person": ann.pk, "role": "driver"}, {"person": bo.pk, "role": "driver"}]}
    bad_role = {"participants": [{"person": ann.pk, "role": "driver"}, {"person": bo.pk, "role": "pilot"}]}
    _assert_refused(api.post(SESSIONS, no_driver, format="json"), 400, "participants")
    _assert_refused(api.post(SESSIONS, two_drivers, format="json"), 400, "participants")
    _assert_refused(api.post(SESSIONS, bad_role, format="json"), 400, "participants")
    _nothing_written()


def test_start_with_a_person_already_in_another_active_session_is_refused(api, ann, bo, cy):
    first = _start(api, ann.pk, bo.pk)
    response = _start(api, cy.pk, "github:bo")
    _assert_refused(response, 400, "participants")
    assert f"pairing session {first.json()['id']}" in response.json()["error"]
    assert PairingSession.objects.count() == 1
    assert PairingParticipant.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_starts_racing_for_the_same_person_make_one_session(ann, bo, cy):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers anyway; the row locks matter on PostgreSQL")
    barrier = threading.Barrier(2)

    def start(partner: Person) -> str:
        try:
            barrier.wait()
            pairing_session_start(participants=[(ann.pk, "driver"), (partner.pk, "navigator")])
            return "started"
        except PairingInvalid:
            return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(start, [bo, cy]))
    assert outcomes == ["refused", "started"]
    assert PairingParticipant.objects.filter(person=ann).count() == 1


def test_start_with_an_unknown_or_foreign_repository_is_refused(api, ann, bo, other_team):
    _assert_refused(_start(api, ann.pk, bo.pk, repository=424242), 400, "repository")
    foreign = RepositoryFactory(team=other_team)
    _assert_refused(_start(api, ann.pk, bo.pk, repository=foreign.pk), 400, "repository")
    _nothing_written()


def test_start_with_malformed_input_is_refused(api, ann, bo):
    _assert_refused(api.post(SESSIONS, {"participants": "ann, bo"}, format="json"), 400, "participants")
    _assert_refused(_start(api, ann.pk, bo.pk, started_at="yesterday"), 400, "started_at")
    _nothing_written()


# Scope ---------------------------------------------------------------------------------------------------------------


def test_anonymous_callers_get_401(anonymous, ann, bo):
    assert _start(anonymous, ann.pk, bo.pk).status_code == 401
    assert anonymous.get(SESSIONS).status_code == 401
    assert anonymous.get(f"/api/v1/people/{ann.pk}/active-session").status_code == 401
    assert anonymous.get("/api/v1/teams/payments/pairing").status_code == 401
    _nothing_written()


def test_a_token_cannot_start_a_session_with_people_outside_its_teams(api, other_api, ann, outsider):
    _assert_refused(_start(api, ann.pk, outsider.pk), 403)
    _assert_refused(_start(other_api, ann.pk, outsider.pk), 403)
    _nothing_written()


def test_a_token_of_another_team_neither_sees_nor_changes_the_teams_sessions(api, other_api, ann, bo):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    assert other_api.get(f"{SESSIONS}/{session_id}").status_code == 404
    assert other_api.get(SESSIONS).json()["count"] == 0
    assert other_api.post(f"{SESSIONS}/{session_id}/end", {}, format="json").status_code == 404
    assert other_api.get(f"/api/v1/people/{ann.pk}/active-session").status_code == 404
    assert other_api.get("/api/v1/teams/payments/pairing").status_code == 404
    assert PairingSession.objects.get().ended_at is None


def test_a_mixed_session_is_listed_for_both_teams_but_only_changed_by_a_token_of_both(
    api, other_api, ann, outsider, team, other_team
):
    both = _client(team)
    _, secret = api_token_create(name="both", teams=[team, other_team])
    both.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    session_id = _start(both, ann.pk, outsider.pk).json()["id"]
    assert [s["id"] for s in api.get(SESSIONS).json()["results"]] == [session_id]
    assert [s["id"] for s in other_api.get(SESSIONS).json()["results"]] == [session_id]
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/end", {}, format="json"), 403)
    _assert_refused(other_api.post(f"{SESSIONS}/{session_id}/driver", {"person": ann.pk}, format="json"), 403)
    assert both.post(f"{SESSIONS}/{session_id}/end", {}, format="json").status_code == 200


def test_a_refusal_does_not_name_people_outside_the_tokens_teams(api, ann, bo, outsider):
    """A person id (or login) of another team is refused as given: the answer names them as the caller wrote
    them, never by their name, so ids cannot be walked to list every team's people."""
    started = _start(api, ann.pk, outsider.pk)
    _assert_refused(started, 403)
    assert "Olu" not in started.json()["error"]
    assert str(outsider.pk) in started.json()["error"]
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    joined = api.post(f"{SESSIONS}/{session_id}/participants", {"person": "github:olu"}, format="json")
    _assert_refused(joined, 403)
    assert "Olu" not in joined.json()["error"]


def test_a_token_cannot_bring_an_outsider_into_a_session(api, ann, bo, outsider):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/participants", {"person": outsider.pk}, format="json"), 403)
    assert PairingParticipant.objects.count() == 2


# Steering ------------------------------------------------------------------------------------------------------------


def test_switching_driver_makes_the_old_driver_navigate(api, ann, bo):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    response = api.post(f"{SESSIONS}/{session_id}/driver", {"person": "github:bo"}, format="json")
    assert response.status_code == 200
    assert response.json()["driver"] == bo.pk
    roles = {p["person"]["id"]: p["role"] for p in response.json()["participants"]}
    assert roles == {ann.pk: "navigator", bo.pk: "driver"}


def test_switching_to_someone_not_in_the_session_is_refused(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/driver", {"person": cy.pk}, format="json"), 400, "person")
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/driver", {}, format="json"), 400, "person")
    assert PairingParticipant.objects.get(person=ann).role == "driver"


def test_mobbing_someone_joins_and_leaves(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    joined = api.post(f"{SESSIONS}/{session_id}/participants", {"person": "cy@example.com"}, format="json")
    assert joined.status_code == 200
    assert len(joined.json()["participants"]) == 3
    left = api.delete(f"{SESSIONS}/{session_id}/participants/github:cy")
    assert left.status_code == 200
    body = left.json()
    assert body["active"] is True
    cy_row = next(p for p in body["participants"] if p["person"]["id"] == cy.pk)
    assert cy_row["present"] is False
    assert cy_row["left_at"] is not None


def test_joining_as_driver_hands_over_the_keyboard(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    response = api.post(f"{SESSIONS}/{session_id}/participants", {"person": cy.pk, "role": "driver"}, format="json")
    assert response.json()["driver"] == cy.pk
    assert PairingParticipant.objects.filter(role="driver").count() == 1


def test_a_repeated_join_answers_as_the_first_did_and_changes_nothing(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    url = f"{SESSIONS}/{session_id}/participants"
    first = api.post(url, {"person": cy.pk, "role": "driver"}, format="json")
    again = api.post(url, {"person": cy.pk, "role": "driver"}, format="json")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    # Someone present all along: nothing changes either, whatever role was asked (/driver hands over).
    same = api.post(url, {"person": f"github:{bo.identities.get(kind='github').value}"}, format="json")
    assert same.status_code == 200
    assert same.json() == first.json()
    assert PairingParticipant.objects.filter(session_id=session_id).count() == 3


def test_joining_while_in_another_session_is_refused(api, ann, bo, cy, dee):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    _start(api, cy.pk, dee.pk)
    url = f"{SESSIONS}/{session_id}/participants"
    _assert_refused(api.post(url, {"person": cy.pk}, format="json"), 400, "person")
    _assert_refused(api.post(url, {"person": "github:ghost"}, format="json"), 400, "person")
    assert PairingSession.objects.get(pk=session_id).participations.count() == 2


def test_when_the_driver_leaves_someone_must_take_over(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk, cy.pk).json()["id"]
    _assert_refused(api.delete(f"{SESSIONS}/{session_id}/participants/{ann.pk}"), 400, "driver")
    _assert_refused(api.delete(f"{SESSIONS}/{session_id}/participants/{ann.pk}?driver={ann.pk}"), 400, "driver")
    response = api.delete(f"{SESSIONS}/{session_id}/participants/{ann.pk}?driver=github:cy")
    assert response.status_code == 200
    assert response.json()["driver"] == cy.pk


def test_removing_someone_not_present_is_refused(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    _assert_refused(api.delete(f"{SESSIONS}/{session_id}/participants/{cy.pk}"), 400, "person")


def test_a_session_left_with_one_person_ends(api, ann, bo):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    response = api.delete(f"{SESSIONS}/{session_id}/participants/{bo.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is False
    assert all(p["left_at"] == body["ended_at"] for p in body["participants"])
    assert api.get(f"/api/v1/people/{ann.pk}/active-session").status_code == 404


def test_someone_who_left_can_come_back(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk, cy.pk).json()["id"]
    api.delete(f"{SESSIONS}/{session_id}/participants/{cy.pk}")
    response = api.post(f"{SESSIONS}/{session_id}/participants", {"person": cy.pk}, format="json")
    assert response.status_code == 200
    participants = response.json()["participants"]
    assert all(p["present"] for p in participants)
    # Two stays: Cy was not in the session between leaving and coming back.
    [cy_row] = [p for p in participants if p["person"]["id"] == cy.pk]
    assert [stay["left_at"] is None for stay in cy_row["stays"]] == [False, True]
    assert cy_row["left_at"] is None and cy_row["joined_at"] == cy_row["stays"][0]["joined_at"]


# Ending --------------------------------------------------------------------------------------------------------------


def test_end_now_or_at_a_given_time(api, ann, bo, cy, dee):
    started = timezone.now() - dt.timedelta(hours=2)
    first = _start(api, ann.pk, bo.pk, started_at=started.isoformat()).json()["id"]
    response = api.post(f"{SESSIONS}/{first}/end", {}, format="json")
    assert response.status_code == 200
    assert response.json()["active"] is False
    second = _start(api, cy.pk, dee.pk, started_at=started.isoformat()).json()["id"]
    ended = started + dt.timedelta(minutes=50)
    response = api.post(f"{SESSIONS}/{second}/end", {"ended_at": ended.isoformat()}, format="json")
    assert response.status_code == 200
    assert PairingSession.objects.get(pk=second).ended_at == ended
    assert set(PairingParticipant.objects.filter(session_id=second).values_list("left_at", flat=True)) == {ended}


def test_ending_before_the_start_or_in_the_future_is_refused(api, ann, bo):
    started = timezone.now() - dt.timedelta(hours=1)
    session_id = _start(api, ann.pk, bo.pk, started_at=started.isoformat()).json()["id"]
    url = f"{SESSIONS}/{session_id}/end"
    before = (started - dt.timedelta(minutes=1)).isoformat()
    _assert_refused(api.post(url, {"ended_at": before}, format="json"), 400, "ended_at")
    future = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    _assert_refused(api.post(url, {"ended_at": future}, format="json"), 400, "ended_at")
    _assert_refused(api.post(url, {"ended_at": "soon"}, format="json"), 400, "ended_at")
    assert PairingSession.objects.get().ended_at is None
    assert not PairingParticipant.objects.filter(left_at__isnull=False).exists()


def test_ending_before_someone_joined_is_refused(api, ann, bo, cy):
    started = timezone.now() - dt.timedelta(hours=1)
    session_id = _start(api, ann.pk, bo.pk, started_at=started.isoformat()).json()["id"]
    api.post(f"{SESSIONS}/{session_id}/participants", {"person": cy.pk}, format="json")
    early = (started + dt.timedelta(minutes=10)).isoformat()
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/end", {"ended_at": early}, format="json"), 400, "ended_at")


def test_a_repeated_end_answers_as_the_first_did(api, ann, bo):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    first = api.post(f"{SESSIONS}/{session_id}/end", {}, format="json")
    assert first.status_code == 200
    again = api.post(f"{SESSIONS}/{session_id}/end", {}, format="json")
    assert again.status_code == 200, again.json()
    assert again.json() == first.json()
    same_time = api.post(f"{SESSIONS}/{session_id}/end", {"ended_at": first.json()["ended_at"]}, format="json")
    assert same_time.status_code == 200, same_time.json()
    assert same_time.json() == first.json()


def test_a_repeated_leave_answers_as_the_first_did(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk, cy.pk).json()["id"]
    first = api.delete(f"{SESSIONS}/{session_id}/participants/{cy.pk}")
    again = api.delete(f"{SESSIONS}/{session_id}/participants/{cy.pk}")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    # The leave that ended the session, retried after it ended.
    ending = api.delete(f"{SESSIONS}/{session_id}/participants/{bo.pk}")
    assert ending.json()["active"] is False
    retried = api.delete(f"{SESSIONS}/{session_id}/participants/{bo.pk}")
    assert retried.status_code == 200, retried.json()
    assert retried.json() == ending.json()


def test_ending_an_ended_session_at_another_time_is_a_conflict_and_so_is_steering_it(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    assert api.post(f"{SESSIONS}/{session_id}/end", {}, format="json").status_code == 200
    ended_at = PairingSession.objects.get().ended_at
    earlier = (ended_at - dt.timedelta(seconds=1)).isoformat()
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/end", {"ended_at": earlier}, format="json"), 409)
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/driver", {"person": bo.pk}, format="json"), 409)
    _assert_refused(api.post(f"{SESSIONS}/{session_id}/participants", {"person": cy.pk}, format="json"), 409)
    assert PairingSession.objects.get().ended_at == ended_at


def test_after_ending_the_same_people_can_start_again(api, ann, bo):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    api.post(f"{SESSIONS}/{session_id}/end", {}, format="json")
    assert _start(api, bo.pk, ann.pk).status_code == 201


def test_unknown_session_is_404(api):
    assert api.get(f"{SESSIONS}/4242").status_code == 404
    assert api.post(f"{SESSIONS}/4242/end", {}, format="json").status_code == 404


# Reading -------------------------------------------------------------------------------------------------------------


def test_active_session_of_a_person(api, ann, bo, cy):
    session_id = _start(api, ann.pk, bo.pk).json()["id"]
    response = api.get(f"/api/v1/people/{bo.pk}/active-session")
    assert response.status_code == 200
    assert response.json()["id"] == session_id
    assert api.get(f"/api/v1/people/{cy.pk}/active-session").status_code == 404
    assert api.get("/api/v1/people/99999/active-session").status_code == 404


def test_list_filters_and_pagination(api, team, other_team, ann, bo, cy, dee, outsider):
    repository = RepositoryFactory()
    now = timezone.now()
    for day in range(3):
        start = now - dt.timedelta(days=10 - day)
        pairing_session_record(
            source="manual",
            external_id=f"old-{day}",
            participants=[(ann, "driver"), (bo, "navigator")],
            started_at=start,
            ended_at=start + dt.timedelta(hours=1),
            repository=repository if day == 0 else None,
        )
    pairing_session_record(
        source="manual",
        external_id="outsiders",
        participants=[(outsider, "driver"), (PersonFactory(), "navigator")],
        started_at=now - dt.timedelta(days=1),
        ended_at=now - dt.timedelta(hours=20),
    )
    active_id = _start(api, cy.pk, dee.pk).json()["id"]

    def ids(query: str = "") -> list[int]:
        response = api.get(f"{SESSIONS}{query}")
        assert response.status_code == 200, response.json()
        return [s["id"] for s in response.json()["results"]]

    assert len(ids()) == 4  # the outsiders' session is not the team's to see
    assert ids("?active=true") == [active_id]
    assert len(ids("?active=false")) == 3
    assert len(ids(f"?person={ann.pk}")) == 3
    assert len(ids("?person=github:bo")) == 3
    assert ids(f"?person={cy.pk}") == [active_id]
    assert len(ids("?team=payments")) == 4
    assert ids("?team=search") == []
    assert len(ids(f"?repository={repository.pk}")) == 1
    after = (now - dt.timedelta(days=9)).date().isoformat()
    assert len(ids(f"?started_after={after}")) == 3
    before = (now - dt.timedelta(days=8, hours=12)).isoformat().replace("+00:00", "Z")
    assert len(ids(f"?started_before={before}")) == 2

    page = api.get(f"{SESSIONS}?page=1").json()
    assert page["count"] == 4
    assert [s["id"] for s in page["results"]][0] == active_id  # newest first
    _assert_refused(api.get(f"{SESSIONS}?active=maybe"), 400, "active")
    _assert_refused(api.get(f"{SESSIONS}?started_after=last-week"), 400, "started_after")
    _assert_refused(api.get(f"{SESSIONS}?person=github:ghost"), 400, "person")


@pytest.mark.parametrize("sessions", [5, 50])
def test_list_queries_do_not_grow_with_the_page(api, ann, bo, sessions, django_assert_max_num_queries):
    now = timezone.now()
    for index in range(sessions):
        start = now - dt.timedelta(days=index + 1)
        pairing_session_record(
            source="manual",
            external_id=f"s-{index}",
            participants=[(ann, "driver"), (bo, "navigator")],
            started_at=start,
            ended_at=start + dt.timedelta(hours=1),
        )
    with django_assert_max_num_queries(8):
        response = api.get(SESSIONS)
    assert len(response.json()["results"]) == sessions


def test_team_pairing_insight_endpoint(api, ann, bo):
    start = timezone.now() - dt.timedelta(days=2)
    pairing_session_record(
        source="manual",
        external_id="yesterday",
        participants=[(ann, "driver"), (bo, "navigator")],
        started_at=start,
        ended_at=start + dt.timedelta(hours=2),
    )
    response = api.get("/api/v1/teams/payments/pairing")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["team"] == "payments"
    assert body["pairs"][0] == {
        "people": [ann.pk, bo.pk],
        "hours": 2.0,
        "sessions": 1,
        # The day the pairing last went on: the session's end, which is the next day when it started after 22:00.
        "last_paired_on": timezone.localtime(start + dt.timedelta(hours=2)).date().isoformat(),
    }
    assert {h["person"]: h["total_hours"] for h in body["hours_per_person"]} == {ann.pk: 2.0, bo.pk: 2.0}
    assert body["not_paired"] == []
    assert body["suggested_pairs"] == [[ann.pk, bo.pk]]
    whole = api.get("/api/v1/teams/payments/pairing", {"since": "2025-03-03", "until": "2025-03-16"}).json()
    assert (whole["weeks"], whole["partial_weeks"]) == (["2025-W10", "2025-W11"], [])
    part = api.get("/api/v1/teams/payments/pairing", {"since": "2025-03-05", "until": "2025-03-16"}).json()
    assert part["partial_weeks"] == ["2025-W10"]


def test_team_pairing_insight_refuses_a_bad_period(api, ann):
    _assert_refused(api.get("/api/v1/teams/payments/pairing?since=2025-02-01&until=2025-01-01"), 400, "since")
    _assert_refused(api.get("/api/v1/teams/payments/pairing?since=2020-01-01&until=2025-01-01"), 400, "since")
    _assert_refused(api.get("/api/v1/teams/payments/pairing?since=January"), 400, "since")
    assert api.get("/api/v1/teams/nope/pairing").status_code == 404
