"""REST API for review policies: read and edit them, simulate them, override a pull request's verdict."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.api_fields import IdField
from reviews.authentication import TokenUser, led_teams, visible_teams
from reviews.models import Person, Policy, PullRequest, Repository, Team
from reviews.policy import DEFAULT_POLICY, DEFAULT_POLICY_TEXT, Snapshot, SnapshotError, evaluate
from reviews.selectors.policy import effective_policy, pull_request_snapshot
from reviews.services.policies import policy_document_validate, policy_save, pull_request_override


def _validation_error(error: DjangoValidationError, field: str = "document") -> ValidationError:
    return ValidationError({field: error.messages})


def visible_pull_request(request: Request, pk: int) -> PullRequest:
    pull_request = (
        PullRequest.objects.select_related("repository__connection", "repository__team")
        .filter(pk=pk, repository__team__in=visible_teams(request))
        .first()
    )
    if pull_request is None:
        raise NotFound("No such pull request, or not one of your teams'.")
    return pull_request


class PolicyDocumentSerializer(serializers.Serializer):
    document = serializers.CharField(trim_whitespace=False)


class PolicyView(APIView):
    """`GET|PUT /api/v1/teams/<slug>/policy` and `/api/v1/repositories/<id>/policy`.

    GET answers the policy in force, even when it is inherited from the team or the built-in default.
    PUT replaces the document after validating it; errors name the line and the problem.
    """

    def _target(self, request: Request, **kwargs: object) -> tuple[Team | None, Repository | None]:
        teams = visible_teams(request)
        if "slug" in kwargs:
            return get_object_or_404(teams, slug=kwargs["slug"]), None
        return None, get_object_or_404(Repository.objects.filter(team__in=teams), pk=kwargs["pk"])

    def get(self, request: Request, **kwargs: object) -> Response:
        team, repository = self._target(request, **kwargs)
        if repository is not None:
            row, _ = effective_policy(repository=repository)
        else:
            row = Policy.objects.filter(team=team).first()
        return Response(
            {
                "document": row.document if row else DEFAULT_POLICY_TEXT,
                "source": _source(row),
                "updated_at": row.updated_at if row else None,
            }
        )

    def put(self, request: Request, **kwargs: object) -> Response:
        team, repository = self._target(request, **kwargs)
        owning_team = team or (repository.team if repository else None)
        if owning_team is None or not led_teams(request).filter(pk=owning_team.pk).exists():
            raise PermissionDenied("Only the team's leads may change its review policy.")
        serializer = PolicyDocumentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = None if isinstance(request.user, TokenUser) else request.user
        try:
            row = policy_save(
                document=serializer.validated_data["document"], team=team, repository=repository, user=user
            )
        except DjangoValidationError as error:
            raise _validation_error(error) from error
        return Response({"document": row.document, "source": _source(row), "updated_at": row.updated_at})


def _source(row: Policy | None) -> str:
    if row is None:
        return "default"
    return "repository" if row.repository_id else "team"


class SimulateSerializer(serializers.Serializer):
    document = serializers.CharField(required=False, trim_whitespace=False)
    pull_request = IdField(required=False)
    snapshot = serializers.JSONField(required=False)

    def validate(self, attrs: dict) -> dict:
        if ("pull_request" in attrs) == ("snapshot" in attrs):
            raise serializers.ValidationError("Give either a pull_request id or a snapshot.")
        return attrs


class SimulateView(APIView):
    """`POST /api/v1/policies/simulate`: a dry run, no side effects. The document defaults to the policy in force
    for the pull request (or the built-in default for a snapshot)."""

    def post(self, request: Request) -> Response:
        serializer = SimulateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        policy = None
        if "document" in data:
            try:
                policy = policy_document_validate(data["document"])
            except DjangoValidationError as error:
                raise _validation_error(error) from error
        if "pull_request" in data:
            pull_request = visible_pull_request(request, data["pull_request"])
            snapshot = pull_request_snapshot(pull_request=pull_request)
            policy = policy or effective_policy(repository=pull_request.repository)[1]
        else:
            try:
                snapshot = Snapshot.from_dict(data["snapshot"])
            except SnapshotError as error:
                raise ValidationError({"snapshot": [str(error)]}) from error
            policy = policy or DEFAULT_POLICY
        return Response(evaluate(snapshot, policy).to_dict())


class OverrideSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)
    incident_reference = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class OverrideView(APIView):
    """`POST /api/v1/pulls/<id>/override`: break glass, by a person the policy allows (default: team leads)."""

    def post(self, request: Request, pk: int) -> Response:
        pull_request = visible_pull_request(request, pk)
        person = getattr(request.user, "person", None)
        if not isinstance(person, Person):
            raise PermissionDenied("An override is given by a person: sign in; API tokens cannot override.")
        serializer = OverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            override = pull_request_override(pull_request=pull_request, person=person, **serializer.validated_data)
        except DjangoPermissionDenied as error:
            raise PermissionDenied(str(error)) from error
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from error
        return Response(
            {
                "id": override.pk,
                "pull_request": pull_request.pk,
                "by": person.display_name,
                "reason": override.reason,
                "incident_reference": override.incident_reference,
                "created_at": override.created_at,
                "followup_due_at": override.followup_due_at,
                "followup_overdue": override.followup_due_at < timezone.now(),
            },
            status=status.HTTP_201_CREATED,
        )
