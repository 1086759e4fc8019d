"""REST API of production's side (`/api/v1/`): deployments, incidents, suspect changes and DORA metrics.

Scope: a caller sees and writes what belongs to the services of its teams (`reviews.access`: a token's teams, a
person's teams, every team for a superuser); anything else is 404, as if it did not exist. Confirming or
rejecting a suspect takes a lead of the service's team (`reviews.access`), or a token of that team. Errors answer
{"error": ..., "fields": {...}}: 400 for bad input, 403 when the caller may see but not do it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import request_access, visible_team_ids
from reviews.api.fields import IdField, MomentField, Pages, id_from_text
from reviews.authentication import TokenUser
from reviews.models import AuditEvent, Person, Repository
from reviews.selectors.scope import ScopeInvalid, as_validation_error, parse_period, parse_scope
from reviews.services.audit import actor_for
from telemetry.api.lookups import visible_team
from telemetry.models import DeployCheck, Deployment, Incident, Service, SuspectChange
from telemetry.selectors.deploy_risk import risk_level_outcomes
from telemetry.selectors.dora import DoraReport, service_dora, services_dora, team_dora
from telemetry.selectors.visible import (
    deployment_list,
    incident_get,
    incident_list,
    services_visible,
    suspect_get,
    suspect_list,
    teams_visible,
)
from telemetry.services.deploy_check import deploy_check
from telemetry.services.deployments import DeploymentForbidden, DeploymentRejected, deployment_report
from telemetry.services.incidents import IncidentForbidden, IncidentRejected, incident_report, incident_update
from telemetry.services.suspects import suspect_confirm, suspect_reject

DEFAULT_PERIOD_DAYS = 28
SHA = r"^[0-9a-fA-F]{7,64}$"


def _parse(serializer_class: type[serializers.Serializer[Any]], data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@contextmanager
def _refusals() -> Iterator[None]:
    """A service's refusal in the API's error shape."""
    try:
        yield
    except (DeploymentForbidden, IncidentForbidden) as error:
        raise PermissionDenied(error.message) from error
    except (DeploymentRejected, IncidentRejected) as error:
        detail = {"non_field_errors": [error.message], **({error.field: [error.message]} if error.field else {})}
        raise ValidationError(detail) from error


def _visible_service(request: Request, slug: str, field: str = "service") -> Service:
    service = services_visible(team_ids=visible_team_ids(request)).filter(slug=slug).first()
    if service is None:
        raise ValidationError({field: [f"No service {slug!r} that you can report to."]})
    return service


# Input -------------------------------------------------------------------------------------------------------------


class DeploymentInput(serializers.Serializer[Any]):
    service = serializers.SlugField()
    environment = serializers.CharField(max_length=100, default="production")
    sha = serializers.RegexField(SHA, error_messages={"invalid": "A commit sha: 7 to 64 hexadecimal characters."})
    status = serializers.ChoiceField(choices=Deployment.Status.choices)
    external_id = serializers.CharField(max_length=200)
    source = serializers.SlugField(max_length=20, default="api")  # type: ignore[assignment]
    started_at = MomentField(required=False, allow_null=True, default=None)
    finished_at = MomentField(required=False, allow_null=True, default=None)
    repository = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text="Full path or Tandem id."
    )
    ref = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    url = serializers.URLField(max_length=1000, required=False, allow_blank=True, default="")

    def validate_environment(self, value: str) -> str:
        if not value.strip():
            raise ValidationError("The environment may not be blank.")
        return value.strip().lower()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        started, finished = attrs.get("started_at"), attrs.get("finished_at")
        if started and finished and finished < started:
            raise ValidationError({"finished_at": ["finished_at is before started_at."]})
        return attrs


class DeployCheckInput(serializers.Serializer[Any]):
    service = serializers.SlugField()
    environment = serializers.CharField(max_length=100, default="production")
    sha = serializers.RegexField(SHA, error_messages={"invalid": "A commit sha: 7 to 64 hexadecimal characters."})
    ref = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")

    def validate_environment(self, value: str) -> str:
        if not value.strip():
            raise ValidationError("The environment may not be blank.")
        return value.strip().lower()


class IncidentInput(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=500)
    external_id = serializers.CharField(max_length=200)
    source = serializers.SlugField(max_length=20, default="api")  # type: ignore[assignment]
    services = serializers.ListField(child=serializers.SlugField(), allow_empty=False)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices, default=Incident.Severity.SEV3)
    status = serializers.ChoiceField(choices=Incident.Status.choices, default=Incident.Status.TRIGGERED)
    started_at = MomentField()
    detected_at = MomentField(required=False, allow_null=True, default=None)
    acknowledged_at = MomentField(required=False, allow_null=True, default=None)
    resolved_at = MomentField(required=False, allow_null=True, default=None)
    url = serializers.URLField(max_length=1000, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        started = attrs.get("started_at")
        errors = {
            name: [f"{name} is before started_at."]
            for name in ("detected_at", "acknowledged_at", "resolved_at")
            if started and attrs.get(name) and attrs[name] < started
        }
        if errors:
            raise ValidationError(errors)
        return attrs


class IncidentPatchInput(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=500, required=False)
    services = serializers.ListField(child=serializers.SlugField(), allow_empty=False, required=False)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices, required=False)
    status = serializers.ChoiceField(choices=Incident.Status.choices, required=False)
    started_at = MomentField(required=False)
    detected_at = MomentField(required=False, allow_null=True)
    acknowledged_at = MomentField(required=False, allow_null=True)
    resolved_at = MomentField(required=False, allow_null=True)
    url = serializers.URLField(max_length=1000, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise ValidationError("Nothing to change: send at least one field.")
        return attrs


class DeploymentFilters(serializers.Serializer[Any]):
    service = serializers.SlugField(required=False)
    team = serializers.SlugField(required=False)
    environment = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=Deployment.Status.choices, required=False)
    since = MomentField(required=False)
    until = MomentField(required=False)


class IncidentFilters(serializers.Serializer[Any]):
    service = serializers.SlugField(required=False)
    team = serializers.SlugField(required=False)
    status = serializers.ChoiceField(choices=Incident.Status.choices, required=False)
    source = serializers.SlugField(required=False)  # type: ignore[assignment]
    since = MomentField(required=False)
    until = MomentField(required=False)


class SuspectFilters(serializers.Serializer[Any]):
    incident = IdField(required=False)
    verdict = serializers.ChoiceField(choices=SuspectChange.Verdict.choices, required=False)
    service = serializers.SlugField(required=False)
    team = serializers.SlugField(required=False)


class PeriodInput(serializers.Serializer[Any]):
    """`days` (the last N days, today included), or `since` and `until` as dates (both days included) or
    date-times (`until` excluded): `reviews.selectors.scope.parse_period`, as every team figure takes them."""

    days = serializers.IntegerField(required=False)
    since = serializers.CharField(required=False)
    until = serializers.CharField(required=False)


def _period(request: Request) -> dict[str, dt.datetime]:
    try:
        period = parse_period(request.query_params, default_days=DEFAULT_PERIOD_DAYS)
    except ScopeInvalid as error:
        raise as_validation_error(error) from None
    return {"since": period.since, "until": period.until}


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


# Output ------------------------------------------------------------------------------------------------------------


def _time(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.pk,
        "service": deployment.service.slug,
        "environment": deployment.environment,
        "sha": deployment.sha,
        "status": deployment.status,
        "source": deployment.source,
        "external_id": deployment.external_id,
        "repository": deployment.repository.full_path if deployment.repository else None,
        "ref": deployment.ref,
        "url": deployment.url,
        "started_at": _time(deployment.started_at),
        "finished_at": _time(deployment.finished_at),
        "path_scoped": deployment.path_scoped,
        "caused_incident": deployment.caused_incident,
        "changes_linked_at": _time(deployment.changes_linked_at),
        "link_method": deployment.link_method,
        "link_error": deployment.link_error,
    }


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "source": incident.source,
        "external_id": incident.external_id,
        "url": incident.url,
        "services": sorted(service.slug for service in incident.services.all()),
        "started_at": _time(incident.started_at),
        "detected_at": _time(incident.detected_at),
        "acknowledged_at": _time(incident.acknowledged_at),
        "resolved_at": _time(incident.resolved_at),
        "correlated_at": _time(incident.correlated_at),
    }


def suspect_json(suspect: SuspectChange) -> dict[str, Any]:
    pull_request, deployment = suspect.pull_request, suspect.deployment
    return {
        "id": suspect.pk,
        "incident": {"id": suspect.incident_id, "title": suspect.incident.title},
        "rank": suspect.rank,
        "score": suspect.score,
        "reasons": suspect.reasons,
        "verdict": suspect.verdict,
        "decided_by": suspect.decided_by.display_name if suspect.decided_by else None,
        "decided_at": _time(suspect.decided_at),
        "deployment": {
            "id": deployment.pk,
            "service": deployment.service.slug,
            "environment": deployment.environment,
            "finished_at": _time(deployment.finished_at),
        },
        "pull_request": {
            "id": pull_request.pk,
            "repository": pull_request.repository.full_path,
            "number": pull_request.number,
            "title": pull_request.title,
            "author": pull_request.author.display_name if pull_request.author else None,
            "url": pull_request.web_url,
        },
    }


def deploy_check_json(check: DeployCheck) -> dict[str, Any]:
    return {
        "id": check.pk,
        "service": check.service.slug,
        "environment": check.environment,
        "sha": check.sha,
        "repository": check.repository.full_path if check.repository else None,
        "level": check.level,
        "decision": check.decision,
        "reasons": check.reasons,
        "pull_requests": check.pull_requests,
        "link_method": check.link_method,
        "link_note": check.link_note,
        "checked_at": _time(check.checked_at),
        "deployment": check.deployment_id,
    }


def dora_json(report: DoraReport) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["since"], data["until"] = report.since.isoformat(), report.until.isoformat()
    return data


# Views -------------------------------------------------------------------------------------------------------------


class DeploymentsView(GenericAPIView[Any]):
    """GET: deployments of your services, newest first (filters: service, team, environment, status, since,
    until). POST: report one (idempotent by source + external id; 201 created, 200 updated)."""

    pagination_class = Pages

    @extend_schema(parameters=[DeploymentFilters], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        filters = _parse(DeploymentFilters, request.query_params.dict())
        page = self.paginate_queryset(deployment_list(team_ids=visible_team_ids(request), **filters)) or []
        return self.get_paginated_response([deployment_json(d) for d in page])

    @extend_schema(request=DeploymentInput, responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = _parse(DeploymentInput, request.data)
        service = _visible_service(request, data.pop("service"))
        data["repository"] = _repository_of(service, data.pop("repository"))
        with _refusals():
            deployment, created = deployment_report(service=service, team_ids=visible_team_ids(request), **data)
        deployment = deployment_list(team_ids=None).get(pk=deployment.pk)
        return Response(deployment_json(deployment), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DeployCheckView(APIView):
    """POST: before a deployment of `sha` to `environment` of `service`: the pull requests it would ship with
    their risk reasons, the overall level (low / medium / high) with reasons in words, and the decision under the
    team's policy (`allow` / `warn` / `block`). Recorded, and attached to the deployment when it is reported."""

    @extend_schema(request=DeployCheckInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = _parse(DeployCheckInput, request.data)
        service = services_visible(team_ids=visible_team_ids(request)).filter(slug=data["service"]).first()
        if service is None:
            raise NotFound(f"No service {data['service']!r} that you can see.")
        check = deploy_check(
            service=service,
            environment=data["environment"],
            sha=data["sha"],
            ref=data["ref"],
            token=request.user.token if isinstance(request.user, TokenUser) else None,
        )
        return Response(deploy_check_json(check), status=status.HTTP_201_CREATED)


class TeamDeployRiskView(APIView):
    """GET: the team's production deployments of the period by the risk level their deploy check gave, and how
    many of each caused an incident (the period as every team figure takes it: `days`, or `since`..`until`)."""

    @extend_schema(parameters=[PeriodInput], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        team = visible_team(request, slug)
        period = _period(request)
        outcomes = risk_level_outcomes(team=team, **period)
        return Response(
            {
                "team": team.slug,
                "since": period["since"].isoformat(),
                "until": period["until"].isoformat(),
                "levels": [
                    {
                        "level": outcome.level,
                        "deployments": outcome.deployments,
                        "caused_incident": outcome.caused_incident,
                        "rate": outcome.rate,
                    }
                    for outcome in outcomes
                ],
            }
        )


def _repository_of(service: Service, reference: str) -> Repository | None:
    if not reference:
        return None
    repositories = service.repositories.all()
    pk = id_from_text(reference)
    found = repositories.filter(pk=pk) if pk is not None else repositories.filter(full_path=reference)
    repository = found.first()
    if repository is None:
        raise ValidationError({"repository": [f"{reference!r} is not one of {service.slug}'s repositories."]})
    return repository


class IncidentsView(GenericAPIView[Any]):
    """GET: incidents of your services, newest first (filters: service, team, status, source, since, until).
    POST: report one (idempotent by source + external id; 201 created, 200 updated)."""

    pagination_class = Pages

    @extend_schema(parameters=[IncidentFilters], responses=OpenApiTypes.OBJECT, operation_id="v1_incidents_list")
    def get(self, request: Request) -> Response:
        filters = _parse(IncidentFilters, request.query_params.dict())
        page = self.paginate_queryset(incident_list(team_ids=visible_team_ids(request), **filters)) or []
        return self.get_paginated_response([incident_json(i) for i in page])

    @extend_schema(request=IncidentInput, responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        data = _parse(IncidentInput, request.data)
        data["services"] = [_visible_service(request, slug, "services") for slug in data["services"]]
        with _refusals():
            incident, created = incident_report(team_ids=visible_team_ids(request), **data)
        return Response(
            incident_json(_incident(request, incident.pk)),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _incident(request: Request, pk: int) -> Incident:
    incident = incident_get(incident_id=pk, team_ids=visible_team_ids(request))
    if incident is None:
        raise NotFound("No such incident.")
    return incident


class IncidentView(APIView):
    """GET: one incident with its ranked suspects. PATCH: change some of its fields."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, pk: int) -> Response:
        incident = _incident(request, pk)
        suspects = suspect_list(team_ids=visible_team_ids(request), incident=incident.pk).order_by("rank", "pk")
        return Response({**incident_json(incident), "suspects": [suspect_json(s) for s in suspects]})

    @extend_schema(request=IncidentPatchInput, responses=OpenApiTypes.OBJECT)
    def patch(self, request: Request, pk: int) -> Response:
        incident = _incident(request, pk)
        changes = _parse(IncidentPatchInput, request.data)
        if "services" in changes:
            changes["services"] = [_visible_service(request, slug, "services") for slug in changes["services"]]
        with _refusals():
            incident_update(incident=incident, changes=changes, team_ids=visible_team_ids(request))
        return Response(incident_json(_incident(request, pk)))


class SuspectsView(GenericAPIView[Any]):
    """GET: suspect changes of your services (filters: incident, verdict, service, team)."""

    pagination_class = Pages

    @extend_schema(parameters=[SuspectFilters], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        filters = _parse(SuspectFilters, request.query_params.dict())
        page = self.paginate_queryset(suspect_list(team_ids=visible_team_ids(request), **filters)) or []
        return self.get_paginated_response([suspect_json(s) for s in page])


class SuspectVerdictView(APIView):
    """POST: a lead of the service's team (or a token of that team) confirms or rejects a suspect."""

    verdict = ""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, pk: int) -> Response:
        suspect = suspect_get(suspect_id=pk, team_ids=visible_team_ids(request))
        if suspect is None:
            raise NotFound("No such suspect change.")
        team_id = suspect.deployment.service.team_id
        if team_id is None or not request_access(request).leads(team_id):
            raise PermissionDenied("Only a lead of the service's team may decide on its suspects.")
        person = getattr(request.user, "person", None) if not isinstance(request.user, TokenUser) else None
        decide = suspect_confirm if self.verdict == "confirm" else suspect_reject
        decide(
            suspect=suspect,
            decided_by=person if isinstance(person, Person) else None,
            actor=actor_for(request.user, source=AuditEvent.Source.API),
        )
        return Response(suspect_json(suspect_list(team_ids=None).get(pk=pk)))


class TeamDoraView(APIView):
    """GET: the team's DORA metrics over the period every team figure takes (`days`, or `since`..`until`:
    `reviews.selectors.scope.parse_period`, and its default)."""

    @extend_schema(parameters=[PeriodInput], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        team = visible_team(request, slug)
        period = _period(request)
        return Response({"team": team.slug, **dora_json(_filtered_team_dora(request, team, period))})


def _filtered_team_dora(request: Request, team: Any, period: dict[str, dt.datetime]) -> DoraReport:
    """DORA is per service: of the team page's filters only `repository` applies (the services built from those
    repositories, which must be the team's); the others are refused rather than silently ignored."""
    ignored = [name for name in ("author", "author_team", "label", "size") if request.query_params.getlist(name)]
    if ignored:
        raise ValidationError({ignored[0]: ["DORA is per service: only the repository filter applies."]})
    if not request.query_params.getlist("repository"):
        return team_dora(team=team, **period)
    try:
        scope = parse_scope(request.query_params, team=team, teams=teams_visible(team_ids=visible_team_ids(request)))
    except ScopeInvalid as error:
        raise as_validation_error(error) from None
    services = Service.objects.filter(team=team, repositories__in=scope.repositories).distinct().order_by("slug")
    return services_dora(services=list(services), **period)


class ServiceDoraView(APIView):
    """GET: one service's DORA metrics over `since`..`until`."""

    @extend_schema(parameters=[PeriodInput], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        service = services_visible(team_ids=visible_team_ids(request)).filter(slug=slug).first()
        if service is None:
            raise NotFound("No such service.")
        period = _period(request)
        return Response({"service": service.slug, **dora_json(service_dora(service=service, **period))})
