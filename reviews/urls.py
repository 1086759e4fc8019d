"""Pages of the review side."""

from __future__ import annotations

from django.urls import path

from reviews import views

urlpatterns = [
    path("me/", views.me, name="me"),
    path("teams/", views.team_list, name="team-list"),
    path("teams/<slug:slug>/", views.team_detail, name="team-detail"),
    path("teams/<slug:slug>/compliance/", views.team_compliance, name="team-compliance"),
    path("teams/<slug:slug>/pulls/", views.team_pulls, name="team-pulls"),
    path("teams/<slug:slug>/pulls.csv", views.team_pulls, name="team-pulls-csv"),
    path("pulls/<int:pk>/", views.pull_request_detail, name="pull-request"),
    # repo#number; the repository's path has a slash at least, so `/pulls/12/` above never reaches it.
    path("pulls/<path:full_path>/<int:number>/", views.pull_request_by_number, name="pull-request-by-number"),
]
