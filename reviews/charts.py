"""Server-rendered SVG charts: no JavaScript, no build step. Each returns safe markup for a template."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2f6fde", "#f2a93b", "#d9534f", "#5cb85c", "#8e6fd1")


def bar_chart(
    points: Sequence[tuple[str, float | None]],
    *,
    unit: str = "",
    width: int = 560,
    height: int = 160,
    title: str = "",
    links: Sequence[str] | None = None,
) -> SafeString:
    """Vertical bars with their value above and label below; a missing value (None) leaves a gap. `links`: where
    each bar leads (the pull requests it counts)."""
    values = [value for _, value in points if value is not None]
    top = max(values, default=0) or 1
    slot = width / max(len(points), 1)
    bar = slot * 0.7
    plot = height - 36
    parts = [
        format_html(
            '<svg class="chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" aria-label="{}">',
            width,
            height,
            width,
            height,
            title,
        ),
        format_html("<title>{}</title>", title),
    ]
    for index, (label, value) in enumerate(points):
        x = index * slot + (slot - bar) / 2
        if value is not None:
            h = max(plot * value / top, 1)
            y = 18 + plot - h
            rect = format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}{}</title></rect>',
                _f(x),
                _f(y),
                _f(bar),
                _f(h),
                PALETTE[0],
                label,
                _number(value),
                unit,
            )  # fmt: skip
            parts.append(_linked(rect, links[index] if links else None))
            parts.append(
                format_html(
                    '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
                    _f(x + bar / 2),
                    _f(y - 3),
                    _number(value),
                )  # fmt: skip
            )
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
                _f(x + bar / 2),
                height - 4,
                label,
            )  # fmt: skip
        )
    parts.append(mark_safe("</svg>"))  # noqa: S308 - a constant
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every piece above is escaped


def stacked_bar(
    parts: Sequence[tuple[str, int]],
    *,
    width: int = 560,
    height: int = 28,
    title: str = "",
    links: Sequence[str] | None = None,
) -> SafeString:
    """One horizontal bar split into parts (e.g. reviewed / paired only / neither), with a legend. `links`: where
    each part leads (the pull requests it counts)."""
    total = sum(value for _, value in parts) or 1
    x = 0.0
    shapes, legend = [], []
    for index, (label, value) in enumerate(parts):
        w = width * value / total
        colour = PALETTE[index % len(PALETTE)]
        link = links[index] if links else None
        rect = format_html(
            '<rect x="{}" y="0" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
            _f(x),
            _f(w),
            height,
            colour,
            label,
            value,
        )  # fmt: skip
        shapes.append(_linked(rect, link))
        key = format_html('<span class="key" style="background:{}"></span>{} {}', colour, label, value)
        legend.append(format_html('<a class="drill" href="{}">{}</a>', link, key) if link else key)
        x += w
    svg = format_html(
        '<svg class="chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" aria-label="{}"><title>{}</title>',
        width, height, width, height, title, title,
    )  # fmt: skip
    body = "".join(str(shape) for shape in shapes)
    return mark_safe(f'{svg}{body}</svg><div class="legend">{" ".join(str(item) for item in legend)}</div>')  # noqa: S308


def _linked(shape: SafeString, link: str | None) -> SafeString:
    return format_html('<a href="{}">{}</a>', link, shape) if link else shape


def _f(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    return escape(f"{value:g}" if float(value).is_integer() else f"{value:.1f}")
