"""`GET /api/v1/evidence?team=…&since=…&until=…&format=csv|json`: the change-management evidence of a team's
period, streamed. For the team's members and leads and the team's own API tokens only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from reviews.access import visible_teams
from reviews.api.fields import MomentField
from reviews.models import Team
from telemetry.evidence import evidence_changes, evidence_csv, evidence_json

MAX_PERIOD = dt.timedelta(days=731)


class EvidenceInput(serializers.Serializer[Any]):
    team = serializers.SlugField()
    since = MomentField(help_text="A date or date-time; included.")
    until = MomentField(help_text="A date or date-time; excluded.")
    format = serializers.ChoiceField(choices=["csv", "json"], default="csv")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["until"] <= attrs["since"]:
            raise serializers.ValidationError("until must be after since.")
        if attrs["until"] - attrs["since"] > MAX_PERIOD:
            raise serializers.ValidationError("A period of at most two years, please.")
        return attrs


def evidence_team(request: Request, slug: str) -> Team:
    """The team, when the caller sees it (`reviews.access`: a member or lead, one of its tokens, a superuser);
    otherwise 404."""
    team = visible_teams(request).filter(slug=slug).first()
    if team is None:
        raise NotFound("No such team, or you are not one of its members.")
    return team


class EvidenceView(APIView):
    """Every change the team merged to a default branch in [since, until): approvals (who, when, on which head),
    the verdict at merge and its trace, overrides with reason and follow-up, pairing credit used, deployments.
    The last line is the SHA-256 of every byte before it."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # `format` chooses the export, not a DRF renderer; errors answer JSON.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(parameters=[EvidenceInput], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request) -> StreamingHttpResponse:
        serializer = EvidenceInput(data=request.query_params.dict())
        if not serializer.is_valid():
            raise ValidationError(serializer.errors)
        data = serializer.validated_data
        team = evidence_team(request, data["team"])
        header = {
            "team": team.slug,
            "since": data["since"].isoformat(),
            "until": data["until"].isoformat(),
            "generated_at": timezone.now().isoformat(),
            "generated_by": str(request.user),
        }
        rows = evidence_changes(team=team, since=data["since"], until=data["until"])
        render, content_type = (
            (evidence_csv, "text/csv") if data["format"] == "csv" else (evidence_json, "application/json")
        )
        response = StreamingHttpResponse(render(rows, header=header), content_type=f"{content_type}; charset=utf-8")
        name = f"evidence-{team.slug}-{data['since']:%Y%m%d}-{data['until']:%Y%m%d}.{data['format']}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
