"""Charts a screen reader can read: a text alternative, the values as a table, labelled axes, partial weeks and
working-agreement targets said in words."""

from __future__ import annotations

import datetime as dt

from django.utils import html as django_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy

from reviews import charts
from reviews.charts import Bar, Target, bar_chart, stacked_bar
from reviews.team_charts import weeks_axis


def test_bar_chart_has_its_values_as_a_table_a_toggle_and_a_text_alternative():
    svg = bar_chart(
        [Bar("2 Mar", 4.5, name="week of 2026-03-02"), Bar("9 Mar", None), Bar("16 Mar", 2, partial=True)],
        title="Median pickup per week",
        x_label="Week of merge, starting Monday, 2026",
        y_label="Median pickup",
        unit=" h",
    )
    assert 'role="img"' in svg
    assert (
        'aria-label="Median pickup per week. 3 bars from week of 2026-03-02 to 16 Mar; lowest 2 h, highest 4.5 h' in svg
    )
    table = svg[svg.index('<div class="sr-only"><table>') :].split("</table>")[0]
    assert "<caption>Median pickup per week</caption>" in table
    assert '<th scope="row">week of 2026-03-02</th><td>4.5 h</td>' in table
    assert '<th scope="row">9 Mar</th><td>no value</td>' in table
    assert '<th scope="row">16 Mar*</th><td>2 h</td>' in table
    assert "<details" in svg and "<summary>Show as table</summary>" in svg
    assert ">Week of merge, starting Monday, 2026</text>" in svg
    assert ">Median pickup (h)</text>" in svg
    assert "* a partial week" in svg  # the legend says what the star means
    assert 'fill-opacity="0.45"' in svg


def test_no_partial_week_no_star_in_the_legend():
    svg = bar_chart([Bar("2 Mar", 1)], title="t", x_label="x", y_label="y")
    assert "partial week" not in svg


def test_a_working_agreement_is_a_line_named_in_the_legend():
    svg = bar_chart(
        [Bar("2 Mar", 4), Bar("9 Mar", 30)],
        title="t",
        x_label="x",
        y_label="y",
        unit=" h",
        target=Target(24, "agreement: first review within 24 h"),
    )
    assert '<line class="target"' in svg
    assert "<title>agreement: first review within 24 h</title>" in svg
    assert 'class="legend"><span class="key target-key" aria-hidden="true"></span>agreement: first review' in svg


def test_labels_are_escaped():
    svg = bar_chart([Bar("<b>", 1)], title="<script>", x_label="x", y_label="y")
    assert "<script>" not in svg and "<b>" not in svg and "&lt;b&gt;" in svg


def test_a_chart_whose_bars_are_links_is_a_group_of_named_links_not_an_image():
    # An image's content is presentational: links inside role="img" are lost to assistive technology.
    linked = bar_chart([Bar("2 Mar", 4, link="/teams/t/pulls/?metric=merged")], title="t", x_label="x", y_label="y")
    assert 'role="group"' in linked and 'role="img"' not in linked
    assert '<a href="/teams/t/pulls/?metric=merged" aria-label="2 Mar: 4">' in linked
    stacked = stacked_bar([("reviewed", 3)], title="Coverage", links=["/r"])
    assert 'role="group"' in stacked and '<a href="/r" aria-label="reviewed 3">' in stacked


def test_stacked_bar_has_a_table_too():
    svg = stacked_bar([("reviewed", 3), ("neither", 1)], title="Coverage")
    assert '<th scope="row">reviewed</th><td>3</td>' in svg
    assert 'aria-label="Coverage. reviewed 3; neither 1"' in svg


def test_the_weeks_axis_names_the_year_and_both_years_across_new_year():
    weeks = [{"week": dt.date(2025, 12, 29)}, {"week": dt.date(2026, 1, 5)}]
    assert weeks_axis(weeks) == "Week of merge, starting Monday, 2025–2026"
    assert weeks_axis(weeks[1:]) == "Week of merge, starting Monday, 2026"


# The charts format their markup with their own `format_html` (Django's, without its lazy wrappers: a page's charts
# escape a few hundred values). The same markup as Django's, on every kind of value and on whole charts.
_VALUES = (
    "plain",
    "<b>&'\"</b>",
    mark_safe("<i>safe</i>"),  # noqa: S308 - a test constant
    0,
    -1.5,
    3.0,
    None,
    gettext_lazy("lazy <text>"),
    dt.date(2026, 3, 2),
)


def test_the_charts_format_html_is_djangos():
    for value in _VALUES:
        ours = charts.format_html('<a title="{}">{}</a>', value, value)
        assert ours == django_html.format_html('<a title="{}">{}</a>', value, value)
        assert isinstance(ours, SafeString)
    rows = [(value, "x&y") for value in _VALUES]
    assert charts.format_html_join(" & ", "<td>{}</td><td>{}</td>", rows) == django_html.format_html_join(
        " & ", "<td>{}</td><td>{}</td>", rows
    )


_CHARTS = {
    "empty": lambda: bar_chart([], title="Nothing", x_label="x", y_label="y"),
    "one bar": lambda: bar_chart([Bar("2 Mar", 1)], title="One", x_label="x", y_label="y", unit=" h"),
    "ties, gaps, partial weeks, links and a target": lambda: bar_chart(
        [
            Bar("2 Mar", 4.5, partial=True, name="week of 2026-03-02 (3.5 days)", link="/t/?a=1&b=<2>"),
            Bar("9 Mar", None, link="/t/?a=2"),
            Bar("16 Mar", 4.5, link="/t/?a=3"),
            Bar("23 Mar", 0, partial=True),
            Bar("<30 Mar>", 1234567.25, name='"quoted" & <tagged>'),
        ],
        title="Median <pickup> & more",
        x_label="Week of merge, starting Monday, 2026",
        y_label="Median pickup",
        unit=" h",
        target=Target(24, "agreement: first review within 24 h <b>"),
    ),
    "all None": lambda: bar_chart([Bar("a", None), Bar("b", None)], title="None", x_label="x", y_label="y", unit="%"),
    "a divider": lambda: bar_chart(
        [Bar(name, n, name=f"{name}: lines") for name, n in (("xs", 3), ("s", 0), ("m", 7), ("l", 7), ("xl", 1))],
        title="By size",
        x_label="Size",
        y_label="Pull requests",
        divider=Target(2.5, "agreement: at most 250 changed lines"),
    ),
    "stacked": lambda: stacked_bar(
        [("reviewed", 3), ("paired only", 0), ("neither <x>", 1)],
        title="Coverage & more",
        unit_words="merged pull requests",
        links=["/r?a=1&b=2", "/p", "/n"],
    ),
    "stacked, empty": lambda: stacked_bar([("reviewed", 0), ("neither", 0)], title="Coverage"),
}


def test_every_chart_is_the_markup_djangos_format_html_gives(monkeypatch):
    ours = {name: str(build()) for name, build in _CHARTS.items()}
    monkeypatch.setattr(charts, "format_html", django_html.format_html)
    monkeypatch.setattr(charts, "format_html_join", django_html.format_html_join)
    monkeypatch.setattr(charts, "_number", _djangos_number)
    for name, build in _CHARTS.items():
        assert ours[name] == str(build()), name


def _djangos_number(value: float) -> str:
    return django_html.escape(f"{value:g}" if float(value).is_integer() else f"{value:.1f}")
