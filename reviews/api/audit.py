"""`GET /api/v1/audit-events` (people read their teams' events) and `GET /api/v1/teams/<slug>/compliance` (the
team's merged changes with their verdict at merge, paginated)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from reviews.access import rows_within, visible_team_ids, visible_teams
from reviews.api.fields import MomentField, Pages
from reviews.api.read import SCOPE_PARAMETERS, scope_of
from reviews.authentication import TokenUser
from reviews.models import AuditEvent, PullRequest
from reviews.selectors.compliance import compliance_list


class AuditEventSerializer(serializers.ModelSerializer[Any]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(read_only=True, slug_field="slug")
    actor_user = serializers.CharField(source="actor_user.username", read_only=True, default=None)
    actor_person = serializers.CharField(source="actor_person.display_name", read_only=True, default=None)
    actor_token = serializers.CharField(source="actor_token.prefix", read_only=True, default=None)

    class Meta:
        model = AuditEvent
        fields = [
            "id", "at", "source", "action", "team", "actor", "actor_user", "actor_person", "actor_token",
            "target_type", "target_id", "target", "changes", "reason",
        ]  # fmt: skip


class AuditEventFilters(serializers.Serializer[Any]):
    team = serializers.SlugField(required=False)
    actor = serializers.CharField(required=False, help_text="A username, a person's name or a token prefix.")
    action = serializers.CharField(required=False, help_text="e.g. policy.edit, or a prefix such as override.")
    since = MomentField(required=False)
    until = MomentField(required=False)


class AuditEventList(generics.ListAPIView[Any]):
    """Audit events of your teams, newest first. People only: a lead or member reads their teams' events (a
    superuser every event); API tokens are refused."""

    serializer_class = AuditEventSerializer
    pagination_class = Pages
    filter_backends: list[Any] = []

    @extend_schema(parameters=[AuditEventFilters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEvent]:
        request = self.request
        if isinstance(request.user, TokenUser):
            raise PermissionDenied("The audit trail is read by people, not API tokens.")
        filters = AuditEventFilters(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        events = rows_within(
            AuditEvent.objects.select_related("team", "actor_user", "actor_person", "actor_token"),
            visible_team_ids(request),
        )
        if "team" in data:
            events = events.filter(team__slug=data["team"])
        if "actor" in data:
            who = data["actor"]
            events = (
                events.filter(actor_user__username=who)
                | events.filter(actor_person__display_name=who)
                | (events.filter(actor_token__prefix=who))
            )
        if "action" in data:
            action = data["action"]
            events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
        if "since" in data:
            events = events.filter(at__gte=data["since"])
        if "until" in data:
            events = events.filter(at__lt=data["until"])
        return events.order_by("-at", "-pk")


class ComplianceSerializer(serializers.ModelSerializer[Any]):
    repository = serializers.CharField(source="repository.full_path", read_only=True)
    author = serializers.CharField(source="author.display_name", read_only=True, default=None)
    verdict_at_merge = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    reason = serializers.CharField(read_only=True)
    followup = serializers.CharField(read_only=True)
    override_reason = serializers.CharField(read_only=True)

    class Meta:
        model = PullRequest
        fields = [
            "id", "repository", "number", "title", "author", "merged_at", "verdict_at_merge", "status", "reason",
            "followup", "override_reason",
        ]  # fmt: skip


class ComplianceList(generics.ListAPIView[Any]):
    """The team's changes merged in the period (`days`, default 30, or `since`/`until`; and the team filters),
    newest first, with their verdict at merge, status (compliant / overridden / violation / not_evaluated) and
    reason. The counts are in `.../health`."""

    serializer_class = ComplianceSerializer
    pagination_class = Pages
    filter_backends: list[Any] = []

    @extend_schema(parameters=SCOPE_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[PullRequest]:
        team = get_object_or_404(visible_teams(self.request), slug=self.kwargs["slug"])
        scope = scope_of(self.request, team)
        return compliance_list(
            team=team, since=scope.since, until=scope.until, now=timezone.now(), pull_requests=scope.pull_requests()
        )
