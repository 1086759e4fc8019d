"""`/api/v1/`: the REST API of the review side."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("reviews.apis_pairing")),
]
