"""parse_policy(): the document shape, its defaults, and clear errors that name the line."""

from __future__ import annotations

import textwrap

import pytest

from reviews.policy import DEFAULT_POLICY, DEFAULT_POLICY_TEXT, Options, PolicyError, Problem, parse_policy
from reviews.policy.document import Risk

DESIGN_EXAMPLE = """
rules:
  - name: payments needs two, one a code owner
    if: {paths: ["payments/**"]}
    require: {approvals: 2, code_owners: true}
    options: {require_independent_review: true}
  - name: everything else
    require: {approvals: 1}
    options: {pairing_credit: 1}
checks: [ci/build]                     # required status checks
options:                               # defaults for every rule
  allow_author: false
  allow_contributors: false
  invalidate_on_push: true
  keep_on_rebase: true
  ignore_bots: true
risk:                                  # incident-aware: recent failures raise the bar
  incident_window_days: 14
  extra_approvals: 1
override:
  allowed: [team-leads]
  followup_review_hours: 48
"""

EVERYTHING = """
rules:
  - name: payments
    if:
      paths: ["payments/**", "re:^ledger/.*\\\\.sql$"]
      not_paths: ["payments/docs/**"]
      base_branches: [main, "release/*"]
      labels: [Security]
      author_in_teams: ["@acme/Payments"]
      size_over: 400
      draft: false
      touches_incident_within_days: 14
    require: {approvals: 2, code_owners: true, teams: [payments], people: ["@Ada"], checks: [ci/build]}
    options:
      require_independent_review: true
      pairing_credit: 1
      allow_author: false
      allow_contributors: false
      invalidate_on_push: true
      keep_on_rebase: true
      ignore_bots: true
  - name: either
    any:
      - name: a lead
        require: {teams: [leads]}
      - name: two people
        all:
          - name: two
            require: {approvals: 2}
checks: [ci/build, ci/lint]
options: {allow_author: true, pairing_credit: 0}
risk: {incident_window_days: 7, extra_approvals: 2}
override: {allowed: [team-leads, dee], followup_review_hours: 24}
"""


def test_design_example_parses() -> None:
    policy = parse_policy(DESIGN_EXAMPLE)
    first, second = policy.rules
    assert first.name == "payments needs two, one a code owner"
    assert [pattern.text for pattern in first.when.paths] == ["payments/**"]
    assert (first.require.approvals, first.require.code_owners) == (2, True)
    assert first.options.require_independent_review is True
    assert first.options.pairing_credit is None
    assert second.options.pairing_credit == 1
    assert policy.checks == ("ci/build",)
    assert policy.options == Options()
    assert policy.risk == Risk(incident_window_days=14, extra_approvals=1)
    assert (policy.override.allowed, policy.override.followup_review_hours) == (("team-leads",), 48)


def test_every_key_parses() -> None:
    policy = parse_policy(EVERYTHING)
    payments, either = policy.rules
    when = payments.when
    assert [pattern.text for pattern in when.paths] == ["payments/**", "re:^ledger/.*\\.sql$"]
    assert when.paths[1].matches("ledger/0001.sql")
    assert when.base_branches[1].matches("release/1.0")
    assert when.labels == ("security",)
    assert when.author_in_teams == ("payments",)
    assert (when.size_over, when.draft, when.touches_incident_within_days) == (400, False, 14)
    assert payments.require.people == ("ada",)
    assert payments.require.checks == ("ci/build",)
    assert either.combine == "any"
    assert [child.name for child in either.children] == ["a lead", "two people"]
    assert either.children[1].children[0].require.approvals == 2
    assert policy.options.allow_author is True
    assert policy.risk == Risk(incident_window_days=7, extra_approvals=2)
    assert policy.override.allowed == ("team-leads", "dee")


def test_naming_teams_or_people_means_one_approval_from_them() -> None:
    policy = parse_policy("rules:\n  - name: a\n    require: {teams: [payments]}\n")
    assert policy.rules[0].require.approvals == 1


def test_risk_section_without_a_count_adds_one_approval() -> None:
    assert parse_policy("rules: []\nrisk: {incident_window_days: 7}\n").risk.extra_approvals == 1
    assert parse_policy("rules: []\n").risk.extra_approvals == 0


def test_default_policy_is_one_approval_from_someone_other_than_the_author() -> None:
    assert parse_policy(DEFAULT_POLICY_TEXT) == DEFAULT_POLICY
    (rule,) = DEFAULT_POLICY.rules
    assert rule.require.approvals == 1
    assert DEFAULT_POLICY.options.allow_author is False


def test_path_patterns_in_mapping_form() -> None:
    policy = parse_policy(
        'rules:\n  - name: a\n    if: {paths: {glob: ["*.md"], regex: ["^docs/"]}}\n    require: {}\n'
    )
    assert [pattern.text for pattern in policy.rules[0].when.paths] == ["*.md", "re:^docs/"]


def test_error_reads_line_path_and_problem() -> None:
    text = "rules:\n  - name: payments\n    require:\n      approvals: two\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert str(caught.value) == "line 4 (rules[0].require.approvals): expected a non-negative integer, got 'two'"
    assert caught.value.problems == [
        Problem(4, "rules[0].require.approvals", "expected a non-negative integer, got 'two'")
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = """\
rules:
  - name: a
    require: {approvals: -1}
  - name: b
    require: {code_owners: maybe}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert [(problem.line, problem.path) for problem in caught.value.problems] == [
        (3, "rules[0].require.approvals"),
        (5, "rules[1].require.code_owners"),
    ]


BAD_DOCUMENTS: list[tuple[str, str, int | None, str, str]] = [
    # YAML syntax
    ("unclosed flow mapping", "rules:\n  - name: a\n    require: {approvals: 1\n", 4, "", "invalid YAML"),
    ("bad indentation", "rules:\n  - name: a\n   require: {}\n", 3, "", "invalid YAML"),
    ("tab indentation", "rules:\n\t- name: a\n", 2, "", "invalid YAML"),
    ("two documents", "rules: []\n---\nrules: []\n", 2, "", "invalid YAML"),
    ("empty document", "", None, "", "the document is empty"),
    ("not a mapping", "- name: a\n", 1, "", "expected a mapping, got a list"),
    # Unknown keys, with suggestions
    ("unknown top-level key", "rules: []\nchecsk: [ci]\n", 2, "checsk", "did you mean 'checks'?"),
    (
        "unknown rule key",
        "rules:\n  - name: a\n    requires: {approvals: 1}\n",
        3,
        "rules[0].requires",
        "unknown key 'requires'; did you mean 'require'?",
    ),
    (
        "unknown if key",
        "rules:\n  - name: a\n    if: {path: [x]}\n    require: {}\n",
        3,
        "rules[0].if.path",
        "did you mean 'paths'?",
    ),
    (
        "unknown require key",
        "rules:\n  - name: a\n    require:\n      approval: 1\n",
        4,
        "rules[0].require.approval",
        "did you mean 'approvals'?",
    ),
    (
        "unknown option",
        "rules: []\noptions:\n  allow_authors: true\n",
        3,
        "options.allow_authors",
        "did you mean 'allow_author'?",
    ),
    ("unknown risk key", "rules: []\nrisk: {window: 3}\n", 2, "risk.window", "expected one of: incident_window_days"),
    ("unknown override key", "rules: []\noverride: {alowed: [x]}\n", 2, "override.alowed", "did you mean 'allowed'?"),
    ("duplicate key", "rules: []\nchecks: [a]\nchecks: [b]\n", 3, "checks", "duplicate key 'checks'"),
    # Wrong types
    (
        "approvals as a word",
        "rules:\n  - name: a\n    require: {approvals: two}\n",
        3,
        "rules[0].require.approvals",
        "expected a non-negative integer, got 'two'",
    ),
    (
        "approvals as a boolean",
        "rules:\n  - name: a\n    require: {approvals: true}\n",
        3,
        "rules[0].require.approvals",
        "got true",
    ),
    (
        "code_owners as a word",
        "rules:\n  - name: a\n    require: {code_owners: 'yes please'}\n",
        3,
        "rules[0].require.code_owners",
        "expected true or false, got 'yes please'",
    ),
    (
        "paths as a string",
        "rules:\n  - name: a\n    if:\n      paths: payments/**\n    require: {}\n",
        4,
        "rules[0].if.paths",
        "expected a list of text, got 'payments/**'",
    ),
    (
        "labels with a number",
        "rules:\n  - name: a\n    if:\n      labels:\n        - bug\n        - 42\n    require: {}\n",
        6,
        "rules[0].if.labels[1]",
        "expected text, got 42",
    ),
    ("rules as a mapping", "rules: {name: a}\n", 1, "rules", "expected a list of rules, got a mapping"),
    ("checks as a string", "rules: []\nchecks: ci/build\n", 2, "checks", "expected a list of text"),
    ("option as a string", "rules: []\noptions: {ignore_bots: 'no'}\n", 2, "options.ignore_bots", "true or false"),
    ("rule as a string", "rules:\n  - everything\n", 2, "rules[0]", "expected a mapping, got 'everything'"),
    # Regexes that do not compile
    (
        "bad regex in paths",
        'rules:\n  - name: a\n    if:\n      paths:\n        - "docs/**"\n'
        '        - "re:payments/(v1"\n    require: {}\n',
        6,
        "rules[0].if.paths",
        "'re:payments/(v1' is not a valid regular expression: missing ): payments/(v1",
    ),
    (
        "bad regex in a regex list",
        'rules:\n  - name: a\n    if:\n      not_paths:\n        regex: ["[a-"]\n    require: {}\n',
        5,
        "rules[0].if.not_paths",
        "is not a valid regular expression",
    ),
    (
        "bad regex branch",
        'rules:\n  - name: a\n    if: {base_branches: ["re:*main"]}\n    require: {}\n',
        3,
        "rules[0].if.base_branches",
        "not a valid regular expression: no argument for repetition operator: *",
    ),
    # Absurd sizes
    (
        "approvals over 20",
        "rules:\n  - name: a\n    require: {approvals: 21}\n",
        3,
        "",
        "21 is too large; the limit is 20",
    ),
    (
        "size over a million",
        "rules:\n  - name: a\n    if: {size_over: 1000001}\n    require: {}\n",
        3,
        "rules[0].if.size_over",
        "the limit is 1,000,000",
    ),
    (
        "window over a year",
        "rules: []\nrisk: {incident_window_days: 366}\n",
        2,
        "risk.incident_window_days",
        "the limit is 365",
    ),
    (
        "incident predicate over a year",
        "rules:\n  - name: a\n    if: {touches_incident_within_days: 400}\n    require: {}\n",
        3,
        "rules[0].if.touches_incident_within_days",
        "the limit is 365",
    ),
    ("zero-day window", "rules: []\nrisk: {incident_window_days: 0}\n", 2, "", "an integer of at least 1, got 0"),
    ("pairing credit over 20", "rules: []\noptions: {pairing_credit: 50}\n", 2, "options.pairing_credit", "limit"),
    ("extra approvals over 20", "rules: []\nrisk: {extra_approvals: 21}\n", 2, "risk.extra_approvals", "limit"),
    ("follow-up hours over a year", "rules: []\noverride: {followup_review_hours: 9000}\n", 2, "", "limit is 8,760"),
    # Rule names and structure
    ("missing name", "rules:\n  - require: {approvals: 1}\n", 2, "rules[0]", "a rule needs a name"),
    ("empty name", "rules:\n  - name: '  '\n    require: {}\n", 2, "rules[0].name", "name cannot be empty"),
    (
        "duplicate name",
        "rules:\n  - name: Payments\n    require: {}\n  - name: payments\n    require: {}\n",
        4,
        "rules[1].name",
        "duplicate rule name 'payments' (first used on line 2)",
    ),
    (
        "duplicate name across nesting",
        "rules:\n  - name: a\n    any:\n      - name: a\n        require: {}\n",
        4,
        "rules[0].any[0].name",
        "duplicate rule name",
    ),
    ("require and any together", "rules:\n  - name: a\n    require: {}\n    any: []\n", 2, "rules[0]", "exactly one"),
    ("neither require nor any", "rules:\n  - name: a\n", 2, "rules[0]", "exactly one of 'require', 'any' or 'all'"),
    ("empty any", "rules:\n  - name: a\n    any: []\n", 3, "rules[0].any", "expected at least one rule"),
    ("missing rules", "checks: [ci]\n", 1, "rules", "a policy needs 'rules'"),
]


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [case[1:] for case in BAD_DOCUMENTS],
    ids=[case[0] for case in BAD_DOCUMENTS],
)
def test_bad_documents_are_refused_with_the_line(text: str, line: int | None, path: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    problem = caught.value.problems[0]
    assert problem.line == line, caught.value
    if path:
        assert problem.path == path, caught.value
    assert message in problem.message, caught.value


def nested(depth: int) -> str:
    """A rule nesting `any` `depth` levels deep."""
    lines = ["rules:"]
    for level in range(depth):
        indent = "  " * (2 * level + 1)
        lines += [f"{indent}- name: level {level}", f"{indent}  any:"]
    lines.append("  " * (2 * depth + 1) + "- {name: leaf, require: {approvals: 1}}")
    return "\n".join(lines) + "\n"


def test_four_levels_of_any_are_fine() -> None:
    assert parse_policy(nested(4)).rules[0].combine == "any"


def test_five_levels_of_any_are_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(nested(5))
    (problem,) = caught.value.problems
    assert problem.line == 12  # where the fifth level's rules begin
    assert problem.message == "'any'/'all' nested more than 4 levels deep"


def test_more_than_200_rules_are_refused() -> None:
    rules = "".join(f"  - {{name: rule {n}, require: {{approvals: 1}}}}\n" for n in range(201))
    with pytest.raises(PolicyError) as caught:
        parse_policy("rules:\n" + rules)
    assert str(caught.value) == "line 2 (rules): too many rules; the limit is 200"
    assert len(parse_policy("rules:\n" + rules.split("\n", 1)[1]).rules) == 200


def test_documents_over_64_kib_are_refused() -> None:
    text = "rules: []\n" + "# padding\n" * 7000
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert "the limit is 64 KiB" in str(caught.value)


def test_yaml_syntax_error_names_the_line() -> None:
    text = textwrap.dedent(
        """\
        rules:
          - name: a
            require: {approvals: 1}
          - name: "b
            require: {}
        """
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert str(caught.value).startswith("line ")
    assert "invalid YAML" in str(caught.value)


def test_merge_keys_are_followed() -> None:
    text = "rules:\n  - &base {name: a, require: {approvals: 1}}\n  - <<: *base\n    name: b\n"
    assert [rule.name for rule in parse_policy(text).rules] == ["a", "b"]


def test_policy_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        parse_policy("rulez: []")


def test_a_backtracking_regex_runs_in_linear_time():
    # Under a backtracking engine this pattern takes exponential time on "aaa…b"; RE2 answers at once.
    policy = parse_policy('rules:\n  - name: a\n    if: {paths: ["re:^(a+)+$"]}\n    require: {approvals: 1}\n')
    pattern = policy.rules[0].when.paths[0]
    assert pattern.matches("a" * 5_000) is True
    assert pattern.matches("a" * 5_000 + "b") is False


def test_a_regex_only_a_backtracking_engine_can_run_is_refused_with_its_line():
    document = textwrap.dedent(
        """\
        rules:
          - name: a
            if:
              paths:
                - "src/**"
                - "re:^(docs)/\\\\1"
            require: {approvals: 1}
        """
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)
    [problem] = caught.value.problems
    assert problem.line == 6
    assert "re:^(docs)/\\1" in problem.message
    assert "RE2" in problem.message


def test_a_glob_runs_in_linear_time_too():
    # A glob is written by whoever edits a policy, like a `re:` pattern. Translated for a backtracking engine,
    # `**/**/…/x` took 32 s on a 41-character path at twelve repetitions (ten times more with each two more);
    # RE2 answers at once.
    nested = "**/" * 30 + "x"
    stars = "*a" * 30 + "b"
    policy = parse_policy(
        "rules:\n  - name: a\n"
        f'    if: {{paths: ["{nested}", "{stars}"], base_branches: ["{stars}"]}}\n'
        "    require: {approvals: 1}\n"
    )
    nested_pattern, stars_pattern = policy.rules[0].when.paths
    assert nested_pattern.matches("a/" * 200 + "x") is True
    assert nested_pattern.matches("a/" * 200 + "b") is False
    assert stars_pattern.matches("a" * 5_000) is False
    assert policy.rules[0].when.base_branches[0].matches("a" * 5_000) is False


@pytest.mark.parametrize("pattern", ["src/\\ud800/**", "re:^src/\\ud800"], ids=["glob", "re"])
def test_a_pattern_with_a_lone_surrogate_is_a_problem_with_its_line(pattern):
    # RE2 reads UTF-8, which a lone surrogate (valid as a JSON or YAML escape) is not: UnicodeEncodeError, a 500.
    document = f'rules:\n  - name: a\n    if: {{paths: ["{pattern}"]}}\n    require: {{approvals: 1}}\n'
    with pytest.raises(ValueError, match="lone surrogate"):
        parse_policy(document)
