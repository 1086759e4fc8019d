"""HTML pages: thin, one selector each. Login required; a team's pages are for its members (and superusers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from reviews.access import own_person, rows_within, visible_team_ids, visible_teams
from reviews.models import PullRequest
from reviews.sections import render_pull_request_sections, render_team_sections
from reviews.selectors.compliance import compliance_list
from reviews.selectors.me import my_open_pull_requests, waiting_on
from reviews.selectors.pull_requests import pull_request_page
from reviews.selectors.teams import team_page, team_repositories, teams_overview
from reviews.team_charts import team_charts
from reviews.words import label_and_rest

PERIODS = (7, 14, 30, 90)
MINE_SHOWN = 50


def _days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        return 30
    return days if days in PERIODS else 30


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    summaries = teams_overview(teams=visible_teams(request), days=days)
    return render(request, "reviews/team_list.html", {"summaries": summaries, "days": days, "periods": PERIODS})


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = visible_teams(request).filter(slug=slug).first()
    if team is None:
        raise Http404("No such team, or not one of yours.")
    days = _days(request)
    page = team_page(team=team, days=days)
    context = {
        "page": page,
        "days": days,
        "periods": PERIODS,
        "flow_rows": _flow_rows(page),
        **team_charts(page),
        "sections": render_team_sections(team, page.since, page.until),
        "repositories": team_repositories(team=team),
    }
    return render(request, "reviews/team_detail.html", context)


def _flow_rows(page) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []
    for key, label, definition in (
        ("time_to_first_review", "Time to first review", "ready for review → first review activity by another person"),
        ("pickup_time", "Pickup time", "ready → first review activity, approval, or merge if there was none"),
        ("review_time", "Review time", "first review activity → merge"),
        ("time_to_approve", "Time to approve", "ready → first approval"),
        ("merge_time", "Merge time", "last approval → merge"),
        ("cycle_time", "Cycle time", "first commit authored → merge"),
    ):
        now, before = getattr(page.health, key), getattr(page.previous, key)
        rows.append({"label": label, "definition": definition, "now": now, "before": before})
    return rows


@login_required
def team_compliance(request: HttpRequest, slug: str) -> HttpResponse:
    """Every change the team merged in the period, 50 a page, with its verdict at merge and reason."""
    team = visible_teams(request).filter(slug=slug).first()  # type: ignore[arg-type]
    if team is None:
        raise Http404("No such team, or not one of yours.")
    days = _days(request)
    until = timezone.now()
    since = until - dt.timedelta(days=days)
    changes = compliance_list(team=team, since=since, until=until, now=until)
    page_obj = Paginator(changes, 50).get_page(request.GET.get("page"))
    context = {"team": team, "days": days, "periods": PERIODS, "since": since, "until": until, "page_obj": page_obj}
    return render(request, "reviews/team_compliance.html", context)


@login_required
def pull_request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pull_requests = PullRequest.objects.select_related("repository__team", "repository__connection", "author")
    pull_request = (
        rows_within(pull_requests.select_related("merged_by"), visible_team_ids(request)).filter(pk=pk).first()
    )
    if pull_request is None:
        raise Http404("No such pull request, or not one of your teams'.")
    return _pull_request_response(request, pull_request)


@login_required
def pull_request_by_number(request: HttpRequest, full_path: str, number: int) -> HttpResponse:
    """`/pulls/acme/payments-api/392/` (a GitLab path may have subgroups: `/pulls/group/sub/project/12/`)."""
    pull_requests = PullRequest.objects.select_related("repository__team", "repository__connection", "author")
    pull_request = (
        rows_within(pull_requests.select_related("merged_by"), visible_team_ids(request))
        .filter(repository__full_path=full_path, number=number)
        .order_by("pk")
        .first()
    )
    if pull_request is None:
        raise Http404("No such pull request, or not one of your teams'.")
    return _pull_request_response(request, pull_request)


def _pull_request_response(request: HttpRequest, pull_request: PullRequest) -> HttpResponse:
    sections = render_pull_request_sections(pull_request)
    page = pull_request_page(
        pull_request=pull_request, more_events=[event for section in sections for event in section.timeline]
    )
    context = {**page, **_verdict_words(page), "sections": sections}
    return render(request, "reviews/pull_request_detail.html", context)


def _verdict_words(page: dict[str, Any]) -> dict[str, Any]:
    """The verdict as a person reads it: its label once, and the override's due time as a moment."""
    evaluation, trace = page.get("evaluation"), page.get("trace") or {}
    words: dict[str, Any] = {"verdict": None, "override_followup_due_at": None}
    if evaluation is not None:
        words["verdict"] = label_and_rest(evaluation.get_outcome_display(), evaluation.description)
    due = (trace.get("override") or {}).get("followup_due_at")
    if isinstance(due, str):
        try:
            words["override_followup_due_at"] = dt.datetime.fromisoformat(due)
        except ValueError:
            words["override_followup_due_at"] = None
    return words


@login_required
def me(request: HttpRequest) -> HttpResponse:
    """Your open pull requests, what waits on your review, and your newest notices."""
    person = own_person(request.user)
    context: dict[str, Any] = {"person": person}
    if person is not None:
        context["mine"] = list(my_open_pull_requests(person=person)[:MINE_SHOWN])
        context["waiting"] = waiting_on(person=person)
    return render(request, "reviews/me.html", context)
