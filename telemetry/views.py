"""Pages of production's side that stand alone: a person's own notices, a lead's verdict on a suspect change
(posted from the team page's incidents), and a team's next weekly digest."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from reviews.access import own_person, request_access, visible_team_ids, visible_teams
from reviews.models import AuditEvent
from reviews.services.audit import actor_for
from telemetry.selectors.notices import notifications_of
from telemetry.selectors.visible import suspect_get
from telemetry.services.digest import digest_preview
from telemetry.services.notices import notifications_mark_read
from telemetry.services.suspects import suspect_confirm, suspect_reject

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
@require_POST
def suspect_decide(request: HttpRequest, pk: int, verdict: str) -> HttpResponse:
    """A lead of the service's team confirms or rejects a suspect, as `POST /api/v1/suspects/<id>/confirm/` does:
    another team's suspect is 404, a member who does not lead the team 403."""
    suspect = suspect_get(suspect_id=pk, team_ids=visible_team_ids(request))
    if suspect is None:
        raise Http404("No such suspect change.")
    team = suspect.deployment.service.team
    if team is None or not request_access(request).leads(team.pk):
        raise PermissionDenied("Only a lead of the service's team may decide on its suspects.")
    decide = suspect_confirm if verdict == "confirm" else suspect_reject
    decide(
        suspect=suspect,
        decided_by=own_person(request.user),
        actor=actor_for(request.user, source=AuditEvent.Source.WEB),
    )
    return redirect(f"{reverse('team-detail', args=[team.slug])}#incident-{suspect.incident_id}")


@login_required
def team_digest(request: HttpRequest, slug: str) -> HttpResponse:
    """The team's next weekly digest as it stands (this week so far): for the team's members."""
    team = visible_teams(request).filter(slug=slug).first()
    if team is None:
        raise Http404("No such team, or not one of yours.")
    return render(request, "telemetry/team_digest.html", {"team": team, "digest": digest_preview(team=team)})
