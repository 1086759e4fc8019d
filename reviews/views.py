"""HTML pages: thin, one selector each. Login required; a team's pages are for its members (and superusers)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import itertools
from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from reviews.access import own_person, rows_within, visible_team_ids, visible_teams
from reviews.models import Membership, Person, PullRequest, Team
from reviews.sections import render_pull_request_sections, render_team_sections
from reviews.selectors.drilldown import FLOW_FIGURES, METRICS, DrillDown, drilldown
from reviews.selectors.me import my_open_pull_requests, waiting_on
from reviews.selectors.pairing import COMMIT_LEAD_TIME
from reviews.selectors.pull_requests import pull_request_page
from reviews.selectors.review_facts import RUBBER_STAMP_MIN_LINES
from reviews.selectors.scope import QUICK_PERIODS, SIZE_NAMES, Scope, ScopeInvalid, parse_period, parse_scope
from reviews.selectors.teams import TeamPage, team_page, team_repositories, teams_overview
from reviews.selectors.trends import TREND_MIN_COUNT, Trend, trend, trend_of_counts
from reviews.team_charts import ChartLinks, team_charts
from reviews.words import label_and_rest

PERIODS = QUICK_PERIODS
PULLS_PER_PAGE = 50
MINE_SHOWN = 50


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    """Every team the viewer may see, with its key figures over the period (the team page's own parser)."""
    context: dict[str, Any] = {
        "periods": PERIODS,
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
    }
    try:
        period = parse_period(request.GET)
    except ScopeInvalid as error:
        return render(request, "reviews/team_list.html", {**context, "error": error, "summaries": []}, status=400)
    summaries = teams_overview(teams=visible_teams(request), since=period.since, until=period.until)
    return render(
        request, "reviews/team_list.html", {**context, "summaries": summaries, "days": period.days, "period": period}
    )


def _team_or_404(request: HttpRequest, slug: str) -> Team:
    team = visible_teams(request).filter(slug=slug).first()
    if team is None:
        raise Http404("No such team, or not one of yours.")
    return team


def _scope(request: HttpRequest, team: Team) -> Scope:
    return parse_scope(request.GET, team=team, teams=visible_teams(request))


def _scope_refused(request: HttpRequest, team: Team, error: ScopeInvalid) -> HttpResponse:
    """A period or filter the page cannot show: said on the page (400), with the form to put it right."""
    context = {"team": team, "error": error, "form": _form(request, team, None), "periods": PERIODS}
    return render(request, "reviews/team_scope_error.html", context, status=400)


def _form(request: HttpRequest, team: Team, scope: Scope | None) -> dict[str, Any]:
    """The filter form's choices and current values: three queries whatever the history."""
    # Per person, an index probe of their pull requests (not the team's 100,000 pull requests' authors, read whole).
    authored = Exists(PullRequest.objects.filter(author_id=OuterRef("pk"), repository__team=team))
    member = Exists(Membership.objects.filter(person_id=OuterRef("pk"), team=team))
    people = Person.objects.filter(authored | member).order_by("display_name")
    return {
        "repositories": list(team.repositories.order_by("full_path").values_list("pk", "full_path")),
        "authors": list(people.values_list("pk", "display_name")),
        "teams": list(visible_teams(request).filter(archived=False).order_by("name").values_list("slug", "name")),
        "sizes": SIZE_NAMES,
        "scope": scope,
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
    }


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = _team_or_404(request, slug)
    try:
        scope = _scope(request, team)
    except ScopeInvalid as error:
        return _scope_refused(request, team, error)
    page = team_page(scope=scope, previous_weeks=False)  # the page shows the previous period's totals, not its weeks
    health = page.health
    pulls = _pulls_path(team)  # reversed once: the page links to the drill-down list some fifty times
    drill = _drill_links(scope, pulls)
    weeks = [_week_scope(scope, week) for week in health.weekly]
    context = {
        "page": page,
        "scope": scope,
        "days": scope.period.days,
        "periods": PERIODS,
        "form": _form(request, team, scope),
        "q": scope.query(),
        "filters_q": urlencode([(k, v) for k, values in scope.filter_query().items() for v in values]),
        "drill": drill,
        "trends": _trends(page),
        "flow_rows": _flow_rows(page, drill),
        **team_charts(
            page,
            ChartLinks(
                week=lambda metric: [_pulls_link(pulls, week, metric=metric) for week in weeks],
                coverage=(drill["reviewed"], drill["paired_only"], drill["neither"]),
                size=tuple(
                    _pulls_link(pulls, dataclasses.replace(scope, size_bucket=name), metric="merged")
                    for name in health.size_buckets
                ),
            ),
        ),
        "stamp_reviewers": _stamp_reviewers(page, drill),
        "load_rows": [
            {
                "load": load,
                "given": f"{drill['reviews_given']}&reviewer={load.person_id}",
                "waiting": f"{drill['waiting_on']}&reviewer={load.person_id}",
            }
            for load in health.reviewer_load
        ],
        "compliance_repositories": _compliance_repositories(page, scope, pulls),
        "compliance_reasons": _compliance_reasons(page, drill),
        "sections": render_team_sections(scope),
        "repositories": team_repositories(team=team),
        # The definitions beside the figures say the numbers the code uses.
        "pairing_lead_minutes": int(COMMIT_LEAD_TIME.total_seconds() // 60),
        "rubber_stamp_minutes": settings.RUBBER_STAMP_MINUTES_PER_100_LINES,
        "rubber_stamp_min_lines": RUBBER_STAMP_MIN_LINES,
    }
    return render(request, "reviews/team_detail.html", context)


def _stamp_reviewers(page: TeamPage, drill: dict[str, str]) -> list[tuple[str, int, str]]:
    """(reviewer, rubber stamps, link to them), most first: the figure's own per-reviewer counts."""
    ids = {load.name: load.person_id for load in page.health.reviewer_load}
    return [
        (name, count, f"{drill['rubber_stamps']}&reviewer={ids[name]}" if name in ids else drill["rubber_stamps"])
        for name, count in page.health.rubber_stamps_by_reviewer.items()
    ]


def _compliance_repositories(page: TeamPage, scope: Scope, pulls: str) -> list[dict[str, Any]]:
    rows = []
    for entry in page.compliance.by_repository:
        narrowed = dataclasses.replace(scope, repositories=(int(entry["repository_id"]),))  # type: ignore[call-overload]
        cells = [
            (entry[status], _pulls_link(pulls, narrowed, metric=metric))
            for status, metric in (
                ("merged", "merged"),
                ("compliant", "compliant"),
                ("overridden", "overridden"),
                ("violation", "violation"),
                ("not_evaluated", "not_evaluated"),
            )
        ]
        rows.append({"repository": entry["repository"], "cells": cells})
    return rows


def _compliance_reasons(page: TeamPage, drill: dict[str, str]) -> list[tuple[str, object, str]]:
    """(reason, count, link): a reason names its status (overridden, no verdict) or a violation's outcome."""
    found = []
    for entry in page.compliance.by_reason:
        reason = str(entry["reason"])
        status = {"overridden": "overridden", "no verdict before merge": "not_evaluated"}.get(reason, "violation")
        found.append((reason, entry["count"], f"{drill[status]}&{urlencode({'reason': reason})}"))
    return found


def _pulls_url(team: Team, scope: Scope, **extra: str) -> str:
    return _pulls_link(_pulls_path(team), scope, **extra)


def _pulls_path(team: Team) -> str:
    return reverse("team-pulls", args=[team.slug])


def _pulls_link(path: str, scope: Scope, **extra: str) -> str:
    """`_pulls_url` with the drill-down list's path reversed already (`_pulls_path`)."""
    return f"{path}?{scope.query(**extra)}"


def _drill_links(scope: Scope, pulls: str) -> dict[str, str]:
    """metric → the drill-down list of its pull requests, in the page's period and filters (`pulls`: its path)."""
    return {key: _pulls_link(pulls, scope, metric=key) for key in METRICS}


def _week_scope(scope: Scope, week: dict[str, object]) -> Scope:
    """The part of the period a weekly bar covers, as its own period (same filters)."""
    monday = cast(dt.date, week["week"])
    first = max(monday, scope.period.first_day)
    last = min(monday + dt.timedelta(days=6), scope.period.last_day)
    return scope.with_period(first, last)


def _trends(page: TeamPage) -> dict[str, Trend | None]:
    """Marks for the figures that moved beyond the threshold since the previous period (reviews.selectors.trends)."""
    now, before = page.health, page.previous
    counts = (now.merged, before.merged)
    found: dict[str, Trend | None] = {
        "merged": trend("merged", now.merged, before.merged) if max(counts) >= TREND_MIN_COUNT else None,
        "coverage": trend_of_counts("coverage", now.coverage_share, before.coverage_share, counts=counts),
        "rubber_stamps": trend_of_counts(
            "rubber_stamps", now.rubber_stamp_share, before.rubber_stamp_share, counts=(now.approvals, before.approvals)
        ),
        "rework_cycles": trend_of_counts(
            "rework_cycles", now.rework_cycles_mean, before.rework_cycles_mean, counts=counts
        ),
        "review_depth": trend_of_counts("review_depth", now.review_depth, before.review_depth, counts=counts),
    }
    for key in FLOW_FIGURES:
        distribution, previous = getattr(now, key), getattr(before, key)
        found[key] = trend_of_counts(
            key, distribution.median_hours, previous.median_hours, counts=(distribution.count, previous.count)
        )
    return found


def _flow_rows(page: TeamPage, drill: dict[str, str]) -> list[dict[str, Any]]:
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
        rows.append(
            {"key": key, "label": label, "definition": definition, "now": now, "before": before, "link": drill[key]}
        )
    return rows


@login_required
def team_pulls(request: HttpRequest, slug: str) -> HttpResponse | StreamingHttpResponse:
    """The pull requests behind one figure of the team page, with the per-pull-request values it aggregated:
    sortable, 50 a page, or the whole list as CSV (`format=csv`)."""
    team = _team_or_404(request, slug)
    try:
        scope = _scope(request, team)
        found = drilldown(scope=scope, params=request.GET)
    except ScopeInvalid as error:
        return _scope_refused(request, team, error)
    if request.GET.get("format") == "csv" or request.path.endswith(".csv"):
        return _csv(found, f"{team.slug}-{found.metric.key}-{scope.period.first_day}-{scope.period.last_day}.csv")
    page_obj = Paginator(found.rows, PULLS_PER_PAGE).get_page(request.GET.get("page"))
    extra = {"metric": found.metric.key}
    if found.reviewer:
        extra["reviewer"] = str(found.reviewer.pk)
    for name in ("reason", "followup"):
        if request.GET.get(name):
            extra[name] = request.GET[name]
    context = {
        "team": team,
        "scope": scope,
        "found": found,
        "page_obj": page_obj,
        "rows": list(
            zip(page_obj, [[(key, row.get(key)) for key, _ in found.columns] for row in page_obj], strict=True)
        ),
        "sort_links": [(key, label, _sort_link(scope, extra, key, found.sort)) for key, label in found.columns],
        "q": scope.query(**extra, sort=found.sort),
        "team_q": scope.query(),
        "form": _form(request, team, scope),
        "periods": PERIODS,
    }
    return render(request, "reviews/team_pulls.html", context)


def _sort_link(scope: Scope, extra: dict[str, str], key: str, current: str) -> str:
    sort = f"-{key}" if current == key else key
    return "?" + scope.query(**extra, sort=sort)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(found: DrillDown, filename: str) -> StreamingHttpResponse:
    """The whole list, streamed, a header row first."""
    writer = csv.writer(_Echo())
    header = [label for _, label in found.columns]
    lines = (writer.writerow([_csv_value(row.get(key)) for key, _ in found.columns]) for row in found.rows)
    response = StreamingHttpResponse(
        itertools.chain([writer.writerow(header)], lines), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, str) and value.lstrip(" ")[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # not a formula in a spreadsheet (OWASP's triggers; a spreadsheet may skip spaces first)
    return value


@login_required
def team_compliance(request: HttpRequest, slug: str) -> HttpResponse:
    """Every change the team merged in the period with its verdict at merge: the drill-down list of merges."""
    team = _team_or_404(request, slug)
    try:
        scope = _scope(request, team)
    except ScopeInvalid as error:
        return _scope_refused(request, team, error)
    return redirect(_pulls_url(team, scope, metric="merged"))


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
        # Only what the pull request page will open for them: their own change in another team's repository is not.
        mine = rows_within(my_open_pull_requests(person=person), visible_team_ids(request))
        context["mine"] = list(mine[:MINE_SHOWN])
        context["waiting"] = waiting_on(person=person)
    return render(request, "reviews/me.html", context)
