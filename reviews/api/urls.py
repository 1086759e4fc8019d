"""`/api/v1/`: the REST API of the review side."""

from __future__ import annotations

from django.urls import include, path

from reviews.api import audit, policies, read, reviewers

urlpatterns = [
    path("teams", read.TeamList.as_view(), name="api-teams"),
    path("teams/<slug:slug>", read.TeamDetail.as_view(), name="api-team"),
    path("teams/<slug:slug>/health", read.TeamHealth.as_view(), name="api-team-health"),
    path("people", read.PersonList.as_view(), name="api-people"),
    path("repositories", read.RepositoryList.as_view(), name="api-repositories"),
    path("pulls", read.PullRequestList.as_view(), name="api-pulls"),
    path("pulls/<int:pk>", read.PullRequestDetail.as_view(), name="api-pull"),
    path("reviews", read.ReviewList.as_view(), name="api-reviews"),
    path(
        "pulls/<int:pk>/reviewer-suggestions",
        reviewers.ReviewerSuggestionsView.as_view(),
        name="api-pull-reviewer-suggestions",
    ),
    path("teams/<slug:slug>/knowledge", reviewers.TeamKnowledgeView.as_view(), name="api-team-knowledge"),
    path("people/<int:pk>/away", reviewers.PersonAwayView.as_view(), name="api-person-away"),
    path("teams/<slug:slug>/policy", policies.PolicyView.as_view(), name="api-team-policy"),
    path("repositories/<int:pk>/policy", policies.PolicyView.as_view(), name="api-repository-policy"),
    path("teams/<slug:slug>/policy/versions", policies.PolicyVersionsView.as_view(), name="api-team-policy-versions"),
    path(
        "teams/<slug:slug>/policy/versions/<int:number>/restore",
        policies.PolicyRestoreView.as_view(),
        name="api-team-policy-restore",
    ),
    path(
        "repositories/<int:pk>/policy/versions",
        policies.PolicyVersionsView.as_view(),
        name="api-repository-policy-versions",
    ),
    path(
        "repositories/<int:pk>/policy/versions/<int:number>/restore",
        policies.PolicyRestoreView.as_view(),
        name="api-repository-policy-restore",
    ),
    path("overrides/<int:pk>/withdraw", policies.OverrideWithdrawView.as_view(), name="api-override-withdraw"),
    path("overrides/<int:pk>/followup", policies.FollowUpView.as_view(), name="api-override-followup"),
    path("audit-events", audit.AuditEventList.as_view(), name="api-audit-events"),
    path("teams/<slug:slug>/compliance", audit.ComplianceList.as_view(), name="api-team-compliance"),
    path("policies/simulate", policies.SimulateView.as_view(), name="api-policy-simulate"),
    path("pulls/<int:pk>/override", policies.OverrideView.as_view(), name="api-pull-override"),
    path("", include("reviews.api.pairing")),
]
