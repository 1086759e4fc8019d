"""`/api/v1/notifications`: the caller's own notices (a change they wrote or reviewed was traced to an incident).

Notices are personal (`reviews.access.own_person`): a signed-in person reads only their own, a superuser too, and an
API token, which acts for teams rather than for a person, is refused (403).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviews.access import own_person
from reviews.api.fields import Pages
from reviews.authentication import TokenUser
from reviews.models import Person
from telemetry.models import Notification
from telemetry.selectors.notices import notifications_of
from telemetry.services.notices import notifications_mark_read

TOKENS_HAVE_NO_NOTICES = (
    "Notices are read by the person they address: sign in as that person. API tokens act for teams, not for a person."
)


class NoticePages(Pages):
    page_size = 25
    max_page_size = 100


class NoticeFilters(serializers.Serializer[Any]):
    unread = serializers.BooleanField(required=False, default=False, help_text="Only the notices not read yet.")


class NoticeIncidentOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    title = serializers.CharField()
    severity = serializers.CharField()
    started_at = serializers.DateTimeField()
    url = serializers.CharField(help_text="The incident in the incident tool, when it has a page there.")


class NoticePullRequestOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    repository = serializers.CharField(source="repository.full_path")
    number = serializers.IntegerField()
    title = serializers.CharField()
    web_url = serializers.CharField()


class NotificationOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    kind = serializers.CharField()
    subject = serializers.CharField()
    body = serializers.CharField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)
    incident = NoticeIncidentOutput(allow_null=True)
    pull_request = NoticePullRequestOutput(allow_null=True)


def _caller(request: Request) -> Person | None:
    if isinstance(request.user, TokenUser):
        raise PermissionDenied(TOKENS_HAVE_NO_NOTICES)
    return own_person(request.user)


def _query(request: Request) -> dict[str, Any]:
    serializer = NoticeFilters(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class NotificationsView(GenericAPIView[Any]):
    """GET: the caller's own notices, newest first, paginated (`?unread=true`: only those not read yet)."""

    serializer_class = NotificationOutput
    pagination_class = NoticePages
    queryset = Notification.objects.none()  # for the schema: the list comes from the selector

    @extend_schema(
        parameters=[NoticeFilters],
        responses={
            200: NotificationOutput(many=True),
            403: OpenApiResponse(description="An API token: notices are read by the person they address."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = _query(request)
        person = _caller(request)
        if person is None:  # a login linked to no person: nobody's notices are addressed to it
            notices = Notification.objects.none()
        else:
            notices = notifications_of(person=person, unread_only=filters["unread"])
        page = self.paginate_queryset(notices)
        return self.get_paginated_response(NotificationOutput(page or [], many=True).data)


class NotificationReadView(APIView):
    """POST: mark one of the caller's notices read (again: no change). Another person's notice is 404."""

    @extend_schema(request=None, responses=NotificationOutput)
    def post(self, request: Request, pk: int) -> Response:
        person = _caller(request)
        notice = notifications_of(person=person).filter(pk=pk).first() if person else None
        if notice is None or person is None:
            raise NotFound("No such notice of yours.")
        notifications_mark_read(person=person, ids=[notice.pk])
        notice.refresh_from_db(fields=["read_at"])
        return Response(NotificationOutput(notice).data)


urlpatterns = [
    path("notifications", NotificationsView.as_view(), name="notifications"),
    path("notifications/<int:pk>/read", NotificationReadView.as_view(), name="notification-read"),
]
