"""A stored verdict's trace (`Trace.to_dict()`, or an override's) as Markdown: what a GitHub check run shows
under "Details". Each rule, satisfied or not, and why; which approvals counted and which did not; what blocks it;
what Tandem is still waiting to know. The same facts, in the same words, as the pull request's page.

Pure: a dict in, text out. Everything that came from a person or a provider is escaped, so a rule's name or a login
cannot turn into a link or markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_STATE_MARKS = {
    "satisfied": "✅",
    "skipped": "➖",
    "pending": "⏳",
    "blocked": "❌",
}
_OUTCOME_WORDS = {
    "approved": "✅ **Approved**",
    "overridden": "⚠️ **Overridden**",
    "pending": "⏳ **Not yet**",
    "blocked": "❌ **Blocked**",
    "error": "❌ **Error**",
}
# What could make markup, a link, an HTML tag or entity, or a mention out of text: the rest is left readable.
_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~@&])")


def md(text: object) -> str:
    """Text shown as itself: Markdown's special characters escaped, lines joined."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def trace_markdown(trace: Mapping[str, Any], *, page_url: str = "") -> str:
    lines = [
        f"{_OUTCOME_WORDS.get(str(trace.get('outcome')), md(trace.get('outcome', '')))}: {md(trace.get('summary', ''))}"
    ]
    override = trace.get("override")
    if isinstance(override, Mapping):
        lines += ["", _override(override)]
    ended = trace.get("override_ended")
    if isinstance(ended, Mapping) and ended.get("why"):
        lines += ["", md(ended["why"])]
    unknown = trace.get("unknown")
    if isinstance(unknown, Mapping) and unknown:
        lines += ["", "### Waiting for what Tandem does not know yet", ""]
        lines += [f"- {md(fact)}: {md(why)}" for fact, why in unknown.items()]
    rules = trace.get("rules")
    if isinstance(rules, list) and rules:
        lines += ["", "### Rules", ""]
        for rule in rules:
            if isinstance(rule, Mapping):
                lines += _rule(rule, depth=0)
    blocking = [item for item in trace.get("blocking_reviews") or [] if isinstance(item, Mapping)]
    if blocking:
        who = ", ".join(md(item.get("login", "someone")) for item in blocking)
        lines += ["", f"❌ Blocked by changes requested: {who}."]
    checks = [item for item in trace.get("checks") or [] if isinstance(item, Mapping)]
    if checks:
        lines += ["", "### Required checks", ""]
        lines += [
            f"- {_check_mark(check)} {md(check.get('context', ''))}: {md(check.get('state', ''))}" for check in checks
        ]
    risk = trace.get("risk")
    if isinstance(risk, Mapping) and risk.get("reason"):
        lines += ["", f"**Risk:** {md(risk['reason'])}"]
    if page_url:
        lines += ["", f"[Every reason on Tandem's page for this pull request]({page_url})"]
    return "\n".join(lines) + "\n"


def _rule(rule: Mapping[str, Any], *, depth: int) -> list[str]:
    indent = "  " * depth
    state = str(rule.get("state", ""))
    mark = _STATE_MARKS.get(state, "•")
    lines = [f"{indent}- {mark} **{md(rule.get('name', ''))}** ({md(state)}): {md(rule.get('reason', ''))}"]
    counted = [item for item in rule.get("approvals_counted") or [] if isinstance(item, Mapping)]
    if counted:
        names = ", ".join(_approval(item) for item in counted)
        lines.append(f"{indent}  - Counted: {names}")
    discarded = [item for item in rule.get("approvals_discarded") or [] if isinstance(item, Mapping)]
    if discarded:
        names = ", ".join(f"{md(item.get('login', 'someone'))} ({md(item.get('reason', ''))})" for item in discarded)
        lines.append(f"{indent}  - Not counted: {names}")
    missing = [item for item in rule.get("missing") or [] if isinstance(item, str)]
    if missing and state != "satisfied":
        lines.append(f"{indent}  - Missing: {'; '.join(md(item) for item in missing)}")
    for child in rule.get("children") or []:
        if isinstance(child, Mapping):
            lines += _rule(child, depth=depth + 1)
    return lines


def _approval(item: Mapping[str, Any]) -> str:
    name = md(item.get("login", "someone"))
    if item.get("via") == "pairing":
        return f"{name} (pairing)"
    return name


def _check_mark(check: Mapping[str, Any]) -> str:
    state = check.get("state")
    return "✅" if state == "success" else "❌" if state in ("failure", "error") else "⏳"


def _override(override: Mapping[str, Any]) -> str:
    text = f"Overridden by {md(override.get('by', 'someone'))}: “{md(override.get('reason', ''))}”"
    if override.get("incident_reference"):
        text += f" for {md(override['incident_reference'])}"
    if override.get("followup_due_at"):
        text += f"; follow-up review due {md(str(override['followup_due_at'])[:16])}"
    return text + "."
