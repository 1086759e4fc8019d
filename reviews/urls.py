"""Pages of the review side."""

from __future__ import annotations

from django.urls import path

from reviews import views

urlpatterns = [
    path("pulls/<int:pk>/", views.pull_request_detail, name="pull-request"),
]
