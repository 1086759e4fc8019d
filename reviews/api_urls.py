"""`/api/v1/`: the REST API of the review side."""

from __future__ import annotations

from django.urls import include, path

from reviews import apis

urlpatterns = [
    path("teams/<slug:slug>/policy", apis.PolicyView.as_view(), name="api-team-policy"),
    path("repositories/<int:pk>/policy", apis.PolicyView.as_view(), name="api-repository-policy"),
    path("policies/simulate", apis.SimulateView.as_view(), name="api-policy-simulate"),
    path("pulls/<int:pk>/override", apis.OverrideView.as_view(), name="api-pull-override"),
    path("", include("reviews.apis_pairing")),
]
