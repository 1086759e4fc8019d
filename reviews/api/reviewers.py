"""Reviewer suggestions, knowledge per area, and who is away: `GET /api/v1/pulls/<id>/reviewer-suggestions`,
`GET /api/v1/teams/<slug>/knowledge`,
`PUT /api/v1/people/<id>/away`. Scoped to the caller's teams (`reviews.access`)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import request_access, rows_within, visible_team_ids, visible_teams
from reviews.api.fields import DayField, Pages
from reviews.api.read import SCOPE_PARAMETERS, scope_of
from reviews.models import AuditEvent, Person, PullRequest
from reviews.selectors.familiarity import DEFAULT_AREA_DEPTH
from reviews.selectors.knowledge import (
    AREA_KINDS,
    KNOWLEDGE_DEFINITION,
    MAX_AREA_DEPTH,
    AreaKnowledge,
    team_knowledge,
)
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


class KnowledgeFilters(serializers.Serializer[Any]):
    depth = serializers.IntegerField(
        required=False, default=DEFAULT_AREA_DEPTH, min_value=1, max_value=MAX_AREA_DEPTH, help_text="Directory levels."
    )
    kind = serializers.MultipleChoiceField(choices=AREA_KINDS, required=False, help_text="Only these kinds of area.")
    known_by_one = serializers.BooleanField(required=False, allow_null=True, default=None)


class TeamKnowledgeView(APIView):
    """`GET /api/v1/teams/<slug>/knowledge?days=90&depth=2` (or `since`/`until`, and the team filters; default: the
    last 90 days): per area of the team's repositories (directory prefix, CODEOWNERS entry, service), who authored,
    reviewed or paired on changes there; areas known by one person first, each with whom to pair or review with
    next. Paginated (`page`, `page_size`); `known_by_one=true` keeps only those, `kind=` only some kinds."""

    @extend_schema(parameters=[*SCOPE_PARAMETERS, KnowledgeFilters], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> Response:
        team = get_object_or_404(visible_teams(request), slug=slug)
        scope = scope_of(request, team, default_days=KNOWLEDGE_DEFAULT_DAYS)
        params = request.query_params
        filters = KnowledgeFilters(
            data={
                key: params.getlist(key) if key == "kind" else params.get(key)
                for key in KNOWLEDGE_KEYS
                if key in params
            }
        )
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        knowledge = team_knowledge(scope=scope, depth=data["depth"], kinds=data.get("kind") or AREA_KINDS)
        areas = knowledge.areas
        if data["known_by_one"] is not None:
            areas = [area for area in areas if area.known_by_one is data["known_by_one"]]
        paginator = Pages()
        page = paginator.paginate_queryset(areas, request, view=self) or []
        response = paginator.get_paginated_response([area_json(area) for area in page])
        response.data = {
            "team": team.slug,
            "since": knowledge.since,
            "until": knowledge.until,
            "filters": scope.filter_query(),
            "depth": knowledge.depth,
            "areas": len(knowledge.areas),
            "known_by_one": len(knowledge.lonely),
            "definition": KNOWLEDGE_DEFINITION,
            **response.data,
        }
        return response


KNOWLEDGE_DEFAULT_DAYS = 90
KNOWLEDGE_KEYS = ("depth", "kind", "known_by_one")


def area_json(area: AreaKnowledge) -> dict[str, Any]:
    return {
        "kind": area.area.kind,
        "repository": area.area.repository or None,
        "area": area.area.name,
        "label": area.area.label,
        "changes": area.changes,
        "people": [
            {
                "id": knower.person_id,
                "name": knower.name,
                "changes": knower.changes,
                "authored": knower.authored,
                "reviewed": knower.reviewed,
                "paired": knower.paired,
            }
            for knower in area.people
        ],
        "known_by_one": area.known_by_one,
        "next": {"id": area.next_pair[0], "name": area.next_pair[1]} if area.next_pair else None,
        "suggestion": area.suggestion,
    }


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
