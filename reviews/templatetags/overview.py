"""How a figure moved against the previous period, in words and an arrow (colour alone never carries it)."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def trend(now: float | None, before: float | None, unit: str = "", lower_is_better: bool = False) -> SafeString:
    """ "▲ up from 3.2 h, worse" and the like; nothing to compare (either side unknown) says so."""
    if now is None or before is None:
        return format_html('<span class="trend muted">no figure to compare</span>')
    if now == before:
        return format_html('<span class="trend muted">= same as before</span>')
    up = now > before
    better = up != lower_is_better
    return format_html(
        '<span class="trend {}">{} {} from {}{}, {}</span>',
        "good" if better else "bad",
        "▲" if up else "▼",
        "up" if up else "down",
        f"{before:g}",
        unit,
        "better" if better else "worse",
    )
