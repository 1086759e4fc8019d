"""Reviewer suggestions, knowledge per area, and who is away: `GET /api/v1/pulls/<id>/reviewer-suggestions`,
`GET /api/v1/teams/<slug>/areas`, `PUT /api/v1/people/<id>/away`. Scoped to the caller's teams (`reviews.access`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import request_access, rows_within, visible_team_ids, visible_teams
from reviews.api.fields import DayField
from reviews.models import AuditEvent, Person, PullRequest
from reviews.selectors.familiarity import DEFAULT_AREA_DEPTH, AreaKnowledge, team_areas
from reviews.services.audit import actor_for
from reviews.services.people import person_away_set
from reviews.services.reviewers import reviewer_suggestion_current


class ReviewerSuggestionsView(APIView):
    """`GET /api/v1/pulls/<id>/reviewer-suggestions`: whom Tandem suggests for the current head, with the reasons in
    words, and whom it requested. `state: pending` until they are worked out (a task does it after each sync)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        visible = rows_within(PullRequest.objects.all(), visible_team_ids(request))
        pull_request = get_object_or_404(visible, pk=pk)
        return Response(suggestions_json(pull_request))


def suggestions_json(pull_request: PullRequest) -> dict[str, Any]:
    suggestion = reviewer_suggestion_current(pull_request=pull_request)
    if suggestion is None:
        return {
            "pull_request": pull_request.pk,
            "head_sha": pull_request.head_sha,
            "state": "pending",
            "reason": "not worked out yet for this head",
            "suggestions": [],
        }
    return {
        "pull_request": pull_request.pk,
        "head_sha": suggestion.head_sha,
        "state": "ready",
        "computed_at": suggestion.computed_at,
        "areas": suggestion.areas,
        "suggestions": suggestion.suggestions,
        "requested": suggestion.requested,
        "requested_at": suggestion.requested_at,
        "request_error": suggestion.request_error,
    }


class AreasPeriod(serializers.Serializer[Any]):
    days = serializers.IntegerField(required=False, default=90, min_value=1, max_value=366)
    depth = serializers.IntegerField(required=False, default=DEFAULT_AREA_DEPTH, min_value=1, max_value=6)


class TeamAreasView(APIView):
    """`GET /api/v1/teams/<slug>/areas?days=90&depth=2`: per directory prefix of the team's repositories, who
    authored, reviewed or paired on changes there; areas known by one person flagged, with whom to pair next."""

    @extend_schema(parameters=[AreasPeriod], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> Response:
        team = get_object_or_404(visible_teams(request), slug=slug)
        period = AreasPeriod(data=request.query_params.dict())
        period.is_valid(raise_exception=True)
        until = timezone.now()
        since = until - dt.timedelta(days=period.validated_data["days"])
        areas = team_areas(team_id=team.pk, since=since, until=until, depth=period.validated_data["depth"])
        return Response(
            {
                "team": team.slug,
                "since": since,
                "until": until,
                "depth": period.validated_data["depth"],
                "areas": [area_json(area) for area in areas],
                "known_by_one": sum(1 for area in areas if area.known_by_one),
            }
        )


def area_json(area: AreaKnowledge) -> dict[str, Any]:
    return {
        "repository": area.repository,
        "area": area.area,
        "changes": area.changes,
        "people": [{"id": pk, "name": name, "changes": changes} for pk, name, changes in area.people],
        "known_by_one": area.known_by_one,
        "next": {"id": area.next_pair[0], "name": area.next_pair[1]} if area.next_pair else None,
        "suggestion": _suggestion_words(area),
    }


def _suggestion_words(area: AreaKnowledge) -> str:
    if not area.known_by_one:
        return ""
    who = area.people[0][1]
    if area.next_pair is None:
        return f"only {who} knows {area.label}: nobody else in the team is available to pair"
    return f"only {who} knows {area.label}: pair or review with {area.next_pair[1]} next"


class AwaySerializer(serializers.Serializer[Any]):
    away_until = DayField(allow_null=True, help_text="The last day away; null: back.")


class PersonAwayView(APIView):
    """`PUT /api/v1/people/<id>/away` `{"away_until": "2025-07-31"}` (or null): a lead of one of the person's teams
    marks them away; away people are never suggested as reviewers. Audited."""

    @extend_schema(request=AwaySerializer, responses={200: OpenApiTypes.OBJECT})
    def put(self, request: Request, pk: int) -> Response:
        person = get_object_or_404(rows_within(Person.objects.all(), visible_team_ids(request)), pk=pk)
        access = request_access(request)
        teams = list(person.memberships.values_list("team_id", flat=True))
        if not any(access.leads(team_id) for team_id in teams):
            raise PermissionDenied("Only a lead of one of this person's teams may mark them away.")
        serializer = AwaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        person_away_set(
            person=person,
            away_until=serializer.validated_data["away_until"],
            actor=actor_for(request.user, source=AuditEvent.Source.API),
        )
        return Response({"id": person.pk, "away_until": person.away_until})
