"""Template filters for words a person reads: counts with the right plural, and times in the viewer's words.

Times are shown relative to now ("3 hours ago", "in 2 days"; a date for anything a week or more away), with the
exact moment in the viewer's time zone as a tooltip. The zone is the one `reviews.middleware.ViewerTimezone`
activated from the browser's; Tandem's own (UTC) until the browser has said.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

from reviews.words import counted as counted_words
from reviews.words import plural

register = template.Library()

_RELATIVE_WITHIN = dt.timedelta(days=7)


@register.filter
def counted(count: int | float | None, noun: str) -> str:
    """`{{ n|counted:"file" }}`: "1 file", "2 files"."""
    return counted_words(count or 0, noun)


@register.filter
def plural_of(count: int | float | None, noun: str) -> str:
    """`{{ n }} {{ n|plural_of:"incident" }}`: the noun alone, as it goes with n."""
    return plural(noun, count or 0)


def moment_words(moment: dt.datetime, now: dt.datetime | None = None) -> str:
    """A moment as a person says it: "just now", "3 hours ago", "in 2 days", "on Tue 4 Mar", "on 4 Mar 2024"."""
    now = now or timezone.now()
    local = timezone.localtime(moment)
    gap = now - moment
    if abs(gap) < dt.timedelta(minutes=1):
        return "just now"
    if dt.timedelta(0) < gap < _RELATIVE_WITHIN:
        return f"{timesince(moment, now, depth=1)} ago"
    if dt.timedelta(0) < -gap < _RELATIVE_WITHIN:
        return f"in {timeuntil(moment, now, depth=1)}"
    if local.year == timezone.localtime(now).year:
        return f"on {local:%a} {local.day} {local:%b}"
    return f"on {local.day} {local:%b %Y}"


def moment_exact(moment: dt.datetime) -> str:
    """The moment in the viewer's zone: "Tue 4 Mar 2025, 14:05 CET"."""
    local = timezone.localtime(moment)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


@register.filter
def when(moment: dt.datetime | None) -> SafeString | str:
    """`{{ pr.merged_at|when }}`: the moment in words, with the exact time in the viewer's zone on hover."""
    if moment is None:
        return "—"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', moment.isoformat(), moment_exact(moment), moment_words(moment)
    )


@register.filter
def exact(moment: dt.datetime | None) -> str:
    """`{{ incident.started_at|exact }}`: "Tue 4 Mar 2025, 14:05 CET" in the viewer's zone."""
    return "—" if moment is None else moment_exact(moment)


@register.filter
def urlencode_pairs(query: dict[str, str]) -> str:
    """A dict of query parameters as a query string (for links that keep a period)."""
    return urlencode(query)


@register.simple_tag
def trend_mark(found: object) -> SafeString | str:
    """A figure's move against the previous period: colour, arrow and a word ("▲ worse 38%"), or nothing."""
    if found is None:
        return ""
    return format_html('<span class="{}">{}</span>', found.css, str(found))  # type: ignore[attr-defined]


@register.filter
def get_item(mapping: dict[str, object], key: str) -> object:
    return mapping.get(key)
