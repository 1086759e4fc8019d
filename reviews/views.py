"""HTML pages: thin, one selector each. Login required; a team's pages are for its members (and superusers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from reviews import charts
from reviews.access import rows_within, visible_team_ids, visible_teams
from reviews.models import PullRequest
from reviews.sections import render_pull_request_sections, render_team_sections
from reviews.selectors.compliance import compliance_list
from reviews.selectors.pairing import COMMIT_LEAD_TIME
from reviews.selectors.pull_requests import pull_request_page
from reviews.selectors.review_facts import RUBBER_STAMP_MIN_LINES
from reviews.selectors.teams import team_page, teams_overview
from reviews.words import label_and_rest

PERIODS = (7, 14, 30, 90)


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
    health = page.health
    context = {
        "page": page,
        "days": days,
        "periods": PERIODS,
        "flow_rows": _flow_rows(page),
        "weekly_chart": charts.bar_chart(
            [(_week_label(week), _number(week["time_to_first_review"])) for week in health.weekly],
            unit=" h",
            title="Median time to first review per week (hours)",
        ),
        "merged_chart": charts.bar_chart(
            [(_week_label(week), _number(week["merged"])) for week in health.weekly],
            title="Merged pull requests per week",
        ),
        "coverage_chart": charts.stacked_bar(
            [
                ("reviewed", health.coverage["reviewed"]),
                ("paired only", health.coverage["paired_only"]),
                ("neither", health.coverage["neither"]),
            ],
            title="Review coverage of merged pull requests",
        ),
        "size_chart": charts.bar_chart(list(health.size_buckets.items()), title="Merged pull requests by size"),
        "sections": render_team_sections(team, page.since, page.until),
        # The definitions beside the figures say the numbers the code uses.
        "pairing_lead_minutes": int(COMMIT_LEAD_TIME.total_seconds() // 60),
        "rubber_stamp_minutes": settings.RUBBER_STAMP_MINUTES_PER_100_LINES,
        "rubber_stamp_min_lines": RUBBER_STAMP_MIN_LINES,
    }
    return render(request, "reviews/team_detail.html", context)


def _week_label(week: dict[str, object]) -> str:
    """The week's Monday (month-day), starred when the period covers only part of it."""
    return str(week["week"])[5:] + ("*" if week["partial"] else "")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _flow_rows(page) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []
    for key, label, definition in (
        ("time_to_first_review", "Time to first review", "ready for review → first review activity by another person"),
        ("pickup_time", "Pickup time", "ready → first review activity, approval, or merge if there was none"),
        ("review_time", "Review time", "first review activity → merge"),
        ("time_to_approve", "Time to approve", "ready → first approval that counted"),
        ("merge_time", "Merge time", "last approval that counted → merge"),
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
    page = pull_request_page(pull_request=pull_request)
    context = {**page, **_verdict_words(page), "sections": render_pull_request_sections(pull_request)}
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
