"""HTML pages: thin, one selector each."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from reviews.models import PullRequest


@login_required
def pull_request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pull_request = get_object_or_404(
        PullRequest.objects.select_related("repository__team", "author", "merged_by"), pk=pk
    )
    context = {
        "pull_request": pull_request,
        "reviews": pull_request.reviews.select_related("reviewer").order_by("submitted_at"),
        "evaluation": pull_request.evaluations.order_by("-evaluated_at").first(),
    }
    return render(request, "reviews/pull_request_detail.html", context)
