"""The trace as a check run shows it: every rule, satisfied or not and why, in Markdown that text from people and
providers cannot break out of."""

from __future__ import annotations

import datetime as dt

import reviews.policy as policy
from reviews.policy.markdown import trace_markdown

NOW = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def _trace(document: str, *, reviews: tuple[policy.ReviewRef, ...] = ()) -> dict:
    author = policy.PersonRef("1", frozenset({"ada"}))
    snapshot = policy.Snapshot(
        head_sha="abc", now=NOW, author=author, files=(policy.FileChange("payments/charge.py"),), reviews=reviews
    )
    return policy.evaluate(snapshot, policy.parse_policy(document)).to_dict()


def test_each_rule_is_listed_with_its_state_and_why():
    document = (
        "rules:\n"
        "  - name: payments needs two\n    if: {paths: ['payments/**']}\n    require: {approvals: 2}\n"
        "  - name: docs\n    if: {paths: ['docs/**']}\n    require: {approvals: 1}\n"
    )
    bob = policy.PersonRef("2", frozenset({"bob"}))
    trace = _trace(document, reviews=(policy.ReviewRef("r1", bob, "approved", "abc", NOW),))

    text = trace_markdown(trace, page_url="https://tandem.example.com/pulls/7/")

    assert text.startswith("⏳ **Not yet**: ")
    assert "- ⏳ **payments needs two** (pending): " in text
    assert "  - Counted: bob" in text
    assert "- ➖ **docs** (skipped): Skipped: " in text
    assert "[Every reason on Tandem's page for this pull request](https://tandem.example.com/pulls/7/)" in text


def test_names_cannot_make_links_or_markup():
    trace = _trace("rules:\n  - name: '[click](https://evil.example) <b>x</b> @team'\n    require: {approvals: 1}\n")

    text = trace_markdown(trace)

    assert "\\[click\\](https://evil.example) \\<b\\>x\\</b\\> \\@team" in text
    assert "[click](" not in text and "<b>" not in text


def test_an_override_says_who_and_why():
    trace = {
        "outcome": "overridden",
        "summary": "Overridden by Dana: hotfix",
        "override": {
            "by": "Dana",
            "reason": "hotfix",
            "incident_reference": "INC-7",
            "followup_due_at": "2024-05-03T10:00:00+00:00",
        },
    }
    text = trace_markdown(trace)
    assert "Overridden by Dana: “hotfix” for INC-7; follow-up review due 2024-05-03T10:00." in text
