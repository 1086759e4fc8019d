"""Pairing API (`/api/v1/`): sessions, each person's active session, and a team's pairing insight.

People are named by Tandem person id or by identity: `github:login`, `gitlab:username`, an e-mail address.
Scope: callers see sessions with at least one participant in their teams, and act only on sessions whose
participants all belong to their teams (403 otherwise). Refusals answer {"error": ..., "fields": {...}}:
400 for bad input, 409 when the session's state forbids it (already ended, client id taken).

Every write can be retried safely (RETRIES below, also in the OpenAPI description): a repeated start with the same
`client_id`, join, leave or end answers 200 with the session as it is, and writes nothing more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import visible_team_ids, visible_teams
from reviews.api.fields import ID_MAX, DayField, IdField, MomentField, id_from_text
from reviews.models import PairingParticipant, PairingSession, Person
from reviews.selectors.pairing import (
    PairingInsight,
    pairing_session_active_for,
    pairing_session_driver,
    pairing_session_get,
    pairing_session_list,
    pairing_session_participants,
    people_by_reference,
    person_visible,
    team_pairing_insight,
)
from reviews.selectors.scope import ScopeInvalid, as_validation_error, parse_period
from reviews.services.pairing import (
    PairingConflict,
    PairingError,
    PairingForbidden,
    pairing_participant_add,
    pairing_participant_remove,
    pairing_session_driver_switch,
    pairing_session_end,
    pairing_session_start,
)

DEFAULT_INSIGHT_DAYS = 28


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the session's state."
    default_code = "conflict"


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn a service's refusal into the API's error shape."""
    try:
        yield
    except PairingForbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except PairingError as exc:
        detail = {"non_field_errors": [exc.message], **({exc.field: [exc.message]} if exc.field else {})}
        raise (Conflict(detail) if isinstance(exc, PairingConflict) else ValidationError(detail)) from exc


def _visible_session(pk: int, team_ids: Collection[int] | None) -> PairingSession:
    session = pairing_session_get(session_id=pk, team_ids=team_ids)
    if session is None:
        raise NotFound("No such pairing session.")
    return session


RETRIES = (
    "Retries are safe: a start repeated with the same `client_id` answers 200 with the session the first start "
    "created (201), whatever happened to it since; the same `client_id` naming someone who never took part in it is "
    "409. Joining when already present, leaving when already gone, and ending an ended session (with no `ended_at`, "
    "or the same one) change nothing and answer 200 with the session as it is; ending it at another time is 409."
)


# Input -------------------------------------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "example": "github:octocat"}]})
class PersonReferenceField(serializers.Field[Any, Any, Any, Any]):
    default_error_messages = {
        "invalid": "A person is a Tandem person id, or an identity: github:login, gitlab:username or an e-mail."
    }

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, int) and not isinstance(data, bool):
            if not 1 <= data <= ID_MAX:
                self.fail("invalid")
            return data
        if isinstance(data, str) and data.strip():
            text = data.strip()
            if text.isdigit() and id_from_text(text) is None:
                self.fail("invalid")  # "²", or an id out of range
            return text
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class ParticipantInput(serializers.Serializer[Any]):
    person = PersonReferenceField()
    role = serializers.ChoiceField(choices=PairingParticipant.Role.choices, default=PairingParticipant.Role.NAVIGATOR)


class SessionStartInput(serializers.Serializer[Any]):
    participants = ParticipantInput(many=True)
    client_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    repository = IdField(required=False, allow_null=True, default=None)
    branch = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    started_at = MomentField(required=False, allow_null=True, default=None)


class SessionListFilters(serializers.Serializer[Any]):
    person = PersonReferenceField(required=False)
    team = serializers.SlugField(required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)
    repository = IdField(required=False)
    started_after = MomentField(required=False)
    started_before = MomentField(required=False)


class DriverInput(serializers.Serializer[Any]):
    person = PersonReferenceField()


class ParticipantRemoveInput(serializers.Serializer[Any]):
    driver = PersonReferenceField(required=False, allow_null=True, default=None)


class SessionEndInput(serializers.Serializer[Any]):
    ended_at = MomentField(required=False, allow_null=True, default=None)


class InsightPeriod(serializers.Serializer[Any]):
    """The period, as every team figure takes it (`reviews.selectors.scope.parse_period`)."""

    days = serializers.IntegerField(required=False, help_text="The last N days, today included.")
    since = DayField(required=False)
    until = DayField(required=False)


def _insight_period(request: Request) -> dict[str, dt.date]:
    try:
        period = parse_period(request.query_params, default_days=DEFAULT_INSIGHT_DAYS)
    except ScopeInvalid as error:
        raise as_validation_error(error) from None
    return {"since": period.first_day, "until": period.last_day}


def _parse(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _query(request: Request) -> dict[str, str]:
    # A plain dict: DRF reads a missing boolean in form-encoded input as False, not "not given".
    return request.query_params.dict()


# Output ------------------------------------------------------------------------------------------------------------


class PersonOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    display_name = serializers.CharField()


class RepositoryOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    full_path = serializers.CharField()


class StayOutput(serializers.Serializer[Any]):
    joined_at = serializers.DateTimeField()
    left_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: Any) -> Any:
        joined_at, left_at = instance
        return super().to_representation({"joined_at": joined_at, "left_at": left_at})


class ParticipantOutput(serializers.Serializer[Any]):
    person = PersonOutput()
    role = serializers.CharField()
    joined_at = serializers.DateTimeField(help_text="When they first joined.")
    left_at = serializers.DateTimeField(allow_null=True, help_text="When they last left; null while present.")
    present = serializers.BooleanField()
    stays = StayOutput(many=True, help_text="Each stay: someone who left and came back was not there in between.")


class SessionOutput(serializers.Serializer[Any]):
    """A session; its participations must be prefetched (`pairing_session_get` / `pairing_session_list`)."""

    id = serializers.IntegerField(source="pk")
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    client_id = serializers.SerializerMethodField()
    repository = RepositoryOutput(allow_null=True)
    branch = serializers.CharField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    active = serializers.SerializerMethodField()
    driver = serializers.SerializerMethodField(help_text="The person id of who drives (drove last, once ended).")
    participants = serializers.SerializerMethodField()

    def get_client_id(self, session: PairingSession) -> str:
        return session.external_id if session.source == PairingSession.Source.API else ""

    def get_active(self, session: PairingSession) -> bool:
        return session.ended_at is None

    def get_driver(self, session: PairingSession) -> int | None:
        driver = pairing_session_driver(session)
        return driver.person_id if driver else None

    @extend_schema_field(ParticipantOutput(many=True))
    def get_participants(self, session: PairingSession) -> list[dict[str, Any]]:
        return list(ParticipantOutput(pairing_session_participants(session), many=True).data)


@extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
class PairField(serializers.Field[Any, Any, Any, Any]):
    """A pair of people, as their ids."""

    def to_representation(self, value: tuple[Person, ...]) -> list[int]:
        return [person.pk for person in value]


class PairOutput(serializers.Serializer[Any]):
    people = PairField()
    hours = serializers.FloatField()
    sessions = serializers.IntegerField()
    last_paired_on = serializers.DateField(allow_null=True)


class PersonHoursOutput(serializers.Serializer[Any]):
    person = serializers.IntegerField(source="person.pk")
    total_hours = serializers.FloatField()
    weeks = serializers.DictField(child=serializers.FloatField(), source="weekly_hours")


class RotationOutput(serializers.Serializer[Any]):
    people = PairField()
    last_paired_at = serializers.DateTimeField(allow_null=True)


class InsightOutput(serializers.Serializer[Any]):
    team = serializers.CharField(source="team.slug")
    since = serializers.DateField()
    until = serializers.DateField()
    members = PersonOutput(many=True)
    pairs = PairOutput(many=True, help_text="Every pair of members, most hours first.")
    weeks = serializers.ListField(child=serializers.CharField(), help_text="ISO weeks of the period.")
    partial_weeks = serializers.ListField(
        child=serializers.CharField(), help_text="The weeks the period covers only in part (its first, its last)."
    )
    hours_per_person = PersonHoursOutput(many=True, source="hours")
    not_paired = serializers.SerializerMethodField()
    rotation = RotationOutput(many=True, help_text="Never paired first, then least recently paired.")
    suggested_pairs = serializers.ListField(child=PairField(), help_text="A next rotation: nobody twice.")

    def get_not_paired(self, insight: PairingInsight) -> list[int]:
        return [person.pk for person in insight.not_paired]


def _rendered(session: PairingSession, *, status_code: int = status.HTTP_200_OK) -> Response:
    fresh = pairing_session_get(session_id=session.pk, team_ids=None)
    return Response(SessionOutput(fresh or session).data, status=status_code)


# Views -------------------------------------------------------------------------------------------------------------


class PairingSessionsView(GenericAPIView[Any]):
    """GET: visible sessions, newest first, filtered and paginated. POST: start a session."""

    serializer_class = SessionOutput
    queryset = PairingSession.objects.none()  # for the schema: the list comes from the selector

    @extend_schema(parameters=[SessionListFilters], responses=SessionOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = _parse(SessionListFilters, _query(request))
        person = None
        if "person" in filters:
            resolved = people_by_reference(references=[filters["person"]])[0]
            if resolved.person is None:
                raise ValidationError({"non_field_errors": [resolved.problem], "person": [resolved.problem]})
            person = resolved.person
        sessions = pairing_session_list(
            team_ids=visible_team_ids(request),
            person=person,
            team_slug=filters.get("team", ""),
            active=filters.get("active"),
            repository_id=filters.get("repository"),
            started_after=filters.get("started_after"),
            started_before=filters.get("started_before"),
        )
        page = self.paginate_queryset(sessions)
        return self.get_paginated_response(SessionOutput(page or [], many=True).data)

    @extend_schema(
        request=SessionStartInput,
        responses={
            201: OpenApiResponse(SessionOutput, description="Started."),
            200: OpenApiResponse(SessionOutput, description="A retry with the same client_id: the session as it is."),
        },
        description=RETRIES,
    )
    def post(self, request: Request) -> Response:
        data = _parse(SessionStartInput, request.data)
        with _refusals():
            session, created = pairing_session_start(
                participants=[(p["person"], p["role"]) for p in data["participants"]],
                client_id=data["client_id"],
                repository_id=data["repository"],
                branch=data["branch"],
                started_at=data["started_at"],
                team_ids=visible_team_ids(request),
            )
        return _rendered(session, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PairingSessionView(APIView):
    @extend_schema(responses=SessionOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(SessionOutput(_visible_session(pk, visible_team_ids(request))).data)


class PairingSessionDriverView(APIView):
    """POST {"person": ...}: that participant drives from now on."""

    @extend_schema(request=DriverInput, responses=SessionOutput)
    def post(self, request: Request, pk: int) -> Response:
        data = _parse(DriverInput, request.data)
        team_ids = visible_team_ids(request)
        session = _visible_session(pk, team_ids)
        with _refusals():
            pairing_session_driver_switch(session=session, person=data["person"], team_ids=team_ids)
        return _rendered(session)


class PairingSessionParticipantsView(APIView):
    """POST {"person": ..., "role": "navigator"|"driver"}: someone joins. Someone present already: 200, unchanged."""

    @extend_schema(request=ParticipantInput, responses=SessionOutput, description=RETRIES)
    def post(self, request: Request, pk: int) -> Response:
        data = _parse(ParticipantInput, request.data)
        team_ids = visible_team_ids(request)
        session = _visible_session(pk, team_ids)
        with _refusals():
            pairing_participant_add(session=session, person=data["person"], role=data["role"], team_ids=team_ids)
        return _rendered(session)


class PairingSessionParticipantView(APIView):
    """DELETE (?driver=<who drives next, when the driver leaves>): someone leaves. Below two people the session
    ends. Someone who has left already (or was there when it ended): 200, unchanged."""

    @extend_schema(
        parameters=[OpenApiParameter("driver", str, description="Who drives next, when the driver leaves.")],
        responses=SessionOutput,
        description=RETRIES,
    )
    def delete(self, request: Request, pk: int, person: str) -> Response:
        data = _parse(ParticipantRemoveInput, _query(request))
        team_ids = visible_team_ids(request)
        session = _visible_session(pk, team_ids)
        with _refusals():
            pairing_participant_remove(session=session, person=person, driver=data["driver"], team_ids=team_ids)
        return _rendered(session)


class PairingSessionEndView(APIView):
    """POST {"ended_at": optional, default now}. Ended already: 200 unchanged, or 409 when ended at another time."""

    @extend_schema(request=SessionEndInput, responses=SessionOutput, description=RETRIES)
    def post(self, request: Request, pk: int) -> Response:
        data = _parse(SessionEndInput, request.data)
        team_ids = visible_team_ids(request)
        session = _visible_session(pk, team_ids)
        with _refusals():
            pairing_session_end(session=session, ended_at=data["ended_at"], team_ids=team_ids)
        return _rendered(session)


class PersonActiveSessionView(APIView):
    """The session the person is in now: 200, or 404 when there is none (or no such person in your teams)."""

    @extend_schema(responses=SessionOutput)
    def get(self, request: Request, pk: int) -> Response:
        person = person_visible(person_id=pk, team_ids=visible_team_ids(request))
        if person is None:
            raise NotFound("No such person.")
        session = pairing_session_active_for(person=person)
        if session is None:
            raise NotFound("This person is not pairing now.")
        return Response(SessionOutput(session).data)


class TeamPairingView(APIView):
    """GET ?since=YYYY-MM-DD&until=YYYY-MM-DD (default: the last four weeks): the team's pairing insight."""

    @extend_schema(parameters=[InsightPeriod], responses=InsightOutput)
    def get(self, request: Request, slug: str) -> Response:
        period = _insight_period(request)
        team = visible_teams(request).filter(slug=slug).first()
        if team is None:
            raise NotFound("No such team.")
        return Response(InsightOutput(team_pairing_insight(team=team, **period)).data)


urlpatterns = [
    path("pairing-sessions", PairingSessionsView.as_view(), name="pairing-sessions"),
    path("pairing-sessions/<int:pk>", PairingSessionView.as_view(), name="pairing-session"),
    path("pairing-sessions/<int:pk>/driver", PairingSessionDriverView.as_view(), name="pairing-session-driver"),
    path(
        "pairing-sessions/<int:pk>/participants",
        PairingSessionParticipantsView.as_view(),
        name="pairing-session-participants",
    ),
    path(
        "pairing-sessions/<int:pk>/participants/<str:person>",
        PairingSessionParticipantView.as_view(),
        name="pairing-session-participant",
    ),
    path("pairing-sessions/<int:pk>/end", PairingSessionEndView.as_view(), name="pairing-session-end"),
    path("people/<int:pk>/active-session", PersonActiveSessionView.as_view(), name="person-active-session"),
    path("teams/<slug:slug>/pairing", TeamPairingView.as_view(), name="team-pairing"),
]
