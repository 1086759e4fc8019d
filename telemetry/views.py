"""Pages of production's side that stand alone: a person's own notices."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from reviews.access import own_person
from telemetry.selectors import notifications_of
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
