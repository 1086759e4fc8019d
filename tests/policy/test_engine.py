"""evaluate(): predicates, requirements, options, discarded-approval reasons, outcomes and summaries."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pytest

from reviews.policy import (
    DEFAULT_POLICY,
    CommitRef,
    FileChange,
    PersonRef,
    RiskSignalRef,
    RuleTrace,
    Snapshot,
    SnapshotError,
    Trace,
    approvals_that_count,
    counted_approvals,
    evaluate,
    unknown_contributors,
)
from reviews.policy.engine import REBASE_UNKNOWN, STALE
from tests.policy.builders import (
    ADA,
    BOB,
    BOT,
    CY,
    DEE,
    HEAD,
    NOW,
    OLD,
    commit,
    files,
    one_rule,
    paired,
    person,
    policy,
    review,
    snapshot,
)


def only_rule(trace: Trace) -> RuleTrace:
    assert len(trace.rules) == 1
    return trace.rules[0]


def discarded_reasons(rule: RuleTrace) -> dict[str, str]:
    return {item.login: item.reason for item in rule.approvals_discarded}


def counted_logins(rule: RuleTrace) -> list[str]:
    return [approval.login for approval in rule.approvals_counted]


def incident(*prefixes: str, days_ago: float = 2, service: str = "payments-api") -> RiskSignalRef:
    return RiskSignalRef(
        path_prefixes=prefixes,
        service=service,
        occurred_at=NOW - dt.timedelta(days=days_ago),
        reference="pagerduty:P1",
    )


# Predicates: each `if` either applies the rule (it is then evaluated: approvals: 0 is satisfied) or skips it.

PREDICATES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("glob under a directory", '{paths: ["payments/**"]}', {"files": files("payments/api.py")}, True),
    ("glob elsewhere", '{paths: ["payments/**"]}', {"files": files("web/app.js")}, False),
    ("glob does not match a sibling prefix", '{paths: ["payments/**"]}', {"files": files("payments2/x.py")}, False),
    ("extension glob at any depth", '{paths: ["*.md"]}', {"files": files("docs/guide/intro.md")}, True),
    ("dir/* matches direct children", '{paths: ["docs/*"]}', {"files": files("docs/a.md")}, True),
    ("dir/* does not reach deeper", '{paths: ["docs/*"]}', {"files": files("docs/sub/a.md")}, False),
    ("regex path", '{paths: ["re:^payments/.*\\\\.py$"]}', {"files": files("payments/api.py")}, True),
    ("regex path no match", '{paths: ["re:^payments/.*\\\\.py$"]}', {"files": files("payments/api.go")}, False),
    ("regex list form", '{paths: {regex: ["^infra/"]}}', {"files": files("infra/main.tf")}, True),
    ("glob list form", '{paths: {glob: ["infra/**"]}}', {"files": files("web/x")}, False),
    (
        "a rename out of the path counts",
        '{paths: ["payments/**"]}',
        {"files": (FileChange("ledger/api.py", previous_path="payments/api.py"),)},
        True,
    ),
    ("not_paths: docs-only change skips", '{not_paths: ["docs/**", "*.md"]}', {"files": files("docs/a.md")}, False),
    ("not_paths: a code file applies", '{not_paths: ["docs/**"]}', {"files": files("docs/a.md", "src/a.py")}, True),
    (
        "paths minus not_paths",
        '{paths: ["payments/**"], not_paths: ["payments/tests/**"]}',
        {"files": files("payments/tests/test_api.py")},
        False,
    ),
    ("base branch", '{base_branches: ["main"]}', {"base_ref": "main"}, True),
    ("other base branch", '{base_branches: ["main"]}', {"base_ref": "develop"}, False),
    ("base branch glob", '{base_branches: ["release/*"]}', {"base_ref": "release/2024.5"}, True),
    ("base branch is not a path glob", '{base_branches: ["main"]}', {"base_ref": "feature/main"}, False),
    ("label present, any case", "{labels: [Hotfix, security]}", {"labels": ("hotfix",)}, True),
    ("label absent", "{labels: [security]}", {"labels": ("docs",)}, False),
    ("author in team", "{author_in_teams: [payments]}", {"author": BOB}, True),
    ("author in team, org/team spelling", '{author_in_teams: ["@acme/payments"]}', {"author": BOB}, True),
    ("author not in team", "{author_in_teams: [payments]}", {"author": CY}, False),
    ("no author is in no team", "{author_in_teams: [payments]}", {"author": None}, False),
    ("size over", "{size_over: 400}", {"changed_lines": 401}, True),
    ("size at the limit", "{size_over: 400}", {"changed_lines": 400}, False),
    ("unknown size counts as over", "{size_over: 400}", {"changed_lines": None}, True),
    ("draft: true on a draft", "{draft: true}", {"draft": True}, True),
    ("draft: false on a draft", "{draft: false}", {"draft": True}, False),
    ("draft: false on a ready PR", "{draft: false}", {"draft": False}, True),
    (
        "incident on a changed path within the window",
        "{touches_incident_within_days: 14}",
        {"files": files("payments/api.py"), "incident_paths": (incident("payments/", days_ago=3),)},
        True,
    ),
    (
        "incident too long ago",
        "{touches_incident_within_days: 14}",
        {"files": files("payments/api.py"), "incident_paths": (incident("payments", days_ago=20),)},
        False,
    ),
    (
        "incident on other paths",
        "{touches_incident_within_days: 14}",
        {"files": files("web/app.js"), "incident_paths": (incident("payments"),)},
        False,
    ),
    (
        "incident on the whole repository",
        "{touches_incident_within_days: 14}",
        {"files": files("web/app.js"), "incident_paths": (incident(),)},
        True,
    ),
    (
        "every predicate must hold",
        '{paths: ["payments/**"], labels: [security]}',
        {"files": files("payments/api.py"), "labels": ()},
        False,
    ),
    ("no if: always applies", "{}", {}, True),
]


@pytest.mark.parametrize(
    ("condition", "overrides", "applies"),
    [case[1:] for case in PREDICATES],
    ids=[case[0] for case in PREDICATES],
)
def test_rule_applies_only_when_its_if_holds(condition: str, overrides: dict[str, Any], applies: bool) -> None:
    trace = evaluate(snapshot(**overrides), one_rule("{approvals: 0}", when=condition))
    rule = only_rule(trace)
    if applies:
        assert rule.state != "skipped", rule.reason
    else:
        assert rule.state == "skipped"
        assert rule.reason.startswith("Skipped: ")


def test_skipped_reason_names_the_predicate() -> None:
    trace = evaluate(snapshot(files=files("web/app.js")), one_rule(when='{paths: ["payments/**"]}'))
    assert only_rule(trace).reason == "Skipped: no changed file matches payments/**."


def test_skipped_rules_do_not_block_or_hold_up_the_verdict() -> None:
    document = policy(
        """
        rules:
          - name: payments
            if: {paths: ["payments/**"]}
            require: {approvals: 2}
          - name: everything
            require: {approvals: 1}
        """
    )
    trace = evaluate(snapshot(reviews=(review(BOB),)), document)
    assert [rule.state for rule in trace.rules] == ["skipped", "satisfied"]
    assert trace.outcome == "approved"


# Requirements.

REQUIREMENTS: list[tuple[str, str, dict[str, Any], str, list[str]]] = [
    ("two approvals, one given", "{approvals: 2}", {"reviews": (review(BOB),)}, "pending", ["bob"]),
    ("two approvals given", "{approvals: 2}", {"reviews": (review(BOB), review(CY))}, "satisfied", ["bob", "cy"]),
    ("team member approves", "{teams: [payments]}", {"reviews": (review(BOB),)}, "satisfied", ["bob"]),
    ("org/team spelling", '{teams: ["@acme/payments"]}', {"reviews": (review(BOB),)}, "satisfied", ["bob"]),
    ("outsider approves for a team", "{teams: [payments]}", {"reviews": (review(CY),)}, "pending", []),
    ("named person approves", '{people: ["@CY"]}', {"reviews": (review(CY),)}, "satisfied", ["cy"]),
    ("someone else approves for a person", "{people: [cy]}", {"reviews": (review(BOB),)}, "pending", []),
    (
        "teams or people qualify",
        "{teams: [leads], people: [cy], approvals: 2}",
        {"reviews": (review(CY), review(DEE))},
        "satisfied",
        ["cy", "dee"],
    ),
    ("nothing required", "{approvals: 0}", {}, "satisfied", []),
]


@pytest.mark.parametrize(
    ("require", "overrides", "state", "counted"),
    [case[1:] for case in REQUIREMENTS],
    ids=[case[0] for case in REQUIREMENTS],
)
def test_requirements(require: str, overrides: dict[str, Any], state: str, counted: list[str]) -> None:
    rule = only_rule(evaluate(snapshot(**overrides), one_rule(require)))
    assert rule.state == state, rule.reason
    assert counted_logins(rule) == counted


PAYMENTS_OWNERS = "*  @cy\n/payments/ @acme/payments\n"


@pytest.mark.parametrize(
    ("approvers", "state", "missing"),
    [
        ((), "pending", ("needs 1 approval", "needs a code owner of payments/ (@acme/payments)")),
        ((CY,), "pending", ("needs a code owner of payments/ (@acme/payments)",)),
        ((BOB,), "satisfied", ()),
    ],
    ids=["nobody", "owner of other files only", "payments owner"],
)
def test_code_owners_of_every_changed_file_must_approve(approvers: tuple, state: str, missing: tuple) -> None:
    shot = snapshot(
        files=files("payments/api.py"),
        codeowners=PAYMENTS_OWNERS,
        reviews=tuple(review(approver) for approver in approvers),
    )
    rule = only_rule(evaluate(shot, one_rule("{approvals: 1, code_owners: true}")))
    assert (rule.state, rule.missing) == (state, missing)


def test_code_owners_needed_for_each_owning_rule() -> None:
    shot = snapshot(files=files("payments/api.py", "web/app.js"), codeowners=PAYMENTS_OWNERS, reviews=(review(BOB),))
    rule = only_rule(evaluate(shot, one_rule("{code_owners: true}")))
    assert rule.missing == ("needs a code owner of * (cy)",)
    shot = snapshot(
        files=files("payments/api.py", "web/app.js"), codeowners=PAYMENTS_OWNERS, reviews=(review(BOB), review(CY))
    )
    assert only_rule(evaluate(shot, one_rule("{code_owners: true}"))).state == "satisfied"


def test_code_owners_matched_by_email() -> None:
    owner = person("eve", email="eve@example.com")
    shot = snapshot(codeowners="src/ eve@example.com", reviews=(review(owner),))
    assert only_rule(evaluate(shot, one_rule("{code_owners: true}"))).state == "satisfied"


def test_code_owners_gitlab_section_needing_two() -> None:
    owners = "[Payments][2] @bob @cy\npayments/\n^[Docs] @dee\n*.md\n"
    bob_only = snapshot(
        files=files("payments/api.py", "payments/README.md"),
        codeowners=owners,
        codeowners_syntax="gitlab",
        reviews=(review(BOB),),
    )
    rule = only_rule(evaluate(bob_only, one_rule("{code_owners: true}")))
    assert rule.missing == ("needs 2 code owners of payments/ (bob, cy)",)
    both = snapshot(
        files=bob_only.files, codeowners=owners, codeowners_syntax="gitlab", reviews=(review(BOB), review(CY))
    )
    # The optional Docs section asks for nothing.
    assert only_rule(evaluate(both, one_rule("{code_owners: true}"))).state == "satisfied"


def test_code_owners_without_codeowners_file_asks_nothing() -> None:
    rule = only_rule(evaluate(snapshot(reviews=(review(BOB),)), one_rule("{approvals: 1, code_owners: true}")))
    assert rule.state == "satisfied"
    assert "no changed file has a required code owner" in rule.reason


@pytest.mark.parametrize(
    ("statuses", "rule_state", "outcome"),
    [
        ({"ci/build": "success"}, "satisfied", "approved"),
        ({"ci/build": "pending"}, "pending", "pending"),
        ({}, "pending", "pending"),
        ({"ci/build": "failure"}, "blocked", "blocked"),
        ({"ci/build": "error"}, "blocked", "blocked"),
    ],
)
def test_rule_checks(statuses: dict[str, str], rule_state: str, outcome: str) -> None:
    trace = evaluate(
        snapshot(statuses=statuses, reviews=(review(BOB),)), one_rule('{approvals: 1, checks: ["ci/build"]}')
    )
    assert only_rule(trace).state == rule_state
    assert trace.outcome == outcome
    assert [(check.context, check.required_by) for check in trace.checks] == [("ci/build", ("rule",))]


@pytest.mark.parametrize(
    ("statuses", "outcome", "summary"),
    [
        ({"ci/build": "success"}, "approved", "Approved: 1 of 1 approval"),
        ({"ci/build": "pending"}, "pending", "Waiting for ci/build"),
        ({}, "pending", "Waiting for ci/build"),
        ({"ci/build": "failure"}, "blocked", "ci/build failed"),
        ({"ci/build": "error"}, "blocked", "ci/build errored"),
    ],
)
def test_document_checks(statuses: dict[str, str], outcome: str, summary: str) -> None:
    document = one_rule(extra="checks: [ci/build]\n")
    trace = evaluate(snapshot(statuses=statuses, reviews=(review(BOB),)), document)
    assert (trace.outcome, trace.summary) == (outcome, summary)
    assert [(check.context, check.state) for check in trace.checks] == [
        ("ci/build", statuses.get("ci/build", "missing"))
    ]


FIX = "f" * 40


def web_flow_merge(clicked_by: PersonRef, previous_head: str, merged: str = "b" * 40) -> CommitRef:
    """What the "Update branch" button commits: authored by who clicked, committed and pushed by GitHub."""
    return replace(commit(clicked_by), pushed_by=clicked_by, parents=(previous_head, merged), via_web=True)


# Options.

OPTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    ("author may not approve", "{}", {"reviews": (review(ADA),)}, "pending"),
    ("author may approve when allowed", "{allow_author: true}", {"reviews": (review(ADA),)}, "satisfied"),
    (
        "commit author may not approve",
        "{}",
        {"commits": (commit(ADA), commit(BOB, sha=OLD)), "reviews": (review(BOB),)},
        "pending",
    ),
    ("co-author may not approve", "{}", {"commits": (commit(ADA, BOB),), "reviews": (review(BOB),)}, "pending"),
    (
        "contributors may approve when allowed",
        "{allow_contributors: true}",
        {"commits": (commit(ADA, BOB),), "reviews": (review(BOB),)},
        "satisfied",
    ),
    ("approval before a push is stale", "{}", {"reviews": (review(BOB, sha=OLD),)}, "pending"),
    (
        "approval kept after a pure rebase",
        "{}",
        {"reviews": (review(BOB, sha=OLD),), "diff_ids": {OLD: "diff-1", HEAD: "diff-1"}},
        "satisfied",
    ),
    (
        "approval stale after a push that changed the diff",
        "{}",
        {"reviews": (review(BOB, sha=OLD),), "diff_ids": {OLD: "diff-1", HEAD: "diff-2"}},
        "pending",
    ),
    (
        "keep_on_rebase: false drops even rebased approvals",
        "{keep_on_rebase: false}",
        {"reviews": (review(BOB, sha=OLD),), "diff_ids": {OLD: "diff-1", HEAD: "diff-1"}},
        "pending",
    ),
    (
        "invalidate_on_push: false keeps old approvals",
        "{invalidate_on_push: false}",
        {"reviews": (review(BOB, sha=OLD),)},
        "satisfied",
    ),
    (
        "an approval with no sha given after the last push stands",
        "{}",
        {"reviews": (review(BOB, sha=""),), "last_pushed_at": NOW - dt.timedelta(hours=2)},
        "satisfied",
    ),
    (
        "an approval with no sha given before the last push is stale",
        "{}",
        {"reviews": (review(BOB, sha=""),), "last_pushed_at": NOW - dt.timedelta(minutes=30)},
        "pending",
    ),
    (
        "an approval with no sha is not counted while the last push time is unknown",
        "{}",
        {"reviews": (review(BOB, sha=""),)},
        "pending",
    ),
    (
        "without invalidate_on_push an approval with no sha stands",
        "{invalidate_on_push: false}",
        {"reviews": (review(BOB, sha=""),)},
        "satisfied",
    ),
    (
        "a bot's commit does not make its co-author a contributor",
        "{}",
        {"commits": (commit(ADA), commit(BOT, BOB, sha=OLD)), "reviews": (review(BOB),)},
        "satisfied",
    ),
    (
        "ignore_bots: false counts a bot's commit",
        "{ignore_bots: false}",
        {"commits": (commit(ADA), commit(BOT, BOB, sha=OLD)), "reviews": (review(BOB),)},
        "pending",
    ),
    ("a bot's approval never counts", "{}", {"reviews": (review(BOT),)}, "pending"),
    (
        "a committer who did not author the commit may not approve",
        "{}",
        {"commits": (replace(commit(ADA), committer=BOB),), "reviews": (review(BOB),)},
        "pending",
    ),
    (
        "whoever pushed a commit may not approve",
        "{}",
        {"commits": (replace(commit(ADA), pushed_by=BOB),), "reviews": (review(BOB),)},
        "pending",
    ),
    (
        "a committer may approve when contributors are allowed",
        "{allow_contributors: true}",
        {"commits": (replace(commit(ADA), committer=BOB),), "reviews": (review(BOB),)},
        "satisfied",
    ),
    (
        "GitHub's merge of the base branch (Update branch) makes nobody a contributor",
        "{}",
        {"commits": (commit(ADA, sha=OLD), web_flow_merge(BOB, OLD)), "reviews": (review(BOB),)},
        "satisfied",
    ),
    (
        "a web merge of another branch of the pull request is a contribution",
        "{}",
        {
            "commits": (commit(ADA, sha=OLD), commit(CY, sha=FIX), web_flow_merge(BOB, OLD, FIX)),
            "reviews": (review(BOB),),
        },
        "pending",
    ),
    (
        "a merge of the base branch committed locally is a contribution",
        "{}",
        {
            "commits": (commit(ADA, sha=OLD), replace(web_flow_merge(BOB, OLD), via_web=False)),
            "reviews": (review(BOB),),
        },
        "pending",
    ),
]


@pytest.mark.parametrize(
    ("options", "overrides", "state"),
    [case[1:] for case in OPTIONS],
    ids=[case[0] for case in OPTIONS],
)
def test_options(options: str, overrides: dict[str, Any], state: str) -> None:
    rule = only_rule(evaluate(snapshot(**overrides), one_rule(options=options)))
    assert rule.state == state, rule.reason


WAITING = "waiting for the diff of aaaaaaa from GitHub to tell a rebase from a change"


@pytest.mark.parametrize(
    ("diff_ids", "pending", "reason"),
    [
        ({HEAD: "diff-1"}, {OLD: WAITING}, REBASE_UNKNOWN),  # the approved head's fingerprint is owed
        ({OLD: "diff-1"}, {HEAD: WAITING}, REBASE_UNKNOWN),  # the new head's is
        ({}, {HEAD: WAITING}, STALE),  # the approved head's can never be known: nothing can prove a rebase
        ({OLD: "diff-1", HEAD: "diff-1"}, {}, None),  # both known, the same: a rebase
    ],
)
def test_an_approval_waits_while_a_fingerprint_it_rests_on_is_owed(
    diff_ids: dict[str, str], pending: dict[str, str], reason: str | None
) -> None:
    facts = snapshot(reviews=(review(BOB, sha=OLD),), diff_ids=diff_ids, diff_ids_pending=pending)
    trace = evaluate(facts, one_rule())
    rule = only_rule(trace)
    assert [item.reason for item in rule.approvals_discarded] == ([reason] if reason else [])
    if reason == REBASE_UNKNOWN:
        assert trace.outcome == "pending"
        assert trace.summary == f"{WAITING[:1].upper()}{WAITING[1:]}; needs 1 approval"
    # Another approval of the head stands on its own: the one waiting neither counts nor holds the verdict.
    both = snapshot(reviews=(review(BOB, sha=OLD), review(CY)), diff_ids=diff_ids, diff_ids_pending=pending)
    assert only_rule(evaluate(both, one_rule())).state == "satisfied"


def test_rule_options_override_document_options() -> None:
    document = policy(
        """
        rules:
          - name: strict
            require: {approvals: 1}
          - name: lenient
            require: {approvals: 1}
            options: {allow_author: true}
        options: {allow_author: false}
        """
    )
    trace = evaluate(snapshot(reviews=(review(ADA),)), document)
    assert [rule.state for rule in trace.rules] == ["pending", "satisfied"]


def test_document_options_apply_to_every_rule() -> None:
    document = policy(
        """
        rules:
          - name: any approval
            require: {approvals: 1}
        options: {allow_author: true}
        """
    )
    assert evaluate(snapshot(reviews=(review(ADA),)), document).outcome == "approved"


# What counted: the approvals the verdict counted toward a rule that applies, which every figure reads.

LIMITED = """
    rules:
      - name: payments
        if: {paths: ["payments/**"]}
        require: {approvals: 1, teams: [payments]}
      - name: either
        any:
          - name: web
            require: {approvals: 1, teams: [web]}
          - name: lead's own
            options: {allow_author: true}
            require: {people: [ada]}
    """


@pytest.mark.parametrize(
    ("changed", "counted"),
    [("web/app.js", ["ada", "cy"]), ("payments/api.py", ["ada", "bob", "cy"])],
)
def test_counted_approvals_are_those_a_rule_that_applies_counted(changed: str, counted: list[str]) -> None:
    """Bob counts only where the payments rule applies, Dee (in no named team) nowhere, Ada where a rule's own
    options let her approval count; the options alone (`approvals_that_count`) would have counted Bob and Dee."""
    shot = snapshot(
        files=files(changed),
        reviews=(review(ADA, minute=1), review(BOB, minute=2), review(CY, minute=3), review(DEE, minute=4)),
    )
    document = policy(LIMITED)
    assert [approval.reviewer.label for approval in counted_approvals(shot, document)] == counted
    assert [approval.reviewer.label for approval in approvals_that_count(shot, document.options)] == [
        "bob",
        "cy",
        "dee",
    ]


def test_where_no_rule_applies_the_options_alone_decide_which_approvals_counted() -> None:
    """A change outside every rule's `if` needs no approval, but a peer's approval of it still counts (the team page
    shows it reviewed); the author's own approval still does not, as the options say."""
    shot = snapshot(files=files("web/app.js"), reviews=(review(ADA, minute=1), review(BOB, minute=2)))
    document = policy(
        """
        rules:
          - name: payments
            if: {paths: ["payments/**"]}
            require: {approvals: 1}
        """
    )
    assert only_rule(evaluate(shot, document)).state == "skipped"
    assert [approval.reviewer.label for approval in counted_approvals(shot, document)] == ["bob"]


# Every reason an approval is discarded.

DISCARDS: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("author", "{approvals: 1}", {"reviews": (review(ADA),)}, "ada", "author"),
    (
        "contributor",
        "{approvals: 1}",
        {"commits": (commit(ADA, BOB),), "reviews": (review(BOB),)},
        "bob",
        "contributor",
    ),
    (
        "commits unknown",
        "{approvals: 1}",
        {"reviews": (review(BOB),), "unknown": {"commits": "waiting for the commits"}},
        "bob",
        "not known yet whether a contributor",
    ),
    ("stale", "{approvals: 1}", {"reviews": (review(BOB, sha=OLD),)}, "bob", "stale after push"),
    (
        "no sha, before the last push",
        "{approvals: 1}",
        {"reviews": (review(BOB, sha=""),), "last_pushed_at": NOW},
        "bob",
        "stale after push",
    ),
    (
        "no sha, last push unknown",
        "{approvals: 1}",
        {"reviews": (review(BOB, sha=""),)},
        "bob",
        "not known yet whether given before the last push",
    ),
    ("bot", "{approvals: 1}", {"reviews": (review(BOT),)}, "renovate[bot]", "bot"),
    ("team", "{teams: [payments]}", {"reviews": (review(CY),)}, "cy", "not in the required team"),
    ("person", "{people: [bob]}", {"reviews": (review(CY),)}, "cy", "not a required person"),
    (
        "code owner",
        "{code_owners: true}",
        {"codeowners": "src/ @bob", "reviews": (review(CY), review(BOB))},
        "cy",
        "not a code owner",
    ),
    (
        "dismissed",
        "{approvals: 1}",
        {"reviews": (review(CY, "dismissed", review_id="r-dismissed"),)},
        "cy",
        "dismissed",
    ),
    (
        "superseded",
        "{approvals: 1}",
        {"reviews": (review(CY, minute=1, review_id="first"), review(CY, minute=2, review_id="second"))},
        "cy",
        "superseded",
    ),
]


@pytest.mark.parametrize(
    ("require", "overrides", "login", "reason"),
    [case[1:] for case in DISCARDS],
    ids=[case[0] for case in DISCARDS],
)
def test_discarded_approvals_say_why(require: str, overrides: dict[str, Any], login: str, reason: str) -> None:
    rule = only_rule(evaluate(snapshot(**overrides), one_rule(require)))
    assert discarded_reasons(rule)[login] == reason
    assert f"{login} ({reason})" in rule.reason


def test_superseded_approval_is_the_older_one() -> None:
    shot = snapshot(reviews=(review(CY, minute=2, review_id="second"), review(CY, minute=1, review_id="first")))
    rule = only_rule(evaluate(shot, DEFAULT_POLICY))
    assert [(a.login, a.review_id) for a in rule.approvals_counted] == [("cy", "second")]
    assert [(d.review_id, d.reason) for d in rule.approvals_discarded] == [("first", "superseded")]


# What a reviewer's latest review means.


def test_later_comment_does_not_cancel_an_approval() -> None:
    shot = snapshot(reviews=(review(BOB, minute=1), review(BOB, "commented", minute=2)))
    assert evaluate(shot, DEFAULT_POLICY).outcome == "approved"


def test_dismissal_cancels_an_approval() -> None:
    shot = snapshot(reviews=(review(BOB, minute=1), review(BOB, "dismissed", minute=2)))
    assert evaluate(shot, DEFAULT_POLICY).outcome == "pending"


def test_changes_requested_blocks() -> None:
    shot = snapshot(reviews=(review(CY), review(BOB, "changes_requested", review_id="r-cr")))
    trace = evaluate(shot, DEFAULT_POLICY)
    assert trace.outcome == "blocked"
    assert [(r.login, r.review_id) for r in trace.blocking_reviews] == [("bob", "r-cr")]
    assert trace.summary == "Changes requested by bob"


@pytest.mark.parametrize(
    ("later", "outcome"),
    [
        ("commented", "blocked"),
        ("approved", "approved"),
        ("dismissed", "pending"),
    ],
)
def test_changes_requested_stands_until_the_same_reviewer_approves_or_it_is_dismissed(later: str, outcome: str) -> None:
    shot = snapshot(reviews=(review(BOB, "changes_requested", minute=1), review(BOB, later, minute=2)))
    assert evaluate(shot, DEFAULT_POLICY).outcome == outcome


def test_another_reviewer_cannot_lift_a_change_request() -> None:
    shot = snapshot(reviews=(review(BOB, "changes_requested", minute=1), review(CY, minute=2), review(DEE, minute=3)))
    assert evaluate(shot, DEFAULT_POLICY).outcome == "blocked"


def test_approval_then_change_request_blocks() -> None:
    shot = snapshot(reviews=(review(BOB, minute=1, review_id="a"), review(BOB, "changes_requested", minute=2)))
    trace = evaluate(shot, DEFAULT_POLICY)
    assert trace.outcome == "blocked"
    assert discarded_reasons(only_rule(trace)) == {"bob": "superseded"}


def test_change_request_on_an_old_sha_still_blocks() -> None:
    shot = snapshot(reviews=(review(BOB, "changes_requested", sha=OLD), review(CY)))
    assert evaluate(shot, DEFAULT_POLICY).outcome == "blocked"


# Pairing credit.


def test_pairing_partner_counts_as_approvals_when_the_policy_says_so() -> None:
    shot = snapshot(commits=(commit(ADA, BOB),), pairing=(paired(BOB),))
    trace = evaluate(shot, one_rule(options="{pairing_credit: 1}"))
    rule = only_rule(trace)
    assert trace.outcome == "approved"
    assert [(a.login, a.via, a.weight) for a in rule.approvals_counted] == [("bob", "pairing", 1)]
    assert "bob by pairing" in rule.reason


def test_pairing_gives_nothing_without_credit() -> None:
    shot = snapshot(commits=(commit(ADA, BOB),), pairing=(paired(BOB),))
    assert evaluate(shot, one_rule()).outcome == "pending"


def test_pairing_credit_can_be_worth_more_than_one() -> None:
    shot = snapshot(pairing=(paired(BOB, "session"),))
    rule = only_rule(evaluate(shot, one_rule("{approvals: 2}", options="{pairing_credit: 2}")))
    assert rule.state == "satisfied"


def test_pairing_with_yourself_earns_nothing() -> None:
    shot = snapshot(pairing=(paired(ADA, "session"),))
    rule = only_rule(evaluate(shot, one_rule(options="{pairing_credit: 1}")))
    assert rule.state == "pending"
    assert discarded_reasons(rule) == {"ada": "author"}


def test_pairing_partner_counts_once_for_session_and_trailer() -> None:
    shot = snapshot(pairing=(paired(BOB, "session"), paired(BOB, "co_author")))
    rule = only_rule(evaluate(shot, one_rule("{approvals: 2}", options="{pairing_credit: 1}")))
    assert [(a.login, a.weight) for a in rule.approvals_counted] == [("bob", 1)]
    assert rule.state == "pending"


def test_pairing_partner_must_be_in_the_required_team() -> None:
    shot = snapshot(pairing=(paired(CY),))
    rule = only_rule(evaluate(shot, one_rule("{teams: [payments]}", options="{pairing_credit: 1}")))
    assert discarded_reasons(rule) == {"cy": "not in the required team"}


def test_independent_review_required_where_pairing_is_not_enough() -> None:
    shot = snapshot(commits=(commit(ADA, BOB),), pairing=(paired(BOB),))
    document = one_rule(options="{pairing_credit: 1, require_independent_review: true}")
    rule = only_rule(evaluate(shot, document))
    assert rule.state == "pending"
    assert rule.missing == ("needs an independent review (pairing alone is not enough)",)


def test_independent_reviewer_satisfies_the_rule_alongside_pairing() -> None:
    shot = snapshot(commits=(commit(ADA, BOB),), pairing=(paired(BOB),), reviews=(review(CY),))
    document = one_rule("{approvals: 2}", options="{pairing_credit: 1, require_independent_review: true}")
    assert only_rule(evaluate(shot, document)).state == "satisfied"


def test_a_contributor_approval_allowed_is_still_not_independent() -> None:
    shot = snapshot(commits=(commit(ADA, BOB),), reviews=(review(BOB),))
    document = one_rule(options="{allow_contributors: true, require_independent_review: true}")
    assert only_rule(evaluate(shot, document)).missing == ("needs an independent review",)


def test_no_review_is_known_independent_while_the_commits_are_unknown() -> None:
    """Fail closed: Cy may have written one of the commits not known yet."""
    document = one_rule(options="{allow_contributors: true, require_independent_review: true}")
    known = snapshot(reviews=(review(CY),))
    assert only_rule(evaluate(known, document)).state == "satisfied"
    unknown = replace(known, commits=(), unknown={"commits": "waiting for the commits from GitHub"})
    rule = only_rule(evaluate(unknown, document))
    assert rule.missing == ("needs an independent review (not known yet who wrote the change)",)
    assert unknown_contributors(unknown) == "waiting for the commits from GitHub"
    assert unknown_contributors(known) == ""


# Risk: recent incidents raise the bar.

RISKY = "risk: {incident_window_days: 14, extra_approvals: 1}\n"


def test_recent_incident_on_changed_paths_adds_approvals() -> None:
    shot = snapshot(files=files("payments/api.py"), incident_paths=(incident("payments"),), reviews=(review(BOB),))
    trace = evaluate(shot, one_rule(extra=RISKY))
    rule = only_rule(trace)
    assert (rule.state, rule.needed) == ("pending", 2)
    assert trace.risk.extra_approvals == 1
    assert [hit.service for hit in trace.risk.incidents] == ["payments-api"]
    assert "payments-api" in trace.risk.reason
    assert "after an incident in payments-api" in rule.reason
    assert trace.summary == "Needs 1 more approval"


@pytest.mark.parametrize(
    ("changed", "days_ago"),
    [("web/app.js", 2), ("payments/api.py", 15)],
    ids=["other paths", "outside the window"],
)
def test_incidents_elsewhere_or_long_ago_add_nothing(changed: str, days_ago: int) -> None:
    shot = snapshot(
        files=files(changed), incident_paths=(incident("payments", days_ago=days_ago),), reviews=(review(BOB),)
    )
    trace = evaluate(shot, one_rule(extra=RISKY))
    assert (trace.outcome, trace.risk.extra_approvals) == ("approved", 0)


def test_risk_does_not_add_approvals_to_rules_that_count_none() -> None:
    shot = snapshot(files=files("payments/api.py"), incident_paths=(incident("payments"),), statuses={"ci": "success"})
    assert only_rule(evaluate(shot, one_rule('{checks: ["ci"]}', extra=RISKY))).state == "satisfied"


# Combinations.

COMBINED = """
rules:
  - name: either
    {combine}:
      - name: two reviewers
        require: {{approvals: 2}}
      - name: one lead
        require: {{teams: [leads]}}
"""


@pytest.mark.parametrize(
    ("combine", "reviewers", "state"),
    [
        ("any", (BOB,), "pending"),
        ("any", (DEE,), "satisfied"),
        ("any", (BOB, CY), "satisfied"),
        ("all", (BOB, CY), "pending"),
        ("all", (BOB, DEE), "satisfied"),
    ],
)
def test_any_and_all(combine: str, reviewers: tuple, state: str) -> None:
    shot = snapshot(reviews=tuple(review(reviewer) for reviewer in reviewers))
    trace = evaluate(shot, policy(COMBINED.format(combine=combine)))
    rule = only_rule(trace)
    assert (rule.kind, rule.state) == (combine, state)
    assert [child.name for child in rule.children] == ["two reviewers", "one lead"]


def test_any_blocked_only_when_every_alternative_is() -> None:
    document = policy(
        """
        rules:
          - name: either
            any:
              - name: built
                require: {checks: [ci/build]}
              - name: reviewed
                require: {approvals: 1, checks: [ci/lint]}
        """
    )
    build_failed = {"ci/build": "failure", "ci/lint": "success"}
    assert evaluate(snapshot(statuses=build_failed, reviews=(review(BOB),)), document).outcome == "approved"
    assert only_rule(evaluate(snapshot(statuses=build_failed), document)).state == "pending"
    both_failed = {"ci/build": "failure", "ci/lint": "failure"}
    trace = evaluate(snapshot(statuses=both_failed, reviews=(review(BOB),)), document)
    assert (only_rule(trace).state, trace.outcome) == ("blocked", "blocked")
    assert trace.summary == "ci/build failed; ci/lint failed"


def test_combination_skipped_when_every_child_is() -> None:
    document = policy(
        """
        rules:
          - name: payments
            all:
              - name: payments code
                if: {paths: ["payments/**"]}
                require: {approvals: 2}
        """
    )
    assert only_rule(evaluate(snapshot(), document)).state == "skipped"


def test_combination_options_reach_its_children() -> None:
    document = policy(
        """
        rules:
          - name: lenient group
            options: {allow_author: true}
            all:
              - name: any approval
                require: {approvals: 1}
        """
    )
    assert evaluate(snapshot(reviews=(review(ADA),)), document).outcome == "approved"


# Outcome and summary.


def test_default_policy_needs_someone_other_than_the_author() -> None:
    assert evaluate(snapshot(reviews=(review(ADA),)), DEFAULT_POLICY).outcome == "pending"
    assert evaluate(snapshot(reviews=(review(ADA), review(BOB))), DEFAULT_POLICY).outcome == "approved"


def test_draft_stays_pending_even_when_satisfied() -> None:
    trace = evaluate(snapshot(draft=True, reviews=(review(BOB),)), DEFAULT_POLICY)
    assert (trace.outcome, trace.summary, trace.draft) == ("pending", "Draft", True)
    assert only_rule(trace).state == "satisfied"


def test_draft_with_a_change_request_is_blocked() -> None:
    trace = evaluate(snapshot(draft=True, reviews=(review(BOB, "changes_requested"),)), DEFAULT_POLICY)
    assert trace.outcome == "blocked"


def test_summary_names_the_shortfall() -> None:
    document = policy(
        """
        rules:
          - name: payments needs two, one a code owner
            if: {paths: ["payments/**"]}
            require: {approvals: 2, code_owners: true}
        """
    )
    shot = snapshot(files=files("payments/api.py"), codeowners=PAYMENTS_OWNERS, reviews=(review(CY),))
    trace = evaluate(shot, document)
    assert trace.outcome == "pending"
    assert trace.summary == "Needs 1 more approval; needs a code owner of payments/ (@acme/payments)"


def test_summary_fits_a_commit_status() -> None:
    long_names = "\n".join(f"/area{n}/ @owner{n}" for n in range(30))
    shot = snapshot(files=files(*(f"area{n}/x.py" for n in range(30))), codeowners=long_names)
    trace = evaluate(shot, one_rule("{approvals: 3, code_owners: true}"))
    assert len(trace.summary) <= 140
    assert trace.summary.startswith("Needs 3 approvals; needs a code owner of area0/ (owner0)")


def test_summary_counts_other_pending_rules() -> None:
    document = policy(
        """
        rules:
          - name: a
            require: {approvals: 1}
          - name: b
            require: {approvals: 2}
        """
    )
    assert evaluate(snapshot(), document).summary == "Needs 1 approval; 1 more rule pending"


def test_no_applicable_rule_approves() -> None:
    trace = evaluate(snapshot(), one_rule(when='{paths: ["payments/**"]}'))
    assert (trace.outcome, trace.summary) == ("approved", "Approved: no review rule applies")


def test_trace_is_json_ready() -> None:
    shot = snapshot(
        files=files("payments/api.py"),
        incident_paths=(incident("payments"),),
        pairing=(paired(CY),),
        reviews=(review(BOB), review(DEE, "changes_requested")),
        codeowners=PAYMENTS_OWNERS,
    )
    document = one_rule("{approvals: 2, code_owners: true}", options="{pairing_credit: 1}", extra=RISKY)
    data = evaluate(shot, document).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["outcome"] == "blocked"
    assert data["rules"][0]["approvals_counted"][0]["via"] in ("review", "pairing")
    assert data["blocking_reviews"][0]["submitted_at"].endswith("+00:00")


def test_missing_files_hold_a_policy_that_would_apply_to_nothing():
    document = policy(
        """
        rules:
          - name: payments
            if: {paths: ["payments/**"]}
            require: {approvals: 2}
        """
    )
    known = evaluate(snapshot(files=()), document)
    assert (known.outcome, known.summary) == ("approved", "Approved: no review rule applies")

    unknown = {"files": "waiting for the list of changed files from GitHub", "commits": "waiting for the commits"}
    trace = evaluate(snapshot(files=(), unknown=unknown), document)
    assert (trace.outcome, trace.summary) == ("pending", "Waiting for the list of changed files from GitHub")
    assert trace.to_dict()["unknown"] == unknown


def test_a_known_change_request_still_blocks_while_files_are_missing():
    trace = evaluate(
        snapshot(reviews=(review(BOB, "changes_requested"),), unknown={"files": "waiting for the files"}),
        DEFAULT_POLICY,
    )
    assert trace.outcome == "blocked"


def test_a_snapshot_names_only_facts_it_knows_of():
    with pytest.raises(SnapshotError, match="unknown fact"):
        snapshot(unknown={"weather": "cloudy"})
    shot = snapshot(unknown={"files": "waiting"})
    assert Snapshot.from_dict(shot.to_dict()) == shot


def test_the_summary_names_whose_approval_is_missing_and_who_approved_instead() -> None:
    document = one_rule("{approvals: 1, teams: ['@acme/payments']}")
    trace = evaluate(snapshot(reviews=(review(CY), review(DEE))), document)
    assert trace.summary == "Needs 1 approval from @payments (2 others approved)"
    assert len(trace.summary) <= 140


def test_the_summary_names_the_code_owners_of_an_unapproved_path() -> None:
    document = one_rule("{code_owners: true}")
    trace = evaluate(snapshot(codeowners="/ledger/** @alice @bob\n", files=files("ledger/book.py")), document)
    assert trace.summary == "Needs a code owner of ledger/** (alice, bob)"
