"""REST API for review policies: read and edit them, simulate them, override a pull request's verdict."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import person_access, request_access, rows_within, visible_team_ids, visible_teams
from reviews.api.fields import IdField
from reviews.authentication import TokenUser
from reviews.models import (
    AuditEvent,
    Override,
    Person,
    Policy,
    PolicyVersion,
    PullRequest,
    Repository,
    Review,
    Team,
)
from reviews.policy import DEFAULT_POLICY, DEFAULT_POLICY_TEXT, Snapshot, SnapshotError, evaluate
from reviews.selectors.policy import effective_policy, pull_request_snapshot
from reviews.selectors.policy_history import policy_history
from reviews.services.audit import Actor, actor_for
from reviews.services.policies import (
    override_followup_complete,
    override_withdraw,
    policy_document_validate,
    policy_save,
    policy_version_restore,
    pull_request_override,
)


def _validation_error(error: DjangoValidationError, field: str = "document") -> ValidationError:
    return ValidationError({field: error.messages})


def visible_pull_request(request: Request, pk: int) -> PullRequest:
    pull_requests = PullRequest.objects.select_related("repository__connection", "repository__team")
    pull_request = rows_within(pull_requests, visible_team_ids(request)).filter(pk=pk).first()
    if pull_request is None:
        raise NotFound("No such pull request, or not one of your teams'.")
    return pull_request


class PolicyDocumentSerializer(serializers.Serializer[Any]):
    document = serializers.CharField(trim_whitespace=False)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


def _api_actor(request: Request) -> Actor:
    return actor_for(request.user, source=AuditEvent.Source.API)


def _refuse_for_lead(request: Request, team: Team | None, what: str) -> None:
    if team is None or not request_access(request).leads(team.pk):
        raise PermissionDenied(f"Only the team's leads may {what}.")


class PolicyView(APIView):
    """`GET|PUT /api/v1/teams/<slug>/policy` and `/api/v1/repositories/<id>/policy`.

    GET answers the policy in force, even when it is inherited from the team or the built-in default.
    PUT replaces the document after validating it; errors name the line and the problem.
    """

    def _target(self, request: Request, **kwargs: object) -> tuple[Team | None, Repository | None]:
        return policy_target(request, **kwargs)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
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

    @extend_schema(request=PolicyDocumentSerializer, responses={200: OpenApiTypes.OBJECT})
    def put(self, request: Request, **kwargs: object) -> Response:
        team, repository = self._target(request, **kwargs)
        _refuse_for_lead(request, team or (repository.team if repository else None), "change its review policy")
        serializer = PolicyDocumentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            row = policy_save(
                document=serializer.validated_data["document"],
                team=team,
                repository=repository,
                actor=_api_actor(request),
                reason=serializer.validated_data["reason"],
            )
        except DjangoValidationError as error:
            raise _validation_error(error) from error
        return Response({"document": row.document, "source": _source(row), "updated_at": row.updated_at})


def policy_target(request: Request, **kwargs: object) -> tuple[Team | None, Repository | None]:
    teams = visible_teams(request)
    if "slug" in kwargs:
        return get_object_or_404(teams, slug=kwargs["slug"]), None
    return None, get_object_or_404(rows_within(Repository.objects.all(), visible_team_ids(request)), pk=kwargs["pk"])


class PolicyVersionsView(APIView):
    """`GET .../policy/versions`: every version of the policy, newest first, each with its author, reason and the
    diff from the version before it."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, **kwargs: object) -> Response:
        team, repository = policy_target(request, **kwargs)
        return Response({"versions": policy_history(team=team, repository=repository)})


class RestoreSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class PolicyRestoreView(APIView):
    """`POST .../policy/versions/<number>/restore`: a lead brings an earlier version back, as a new version."""

    @extend_schema(request=RestoreSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, number: int, **kwargs: object) -> Response:
        team, repository = policy_target(request, **kwargs)
        _refuse_for_lead(request, team or (repository.team if repository else None), "restore its review policy")
        version = get_object_or_404(
            PolicyVersion.objects.filter(policy__team=team, policy__repository=repository), number=number
        )
        serializer = RestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = policy_version_restore(version=version, actor=_api_actor(request), **serializer.validated_data)
        return Response(
            {"document": row.document, "source": _source(row), "updated_at": row.updated_at},
            status=status.HTTP_201_CREATED,
        )


def _source(row: Policy | None) -> str:
    if row is None:
        return "default"
    return "repository" if row.repository_id else "team"


class SimulateSerializer(serializers.Serializer[Any]):
    document = serializers.CharField(required=False, trim_whitespace=False)
    pull_request = IdField(required=False)
    snapshot = serializers.JSONField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("pull_request" in attrs) == ("snapshot" in attrs):
            raise serializers.ValidationError("Give either a pull_request id or a snapshot.")
        return attrs


class SimulateView(APIView):
    """`POST /api/v1/policies/simulate`: a dry run, no side effects. The document defaults to the policy in force
    for the pull request (or the built-in default for a snapshot)."""

    @extend_schema(request=SimulateSerializer, responses={200: OpenApiTypes.OBJECT})
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


class OverrideSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=2000)
    incident_reference = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class OverrideView(APIView):
    """`POST /api/v1/pulls/<id>/override`: break glass, by a person the policy allows (default: team leads)."""

    @extend_schema(request=OverrideSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        pull_request = visible_pull_request(request, pk)
        person = getattr(request.user, "person", None)
        if not isinstance(person, Person):
            raise PermissionDenied("An override is given by a person: sign in; API tokens cannot override.")
        serializer = OverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            override = pull_request_override(
                pull_request=pull_request, person=person, actor=_api_actor(request), **serializer.validated_data
            )
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


def _visible_override(request: Request, pk: int) -> Override:
    override = (
        Override.objects.select_related("pull_request__repository__team", "overridden_by")
        .filter(pk=pk, pull_request__repository__team__in=visible_teams(request))
        .first()
    )
    if override is None:
        raise NotFound("No such override, or not one of your teams'.")
    return override


def _acting_person(request: Request, what: str) -> Person:
    person = None if isinstance(request.user, TokenUser) else getattr(request.user, "person", None)
    if not isinstance(person, Person):
        raise PermissionDenied(f"{what} is done by a person: sign in; API tokens cannot.")
    return person


@contextmanager
def _service_refusals() -> Iterator[None]:
    try:
        yield
    except DjangoPermissionDenied as error:
        raise PermissionDenied(str(error)) from error
    except DjangoValidationError as error:
        raise ValidationError(error.message_dict if hasattr(error, "error_dict") else error.messages) from error


class WithdrawSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=2000)


class OverrideWithdrawView(APIView):
    """`POST /api/v1/overrides/<id>/withdraw`: correct an override with a new record; the verdict is evaluated
    again. By the person who gave it, or anyone the policy allows to override that pull request."""

    @extend_schema(request=WithdrawSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        override = _visible_override(request, pk)
        person = _acting_person(request, "Withdrawing an override")
        serializer = WithdrawSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with _service_refusals():
            withdrawal = override_withdraw(
                override=override, person=person, actor=_api_actor(request), **serializer.validated_data
            )
        return Response(
            {
                "override": override.pk,
                "withdrawn_by": person.display_name,
                "reason": withdrawal.reason,
                "created_at": withdrawal.created_at,
            },
            status=status.HTTP_201_CREATED,
        )


class FollowUpSerializer(serializers.Serializer[Any]):
    note = serializers.CharField(max_length=5000)
    review = IdField(required=False, help_text="The id of the VCS review it points at.")


class FollowUpView(APIView):
    """`POST /api/v1/overrides/<id>/followup`: record the follow-up review an override owes: a member of the team
    who neither wrote the change nor overrode it, with a note and optionally the VCS review."""

    @extend_schema(request=FollowUpSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        override = _visible_override(request, pk)
        person = _acting_person(request, "A follow-up review")
        team = override.pull_request.repository.team
        if team is None or team.pk not in (person_access(person).seen or ()):
            raise PermissionDenied("A follow-up review is done by a member of the pull request's team.")
        serializer = FollowUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review = None
        if "review" in serializer.validated_data:
            review = Review.objects.filter(
                pk=serializer.validated_data["review"], pull_request=override.pull_request
            ).first()
            if review is None:
                raise ValidationError({"review": ["No such review of this pull request."]})
        with _service_refusals():
            followup = override_followup_complete(
                override=override,
                person=person,
                note=serializer.validated_data["note"],
                review=review,
                actor=_api_actor(request),
            )
        return Response(
            {
                "override": override.pk,
                "reviewer": person.display_name,
                "note": followup.note,
                "review": review.pk if review else None,
                "completed_at": followup.completed_at,
            },
            status=status.HTTP_201_CREATED,
        )
