"""Read API for the review side: teams, people, repositories, pull requests (with their verdict), reviews,
and each team's review health, scoped to the caller's teams."""

from __future__ import annotations

import dataclasses
from typing import Any

import django_filters
from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import rows_within, visible_team_ids, visible_teams
from reviews.api.fields import IdFilter, MomentFilter
from reviews.models import Identity, Person, PolicyEvaluation, PullRequest, Repository, Review, Team
from reviews.selectors.compliance import ComplianceSummary
from reviews.selectors.scope import MAX_PERIOD_DAYS, SIZE_NAMES, Scope, ScopeInvalid, as_validation_error, parse_scope
from reviews.selectors.teams import team_page


class TeamSerializer(serializers.ModelSerializer[Any]):
    class Meta:
        model = Team
        fields = ["slug", "name", "review_within_hours", "max_pr_size", "archived"]


class IdentitySerializer(serializers.ModelSerializer[Any]):
    class Meta:
        model = Identity
        fields = ["kind", "value"]


class PersonSerializer(serializers.ModelSerializer[Any]):
    identities = IdentitySerializer(many=True, read_only=True)
    teams: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="slug"
    )

    class Meta:
        model = Person
        fields = ["id", "display_name", "is_bot", "identities", "teams"]


class RepositorySerializer(serializers.ModelSerializer[Any]):
    provider = serializers.CharField(source="connection.provider", read_only=True)
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(read_only=True, slug_field="slug")

    class Meta:
        model = Repository
        fields = ["id", "full_path", "provider", "team", "default_branch", "web_url", "synced_until", "is_active"]


class PullRequestSerializer(serializers.ModelSerializer[Any]):
    repository = serializers.CharField(source="repository.full_path", read_only=True)
    author = serializers.CharField(source="author.display_name", read_only=True, default=None)
    verdict = serializers.SerializerMethodField()

    class Meta:
        model = PullRequest
        fields = [
            "id", "repository", "number", "title", "author", "state", "draft", "base_ref", "head_ref", "head_sha",
            "merge_commit_sha", "additions", "deletions", "changed_files", "labels", "web_url", "created_at",
            "updated_at", "ready_at", "merged_at", "closed_at", "verdict",
        ]  # fmt: skip

    def get_verdict(self, pull_request: PullRequest) -> dict[str, Any] | None:
        if getattr(pull_request, "verdict_outcome", None) is None:
            return None
        return {
            "outcome": pull_request.verdict_outcome,  # type: ignore[attr-defined]
            "description": pull_request.verdict_description,  # type: ignore[attr-defined]
            "head_sha": pull_request.verdict_head_sha,  # type: ignore[attr-defined]
            "evaluated_at": pull_request.verdict_at,  # type: ignore[attr-defined]
        }


class ReviewSerializer(serializers.ModelSerializer[Any]):
    reviewer = serializers.CharField(source="reviewer.display_name", read_only=True, default=None)

    class Meta:
        model = Review
        fields = ["id", "pull_request", "reviewer", "state", "commit_sha", "comment_count", "submitted_at"]


def _with_verdict(queryset: QuerySet[PullRequest]) -> QuerySet[PullRequest]:
    """The latest evaluation's figures as columns: one query for the whole page, not one per row."""
    latest = PolicyEvaluation.objects.filter(pull_request=OuterRef("pk")).order_by("-evaluated_at", "-pk")
    return queryset.annotate(
        verdict_outcome=Subquery(latest.values("outcome")[:1]),
        verdict_description=Subquery(latest.values("description")[:1]),
        verdict_head_sha=Subquery(latest.values("head_sha")[:1]),
        verdict_at=Subquery(latest.values("evaluated_at")[:1]),
    )


class PullRequestFilter(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="repository__team__slug")
    repository = IdFilter(field_name="repository_id")
    author = IdFilter(field_name="author_id")
    merged_after = MomentFilter(field_name="merged_at", lookup_expr="gte")
    merged_before = MomentFilter(field_name="merged_at", lookup_expr="lt")
    updated_after = MomentFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = PullRequest
        fields = ["state", "draft", "team", "repository", "author", "merged_after", "merged_before", "updated_after"]


class TeamList(generics.ListAPIView[Any]):
    """Teams you see; archived teams are left out unless `?archived=true`."""

    serializer_class = TeamSerializer

    def get_queryset(self) -> QuerySet[Team]:
        archived = self.request.query_params.get("archived") == "true"
        return visible_teams(self.request).filter(archived=archived).order_by("slug")


class TeamDetail(generics.RetrieveAPIView[Any]):
    serializer_class = TeamSerializer
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Team]:
        return visible_teams(self.request)


class PersonList(generics.ListAPIView[Any]):
    serializer_class = PersonSerializer
    filterset_fields = ["is_bot"]

    def get_queryset(self) -> QuerySet[Person]:
        return (
            rows_within(Person.objects.all(), visible_team_ids(self.request))
            .prefetch_related("identities", "teams")
            .order_by("display_name", "pk")
        )


class RepositoryList(generics.ListAPIView[Any]):
    serializer_class = RepositorySerializer

    def get_queryset(self) -> QuerySet[Repository]:
        return (
            rows_within(Repository.objects.all(), visible_team_ids(self.request))
            .select_related("connection", "team")
            .order_by("full_path")
        )


class PullRequestList(generics.ListAPIView[Any]):
    serializer_class = PullRequestSerializer
    filterset_class = PullRequestFilter

    def get_queryset(self) -> QuerySet[PullRequest]:
        visible = rows_within(PullRequest.objects.all(), visible_team_ids(self.request))
        return _with_verdict(visible.select_related("repository", "author")).order_by("-updated_at", "-pk")


class PullRequestDetail(generics.RetrieveAPIView[Any]):
    serializer_class = PullRequestSerializer

    def get_queryset(self) -> QuerySet[PullRequest]:
        visible = rows_within(PullRequest.objects.all(), visible_team_ids(self.request))
        return _with_verdict(visible.select_related("repository", "author"))


class ReviewFilter(django_filters.FilterSet):
    pull_request = IdFilter(field_name="pull_request_id")

    class Meta:
        model = Review
        fields = ["state", "pull_request"]


class ReviewList(generics.ListAPIView[Any]):
    serializer_class = ReviewSerializer
    filterset_class = ReviewFilter

    def get_queryset(self) -> QuerySet[Review]:
        return (
            rows_within(Review.objects.all(), visible_team_ids(self.request))
            .select_related("reviewer")
            .order_by("-submitted_at", "-pk")
        )


# The period and filters every team figure takes (`reviews.selectors.scope`: one parser for pages and API).
SCOPE_PARAMETERS = [
    OpenApiParameter("days", int, description=f"The last N days, today included (1 to {MAX_PERIOD_DAYS})."),
    OpenApiParameter("since", str, description="First day (YYYY-MM-DD, included) or moment (ISO 8601)."),
    OpenApiParameter("until", str, description="Last day (YYYY-MM-DD, included) or moment (excluded)."),
    OpenApiParameter("repository", int, many=True, description="Only these repositories (ids) of the team."),
    OpenApiParameter("author", int, many=True, description="Only pull requests by these people (ids)."),
    OpenApiParameter("author_team", str, description="Only authors who belong to this team (slug)."),
    OpenApiParameter("label", str, many=True, description="Only pull requests with any of these labels."),
    OpenApiParameter("size", str, enum=list(SIZE_NAMES), description="Only this size bucket."),
]


def scope_of(request: Request, team: Team, *, default_days: int = 30) -> Scope:
    """The request's period and filters, or a 400 naming the field."""
    try:
        return parse_scope(request.query_params, team=team, teams=visible_teams(request), default_days=default_days)
    except ScopeInvalid as error:
        raise as_validation_error(error) from None


class TeamHealth(APIView):
    """`GET /api/v1/teams/<slug>/health?days=30` (or `since`/`until`, and filters): the team page's figures."""

    @extend_schema(
        parameters=SCOPE_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, slug: str) -> Response:
        team = get_object_or_404(visible_teams(request), slug=slug)
        scope = scope_of(request, team)
        page = team_page(scope=scope)
        return Response(
            {
                "team": team.slug,
                "since": page.since,
                "until": page.until,
                "filters": scope.filter_query(),
                "current": _health(page.health),
                "previous": _health(page.previous),
                "working_agreements": dataclasses.asdict(page.agreements),
                "waiting_for_review": [pr.pk for pr in page.waiting],
                "stale": [pr.pk for pr in page.stale],
                "compliance": compliance_json(page.compliance),
                "pairing": {
                    "pairs": [
                        {"people": [str(p) for p in pair.people], "hours": pair.hours, "sessions": pair.sessions}
                        for pair in page.pairing.pairs
                        if pair.sessions
                    ],
                    "not_paired": [str(person) for person in page.pairing.not_paired],
                    "suggested_pairs": [[str(a), str(b)] for a, b in page.pairing.suggested_pairs],
                },
            }
        )


def compliance_json(summary: ComplianceSummary) -> dict[str, Any]:
    return {**dataclasses.asdict(summary), "compliant_share": summary.compliant_share}


def _health(health) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    data = {key: value for key, value in vars(health).items() if key not in {"flows", "since", "until"}}
    for key, value in data.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            data[key] = dataclasses.asdict(value)
    data["reviewer_load"] = [dataclasses.asdict(load) for load in health.reviewer_load]
    data["coverage_share"] = health.coverage_share
    data["rubber_stamp_share"] = health.rubber_stamp_share
    data["bus_factor_warning"] = health.bus_factor_warning
    data["weekly"] = [{**week, "week": week["week"].isoformat()} for week in health.weekly]
    return data
