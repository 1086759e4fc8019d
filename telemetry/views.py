"""Pages of production's side that stand alone: a person's own notices, a team's next weekly digest."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from reviews.access import own_person, visible_teams
from telemetry.selectors import notifications_of
from telemetry.services.digest import digest_preview
from telemetry.services.notices import notifications_mark_read

NOTICES_PER_PAGE = 25


@login_required
@require_http_methods(["GET", "POST"])
def notices(request: HttpRequest) -> HttpResponse:
    """Your notices, newest first; unread ones stand out. POST marks them all read."""
    person = own_person(request.user)
    if request.method == "POST":
        if person is not None:
            notifications_mark_read(person=person)
        return redirect("notices")
    page_obj = None
    if person is not None:
        page_obj = Paginator(notifications_of(person=person), NOTICES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "telemetry/notices.html", {"person": person, "page_obj": page_obj})


@login_required
def team_digest(request: HttpRequest, slug: str) -> HttpResponse:
    """The team's next weekly digest as it stands (this week so far): for the team's members."""
    team = visible_teams(request).filter(slug=slug).first()
    if team is None:
        raise Http404("No such team, or not one of yours.")
    return render(request, "telemetry/team_digest.html", {"team": team, "digest": digest_preview(team=team)})
