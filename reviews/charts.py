"""Server-rendered SVG charts: no JavaScript, no build step. Each returns safe markup for a template.

Every chart is readable without its picture: the SVG's text alternative says what it shows, its values are a
table for screen readers (visually hidden), and a "Show as table" toggle (<details>) shows the same table to
everyone. Axes are labelled; a partial week is starred and drawn lighter, and the legend says what * means; a
working-agreement target is a dashed line, named in the legend.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2f6fde", "#b36b00", "#c62828", "#2e7d32", "#7b5cc4")
TARGET_COLOUR = "#a3261e"
TEXT_COLOUR = "#1d2330"
PARTIAL_NOTE = "* a partial week: only part of it is in the period (drawn lighter)"


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar (short: "2 Mar")
    value: float | None  # None: nothing to measure, a gap
    partial: bool = False  # starred and lighter
    name: str = ""  # in the table and the tooltip (long: "week of 2026-03-02"); the label when empty
    link: str = ""  # where the bar leads: the pull requests it counts


@dataclass(frozen=True)
class Target:
    value: float
    words: str  # "agreement: first review within 24 h"


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    x_label: str,
    y_label: str,
    unit: str = "",
    target: Target | None = None,
    divider: Target | None = None,
    width: int = 560,
    height: int = 200,
) -> SafeString:
    """Vertical bars with their value above and label below, a y axis from 0, and the target as a line. A divider
    is a target on the other axis: a vertical line at `value` bars from the left (1.5: the middle of the second)."""
    left, right, top_margin, bottom = 46, 10, 16, 40
    plot_w, plot_h = width - left - right, height - top_margin - bottom
    values = [bar.value for bar in bars if bar.value is not None]
    top = max([*values, target.value if target else 0], default=0) or 1
    slot = plot_w / max(len(bars), 1)
    bar_w = slot * 0.7

    def y_of(value: float) -> float:
        return top_margin + plot_h - plot_h * value / top

    linked = any(bar.link and bar.value is not None for bar in bars)
    parts = [_svg_open(width, height, title, _summary(bars, unit, target, divider), linked=linked)]
    parts.append(_axes(left, top_margin, plot_w, plot_h, top, unit, x_label, y_label, width, height))
    for index, bar in enumerate(bars):
        x = left + index * slot + (slot - bar_w) / 2
        label = bar.label + ("*" if bar.partial else "")
        if bar.value is not None:
            y = min(y_of(bar.value), top_margin + plot_h - 1)
            parts.append(
                _linked(
                    format_html(
                        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"{}><title>{}: {}{}</title></rect>'
                        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{}">{}</text>',
                        _f(x),
                        _f(y),
                        _f(bar_w),
                        _f(top_margin + plot_h - y),
                        PALETTE[0],
                        mark_safe(' fill-opacity="0.45"') if bar.partial else "",  # noqa: S308 - a constant
                        bar.name or label,
                        _number(bar.value),
                        unit,
                        _f(x + bar_w / 2),
                        _f(y - 3),
                        TEXT_COLOUR,
                        _number(bar.value),
                    ),  # fmt: skip
                    bar.link,
                    f"{bar.name or label}: {_number(bar.value)}{unit}",
                )
            )
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{}">{}</text>',
                _f(x + bar_w / 2),
                top_margin + plot_h + 13,
                TEXT_COLOUR,
                label,
            )  # fmt: skip
        )
    if target is not None:
        y = y_of(target.value)
        parts.append(
            format_html(
                '<line class="target" x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="1.5" '
                'stroke-dasharray="6 4"><title>{}</title></line>',
                left,
                left + plot_w,
                _f(y),
                _f(y),
                TARGET_COLOUR,
                target.words,
            )  # fmt: skip
        )
    if divider is not None:
        x = left + divider.value * slot
        parts.append(
            format_html(
                '<line class="target" x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="1.5" '
                'stroke-dasharray="6 4"><title>{}</title></line>',
                _f(x),
                _f(x),
                top_margin,
                _f(top_margin + plot_h),
                TARGET_COLOUR,
                divider.words,
            )  # fmt: skip
        )
    parts.append(mark_safe("</svg>"))  # noqa: S308 - a constant
    legend = _legend(partial=any(bar.partial for bar in bars), target=target or divider)
    rows = [(bar.name or bar.label + ("*" if bar.partial else ""), _value_words(bar.value, unit)) for bar in bars]
    return _joined([*parts, legend, _tables(title, (x_label, y_label), rows)])


def stacked_bar(
    parts: Sequence[tuple[str, int]],
    *,
    title: str,
    width: int = 560,
    height: int = 28,
    unit_words: str = "",
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
        link = links[index] if links else ""
        rect = format_html(
            '<rect x="{}" y="0" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
            _f(x),
            _f(w),
            height,
            colour,
            label,
            value,
        )  # fmt: skip
        shapes.append(_linked(rect, link, f"{label} {value}"))
        key = format_html('<span class="key" style="background:{}"></span>{} {}', colour, label, value)
        legend.append(format_html('<a class="drill" href="{}">{}</a>', link, key) if link else key)
        x += w
    summary = "; ".join(f"{label} {value}" for label, value in parts)
    svg = _svg_open(width, height, title, summary, linked=bool(links))
    keys = format_html('<div class="legend">{}</div>', mark_safe(" ".join(str(item) for item in legend)))  # noqa: S308
    rows = [(label, str(value)) for label, value in parts]
    return _joined([svg, *shapes, mark_safe("</svg>"), keys, _tables(title, ("", unit_words or "count"), rows)])  # noqa: S308


def _svg_open(width: int, height: int, title: str, summary: str, *, linked: bool = False) -> SafeString:
    """The SVG's text alternative: what it shows and its values in words. A chart whose shapes are links is a
    group, not an image: an image's content is presentational, so links inside one are lost to assistive
    technology (axe: nested-interactive)."""
    return format_html(
        '<svg class="chart" role="{}" viewBox="0 0 {} {}" width="{}" height="{}" aria-label="{}"><title>{}</title>',
        "group" if linked else "img", width, height, width, height, f"{title}. {summary}", title,
    )  # fmt: skip


def _axes(
    left: int,
    top_margin: int,
    plot_w: float,
    plot_h: float,
    top: float,
    unit: str,
    x_label: str,
    y_label: str,
    width: int,
    height: int,
) -> SafeString:
    bottom_y = top_margin + plot_h
    ticks = []
    for fraction in (0, 0.5, 1):
        y = bottom_y - plot_h * fraction
        ticks.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#d5d9e0"/>'
                '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="{}">{}</text>',
                left,
                _f(left + plot_w),
                _f(y),
                _f(y),
                left - 4,
                _f(y + 3),
                TEXT_COLOUR,
                _number(top * fraction),
            )  # fmt: skip
        )
    return format_html(
        '<g class="axes">{}<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"/>'
        '<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="{}">{}</text>'
        '<text transform="translate(11 {}) rotate(-90)" font-size="11" text-anchor="middle" fill="{}">{}</text></g>',
        format_html_join("", "{}", ((tick,) for tick in ticks)),
        left, _f(left + plot_w), _f(bottom_y), _f(bottom_y), TEXT_COLOUR,
        _f(left + plot_w / 2), height - 4, TEXT_COLOUR, x_label,
        _f(top_margin + plot_h / 2), TEXT_COLOUR, y_label + (f" ({unit.strip()})" if unit.strip() else ""),
    )  # fmt: skip


def _legend(*, partial: bool, target: Target | None) -> SafeString:
    items = []
    if target is not None:
        items.append(format_html('<span class="key target-key" aria-hidden="true"></span>{}', target.words))
    if partial:
        items.append(format_html("<span>{}</span>", PARTIAL_NOTE))
    if not items:
        return mark_safe("")  # noqa: S308 - a constant
    return format_html('<div class="legend">{}</div>', format_html_join(" ", "{}", ((item,) for item in items)))


def _tables(title: str, headers: tuple[str, str], rows: Sequence[tuple[str, str]]) -> SafeString:
    """The values twice: a table for screen readers, and the same one behind "Show as table" for the eye (hidden
    from screen readers, who have the first). The first is wrapped: a table is never narrower than its content,
    so a visually hidden table itself would still widen the page on a phone."""
    head = format_html('<tr><th scope="col">{}</th><th scope="col">{}</th></tr>', headers[0] or "part", headers[1])
    body = format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows)
    return format_html(
        '<div class="sr-only"><table><caption>{}</caption><thead>{}</thead><tbody>{}</tbody></table></div>'
        '<details class="chart-table"><summary>Show as table</summary><div class="scroll">'
        '<table aria-hidden="true"><thead>{}</thead><tbody>{}</tbody></table></div></details>',
        title, head, body, head, body,
    )  # fmt: skip


def _summary(bars: Sequence[Bar], unit: str, target: Target | None, divider: Target | None = None) -> str:
    known = [bar.value for bar in bars if bar.value is not None]
    if not known:
        return "No values in this period."
    words = f"{len(bars)} bars from {bars[0].name or bars[0].label} to {bars[-1].name or bars[-1].label}; "
    words += f"lowest {_number(min(known))}{unit}, highest {_number(max(known))}{unit}"
    for line in (target, divider):
        if line is not None:
            words += f"; {line.words}"
    return words + ". Values in the table that follows."


def _value_words(value: float | None, unit: str) -> str:
    return "no value" if value is None else f"{_number(value)}{unit}"


def _joined(parts: Sequence[object]) -> SafeString:
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every piece above is escaped


def _f(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    return mark_safe(html.escape(f"{value:g}" if float(value).is_integer() else f"{value:.1f}"))  # noqa: S308


def _escaped(value: object) -> str:
    """`django.utils.html.conditional_escape` without its lazy wrapper (a chart escapes a few hundred values): the
    same text, markup as it is, anything else through `html.escape` of its `str`, as `escape` does."""
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return html.escape(str(value))


def format_html(format_string: str, *args: object) -> SafeString:
    """`django.utils.html.format_html` (positional arguments), with `_escaped`: the same markup, cheaper."""
    return mark_safe(format_string.format(*map(_escaped, args)))  # noqa: S308 - every argument escaped


def format_html_join(sep: str, format_string: str, args_generator: Iterable[Sequence[object]]) -> SafeString:
    """`django.utils.html.format_html_join` with this module's `format_html`."""
    return mark_safe(_escaped(sep).join(format_html(format_string, *args) for args in args_generator))  # noqa: S308


def _linked(shape: SafeString, link: str, name: str) -> SafeString:
    return format_html('<a href="{}" aria-label="{}">{}</a>', link, name, shape) if link else shape
