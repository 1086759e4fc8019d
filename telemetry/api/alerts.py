"""`/api/v1/teams/<slug>/alerts`: a team's alerts on its own telemetry, and a lead's acknowledgement.

Scope (`reviews.access`): a caller who does not see the team gets 404, as if it did not exist (another team's lead
too); a member who does not lead it gets 403 on acknowledging; a token of the team leads it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import request_access
from reviews.authentication import TokenUser
from reviews.models import AuditEvent, Person
from reviews.services.audit import actor_for
from telemetry.alert_selectors import alert_json, alerts_evidence, team_alerts
from telemetry.api.lookups import visible_team
from telemetry.models import TeamAlert
from telemetry.services.alerts import AlertRefused, alert_acknowledge

MAX_ALERTS_LISTED = 200


class AlertFilters(serializers.Serializer[Any]):
    state = serializers.ChoiceField(choices=["open", "closed", "all"], default="all")


class TeamAlertsView(APIView):
    """GET: the team's alerts, newest first (state: open / closed / all), each with its figure, baseline, size of the
    change, the days that departed and the pull requests, deployments or incidents behind it."""

    @extend_schema(parameters=[AlertFilters], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        team = visible_team(request, slug)
        filters = AlertFilters(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        state = filters.validated_data["state"]
        alerts = team_alerts(team=team, open_only=state == "open")
        if state == "closed":
            alerts = alerts.exclude(closed_at=None)
        listed = list(alerts[:MAX_ALERTS_LISTED])
        evidence = alerts_evidence(listed)
        return Response({"team": team.slug, "alerts": [alert_json(alert, evidence[alert.pk]) for alert in listed]})


class AlertAcknowledgeView(APIView):
    """POST: a lead of the team (or a token of the team) acknowledges the alert; who and when are recorded.
    Acknowledging it again changes nothing (200 with the alert as it stands)."""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, slug: str, pk: int) -> Response:
        team = visible_team(request, slug)
        alert = TeamAlert.objects.filter(team=team, pk=pk).first()
        if alert is None:
            raise NotFound("No such alert.")
        if not request_access(request).leads(team.pk):
            raise PermissionDenied("Only a lead of the team may acknowledge its alerts.")
        token = request.user.token if isinstance(request.user, TokenUser) else None
        person: Any = None if token is not None else getattr(request.user, "person", None)
        try:
            alert_acknowledge(
                alert=alert,
                person=person if isinstance(person, Person) else None,
                token=token,
                actor=actor_for(request.user, source=AuditEvent.Source.API),
            )
        except AlertRefused as error:
            raise ValidationError({error.field or "non_field_errors": [error.message]}) from error
        alert = team_alerts(team=team).get(pk=pk)
        return Response(alert_json(alert, alerts_evidence([alert])[alert.pk]))
