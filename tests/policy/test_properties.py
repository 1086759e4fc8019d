"""Property tests: the verdict does not depend on the order reviews arrive in, and evaluation is deterministic."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from reviews.policy import DEFAULT_POLICY, Policy, ReviewRef, Snapshot, evaluate
from reviews.policy.snapshot import FACTS
from tests.policy.builders import ADA, BOB, BOT, CY, DEE, HEAD, NOW, OLD, commit, files, paired, policy, snapshot

PEOPLE = (ADA, BOB, CY, DEE, BOT)
SHAS = (HEAD, OLD, "rebased", "")
STATES = ("approved", "changes_requested", "commented", "dismissed")

POLICIES: tuple[Policy, ...] = (
    DEFAULT_POLICY,
    policy(
        """
        rules:
          - name: payments
            if: {paths: ["payments/**"]}
            require: {approvals: 2, code_owners: true}
            options: {require_independent_review: true}
          - name: rest
            require: {approvals: 1}
            options: {pairing_credit: 1}
        checks: [ci/build]
        risk: {incident_window_days: 14, extra_approvals: 1}
        """
    ),
    policy(
        """
        rules:
          - name: either
            any:
              - name: leads
                require: {teams: [leads]}
              - name: two
                all:
                  - name: two people
                    require: {approvals: 2}
                  - name: built
                    require: {checks: [ci/build]}
        options: {allow_contributors: true, keep_on_rebase: false}
        """
    ),
)


@st.composite
def reviews(draw: st.DrawFn) -> tuple[ReviewRef, ...]:
    count = draw(st.integers(min_value=0, max_value=8))
    made = []
    for index in range(count):
        made.append(
            ReviewRef(
                id=f"r{index}",
                reviewer=draw(st.sampled_from(PEOPLE)),
                state=draw(st.sampled_from(STATES)),
                commit_sha=draw(st.sampled_from(SHAS)),
                # Few distinct minutes, so that ties in time are common and must be broken the same way.
                submitted_at=NOW - dt.timedelta(minutes=draw(st.integers(min_value=0, max_value=3))),
            )
        )
    return tuple(made)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    return snapshot(
        reviews=draw(reviews()),
        files=files(*draw(st.lists(st.sampled_from(["payments/api.py", "web/app.js", "README.md"]), max_size=3))),
        commits=(commit(ADA), *draw(st.lists(st.sampled_from([commit(ADA, BOB), commit(BOT, CY)]), max_size=2))),
        pairing=tuple(draw(st.lists(st.sampled_from([paired(BOB), paired(CY, "session"), paired(ADA)]), max_size=2))),
        statuses=draw(st.sampled_from([{}, {"ci/build": "success"}, {"ci/build": "failure"}])),
        diff_ids=draw(st.sampled_from([{}, {OLD: "d1", HEAD: "d1"}, {"rebased": "d2", HEAD: "d2"}])),
        codeowners="* @cy\n/payments/ @acme/payments\n",
        draft=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(shot=snapshots(), document=st.sampled_from(POLICIES), data=st.data())
def test_verdict_does_not_depend_on_review_order(shot: Snapshot, document: Policy, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(shot.reviews))
    reordered = Snapshot(**{**vars(shot), "reviews": tuple(shuffled), "pairing": tuple(reversed(shot.pairing))})
    assert evaluate(reordered, document).to_dict() == evaluate(shot, document).to_dict()


@settings(max_examples=200, deadline=None)
@given(shot=snapshots(), document=st.sampled_from(POLICIES))
def test_evaluation_is_deterministic(shot: Snapshot, document: Policy) -> None:
    first = evaluate(shot, document).to_dict()
    assert evaluate(shot, document).to_dict() == first
    assert evaluate(Snapshot.from_dict(shot.to_dict()), document).to_dict() == first


@settings(max_examples=200, deadline=None)
@given(shot=snapshots(), document=st.sampled_from(POLICIES))
def test_a_comment_never_changes_the_verdict(shot: Snapshot, document: Policy) -> None:
    comment = ReviewRef("comment", DEE, "commented", HEAD, NOW)
    commented = Snapshot(**{**vars(shot), "reviews": (*shot.reviews, comment)})
    assert evaluate(commented, document).to_dict() == evaluate(shot, document).to_dict()


@settings(max_examples=200, deadline=None)
@given(shot=snapshots(), document=st.sampled_from(POLICIES))
def test_trace_is_well_formed(shot: Snapshot, document: Policy) -> None:
    trace = evaluate(shot, document)
    assert trace.outcome in ("approved", "pending", "blocked")
    assert 0 < len(trace.summary) <= 140
    if trace.blocking_reviews:
        assert trace.outcome == "blocked"
    if shot.draft:
        assert trace.outcome != "approved"


REASONS = ("waiting for the list of changed files from GitHub", "GitHub listed 3,000 of 3,412 changed files")


@st.composite
def documents(draw: st.DrawFn) -> Policy:
    """Any policy of a small grammar, including ones that require nothing at all."""
    rules = []
    for index in range(draw(st.integers(min_value=0, max_value=3))):
        conditions = draw(
            st.sampled_from(["", 'if: {paths: ["payments/**"]}', 'if: {not_paths: ["**/*.md"]}', "if: {draft: false}"])
        )
        approvals = draw(st.integers(min_value=0, max_value=2))
        code_owners = draw(st.booleans())
        checks = draw(st.sampled_from(["", ", checks: [ci/build]"]))
        rules.append(
            f"  - name: rule {index}\n    {conditions or 'options: {}'}\n"
            f"    require: {{approvals: {approvals}, code_owners: {str(code_owners).lower()}{checks}}}\n"
        )
    options = draw(st.sampled_from(["", "options: {allow_author: true, allow_contributors: true}\n"]))
    return policy("rules:\n" + "".join(rules) + options if rules else "rules: []\n" + options)


# CODEOWNERS matters only to rules that ask for code owners (the property below).
ALWAYS_NEEDED = [fact for fact in FACTS if fact != "codeowners"]


@settings(max_examples=300, deadline=None)
@given(
    shot=snapshots(),
    document=st.one_of(st.sampled_from(POLICIES), documents()),
    unknown=st.dictionaries(st.sampled_from(ALWAYS_NEEDED), st.sampled_from(REASONS), min_size=1),
)
def test_an_unknown_fact_never_lets_a_pull_request_pass(
    shot: Snapshot, document: Policy, unknown: dict[str, str]
) -> None:
    trace = evaluate(Snapshot(**{**vars(shot), "unknown": unknown}), document)
    assert trace.outcome != "approved"
    if trace.outcome == "pending":
        assert trace.summary.lower().startswith(tuple(reason.lower()[:20] for reason in unknown.values()))


@settings(max_examples=300, deadline=None)
@given(shot=snapshots(), document=st.one_of(st.sampled_from(POLICIES), documents()))
def test_an_unknown_codeowners_never_lets_a_rule_that_asks_for_code_owners_pass(
    shot: Snapshot, document: Policy
) -> None:
    unknown = {"codeowners": "waiting for CODEOWNERS from GitHub"}
    trace = evaluate(Snapshot(**{**vars(shot), "unknown": unknown}), document)
    asking = [
        rule
        for rule, rule_trace in zip(document.rules, trace.rules, strict=True)
        if rule.require.code_owners and rule_trace.state != "skipped"
    ]
    if asking:
        assert trace.outcome != "approved"
        assert trace.unknown == unknown
