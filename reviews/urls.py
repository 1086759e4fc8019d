"""Pages of the review side."""

from __future__ import annotations

from django.urls import path

from reviews import views

urlpatterns = [
    path("teams/", views.team_list, name="team-list"),
    path("teams/<slug:slug>/", views.team_detail, name="team-detail"),
    path("teams/<slug:slug>/compliance/", views.team_compliance, name="team-compliance"),
    path("teams/<slug:slug>/pulls/", views.team_pulls, name="team-pulls"),
    path("teams/<slug:slug>/pulls.csv", views.team_pulls, name="team-pulls-csv"),
    path("pulls/<int:pk>/", views.pull_request_detail, name="pull-request"),
]
