"""`/api/v1/`: the REST API of the review side."""

from __future__ import annotations

from django.urls import include, path

from reviews import apis, apis_audit, apis_read, apis_reviewers

urlpatterns = [
    path("teams", apis_read.TeamList.as_view(), name="api-teams"),
    path("teams/<slug:slug>", apis_read.TeamDetail.as_view(), name="api-team"),
    path("teams/<slug:slug>/health", apis_read.TeamHealth.as_view(), name="api-team-health"),
    path("people", apis_read.PersonList.as_view(), name="api-people"),
    path("repositories", apis_read.RepositoryList.as_view(), name="api-repositories"),
    path("pulls", apis_read.PullRequestList.as_view(), name="api-pulls"),
    path("pulls/<int:pk>", apis_read.PullRequestDetail.as_view(), name="api-pull"),
    path("reviews", apis_read.ReviewList.as_view(), name="api-reviews"),
    path(
        "pulls/<int:pk>/reviewer-suggestions",
        apis_reviewers.ReviewerSuggestionsView.as_view(),
        name="api-pull-reviewer-suggestions",
    ),
    path("teams/<slug:slug>/areas", apis_reviewers.TeamAreasView.as_view(), name="api-team-areas"),
    path("people/<int:pk>/away", apis_reviewers.PersonAwayView.as_view(), name="api-person-away"),
    path("teams/<slug:slug>/policy", apis.PolicyView.as_view(), name="api-team-policy"),
    path("repositories/<int:pk>/policy", apis.PolicyView.as_view(), name="api-repository-policy"),
    path("teams/<slug:slug>/policy/versions", apis.PolicyVersionsView.as_view(), name="api-team-policy-versions"),
    path(
        "teams/<slug:slug>/policy/versions/<int:number>/restore",
        apis.PolicyRestoreView.as_view(),
        name="api-team-policy-restore",
    ),
    path(
        "repositories/<int:pk>/policy/versions",
        apis.PolicyVersionsView.as_view(),
        name="api-repository-policy-versions",
    ),
    path(
        "repositories/<int:pk>/policy/versions/<int:number>/restore",
        apis.PolicyRestoreView.as_view(),
        name="api-repository-policy-restore",
    ),
    path("overrides/<int:pk>/withdraw", apis.OverrideWithdrawView.as_view(), name="api-override-withdraw"),
    path("overrides/<int:pk>/followup", apis.FollowUpView.as_view(), name="api-override-followup"),
    path("audit-events", apis_audit.AuditEventList.as_view(), name="api-audit-events"),
    path("teams/<slug:slug>/compliance", apis_audit.ComplianceList.as_view(), name="api-team-compliance"),
    path("policies/simulate", apis.SimulateView.as_view(), name="api-policy-simulate"),
    path("pulls/<int:pk>/override", apis.OverrideView.as_view(), name="api-pull-override"),
    path("", include("reviews.apis_pairing")),
]
