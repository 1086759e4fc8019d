"""Policy documents: YAML in, frozen dataclasses out, or a PolicyError naming the line of every problem.

The YAML is composed into a node tree (every node keeps its line) and read by hand, so that an unknown key, a
wrong type, a regex that does not compile or an absurd size is reported where it was written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol, TypeVar

import re2
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reviews.policy.codeowners import RE2_OPTIONS, glob_to_regex, name_glob_to_regex

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_RULES = 200
MAX_NESTING = 4
MAX_APPROVALS = 20
MAX_SIZE_OVER = 1_000_000
MAX_WINDOW_DAYS = 365
MAX_FOLLOWUP_HOURS = 24 * 365
MAX_LIST_ITEMS = 500
MAX_NAME_LENGTH = 200

TOP_KEYS = ("rules", "checks", "options", "risk", "override", "reviewers", "deploy")
RULE_KEYS = ("name", "if", "require", "options", "any", "all")
CONDITION_KEYS = (
    "paths",
    "not_paths",
    "base_branches",
    "labels",
    "author_in_teams",
    "size_over",
    "draft",
    "touches_incident_within_days",
)
REQUIREMENT_KEYS = ("approvals", "code_owners", "teams", "people", "checks")
OPTION_KEYS = (
    "allow_author",
    "allow_contributors",
    "invalidate_on_push",
    "keep_on_rebase",
    "ignore_bots",
    "pairing_credit",
    "require_independent_review",
)
RISK_KEYS = ("incident_window_days", "extra_approvals")
OVERRIDE_KEYS = ("allowed", "allow_self", "followup_review_hours")
REVIEWERS_KEYS = ("request",)
# Reviewers Tandem may request on a pull request by itself: a few, never a crowd.
MAX_REVIEWERS_REQUESTED = 5
DEPLOY_KEYS = ("block_on", "warn_on")
# A deploy check's levels, lowest first; "never" as a threshold: no level reaches it.
DEPLOY_LEVELS = ("low", "medium", "high")
DEPLOY_THRESHOLDS = (*DEPLOY_LEVELS, "never")
PATTERN_FORM_KEYS = ("glob", "regex")

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = " ".join(part for part in (self.line and f"line {self.line}", self.path and f"({self.path})") if part)
        return f"{where}: {self.message}" if where else self.message


class PolicyError(ValueError):
    """A policy document that cannot be used. `problems` lists each one with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class Searchable(Protocol):
    def search(self, text: str) -> object | None: ...


@dataclass(frozen=True)
class Pattern:
    """A path or branch pattern as written (`payments/**`, `re:^payments/`) and the regex it stands for.

    A `re:` pattern is written by whoever edits a policy and runs on every evaluation, so it goes through RE2,
    whose time is linear in the input: no pattern can take a server down by backtracking. So do globs, which
    Tandem translates: `**/**/**/…/x` as a Python regex backtracks exponentially.
    """

    text: str
    regex: Searchable = field(repr=False)

    def matches(self, value: str) -> bool:
        return self.regex.search(value) is not None


@dataclass(frozen=True)
class Conditions:
    """A rule's `if`: every given predicate must hold for the rule to apply."""

    paths: tuple[Pattern, ...] = ()
    not_paths: tuple[Pattern, ...] = ()
    base_branches: tuple[Pattern, ...] = ()
    labels: tuple[str, ...] = ()
    author_in_teams: tuple[str, ...] = ()
    size_over: int | None = None
    draft: bool | None = None
    touches_incident_within_days: int | None = None


@dataclass(frozen=True)
class Requirements:
    """A rule's `require`. `teams` and `people` restrict whose approvals count (either one qualifies)."""

    approvals: int = 0
    code_owners: bool = False
    teams: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Options:
    allow_author: bool = False
    allow_contributors: bool = False
    invalidate_on_push: bool = True
    keep_on_rebase: bool = True
    ignore_bots: bool = True
    pairing_credit: int = 0
    require_independent_review: bool = False


@dataclass(frozen=True)
class OptionOverrides:
    """Options a rule sets for itself; None inherits from the enclosing rule or the document."""

    allow_author: bool | None = None
    allow_contributors: bool | None = None
    invalidate_on_push: bool | None = None
    keep_on_rebase: bool | None = None
    ignore_bots: bool | None = None
    pairing_credit: int | None = None
    require_independent_review: bool | None = None

    def apply_to(self, base: Options) -> Options:
        changes = {item.name: getattr(self, item.name) for item in fields(self) if getattr(self, item.name) is not None}
        return replace(base, **changes)


@dataclass(frozen=True)
class Rule:
    """A requirement rule (`combine` is "") or a combination of `children` (`combine` is "any" or "all")."""

    name: str
    when: Conditions = Conditions()
    require: Requirements = Requirements()
    options: OptionOverrides = OptionOverrides()
    combine: str = ""
    children: tuple[Rule, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Risk:
    incident_window_days: int = 14
    extra_approvals: int = 0


@dataclass(frozen=True)
class Override:
    allowed: tuple[str, ...] = ("team-leads",)
    # Separation of duties: by default nobody overrides a pull request they authored or contributed to.
    allow_self: bool = False
    followup_review_hours: int = 48


@dataclass(frozen=True)
class Reviewers:
    """`reviewers: {request: 2}`: Tandem requests its top suggestions on GitHub/GitLab until this many people are
    requested or have reviewed. 0 (the default): it only suggests."""

    request: int = 0


@dataclass(frozen=True)
class Deploy:
    """From which risk level a deploy check answers "block" and "warn" (telemetry's deploy check)."""

    block_on: str = "high"
    warn_on: str = "medium"


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    checks: tuple[str, ...] = ()
    options: Options = Options()
    risk: Risk = Risk()
    override: Override = Override()
    reviewers: Reviewers = Reviewers()
    deploy: Deploy = Deploy()


_NO_TEXT: tuple[str, ...] = ()
_NO_PATTERNS: tuple[Pattern, ...] = ()


def parse_policy(text: str) -> Policy:
    """Read a policy document, or raise PolicyError listing every problem with its line."""
    size = len(text.encode("utf-8"))
    if size > MAX_DOCUMENT_BYTES:
        raise PolicyError([Problem(None, "", f"the document is {size} bytes; the limit is 64 KiB")])
    reader = _Reader()
    policy = reader.policy(_compose(text))
    if reader.problems:
        raise PolicyError(reader.problems)
    return policy


def _compose(text: str) -> Node:
    try:
        _nesting_check(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError([Problem(line, "", f"invalid YAML: {error.problem or error.context}")]) from None
    except yaml.YAMLError as error:
        raise PolicyError([Problem(None, "", f"invalid YAML: {error}")]) from None
    if root is None:
        raise PolicyError([Problem(None, "", "the document is empty; it needs at least 'rules'")])
    return root


# Real policies nest about eight levels of YAML (rules → any → rule → if → paths → ...).
MAX_YAML_DEPTH = 64


def _nesting_check(text: str) -> None:
    """Refuse nesting deeper than MAX_YAML_DEPTH before composing: PyYAML composes recursively, and 20,000 levels
    (40 KB of `[`) raise RecursionError. Its event parser is iterative, so counting events is safe."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else None
                raise PolicyError([Problem(line, "", f"the document nests deeper than {MAX_YAML_DEPTH} levels")])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; expected one of: {', '.join(allowed)}"


class _Reader:
    """Walks the node tree once, building the policy and collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()
        self.rule_count = 0
        self.rule_names: dict[str, int] = {}
        self.flattened: set[int] = set()

    # The document's sections.

    def policy(self, root: Node) -> Policy:
        entries = self.mapping(root, "", TOP_KEYS) or {}
        if "rules" not in entries and isinstance(root, MappingNode):
            self.fail(root, "rules", "a policy needs 'rules' (a list of rules)")
        rules = self.rules(entries["rules"], "rules") if "rules" in entries else ()
        checks = self.optional(entries, "checks", "", self.string_list, _NO_TEXT)
        options = self.optional(entries, "options", "", self.option_overrides, OptionOverrides())
        return Policy(
            rules=rules,
            checks=checks,
            options=options.apply_to(Options()),
            risk=self.optional(entries, "risk", "", self.risk, Risk()),
            override=self.optional(entries, "override", "", self.override, Override()),
            reviewers=self.optional(entries, "reviewers", "", self.reviewers, Reviewers()),
            deploy=self.optional(entries, "deploy", "", self.deploy, Deploy()),
        )

    def rules(self, node: Node, path: str, level: int = 0) -> tuple[Rule, ...]:
        if not isinstance(node, SequenceNode):
            self.fail(node, path, f"expected a list of rules, got {self.describe(node)}")
            return ()
        if self.rule_count + len(node.value) > MAX_RULES:
            self.fail(node, path, f"too many rules; the limit is {MAX_RULES}")
            return ()
        self.rule_count += len(node.value)
        found = (self.rule(item, f"{path}[{index}]", level) for index, item in enumerate(node.value))
        return tuple(rule for rule in found if rule is not None)

    def rule(self, node: Node, path: str, level: int) -> Rule | None:
        entries = self.mapping(node, path, RULE_KEYS)
        if entries is None:
            return None
        name = self.rule_name(node, entries.get("name"), path)
        kinds = [kind for kind in ("require", "any", "all") if kind in entries]
        if len(kinds) != 1:
            given = " and ".join(f"'{kind}'" for kind in kinds) or "none"
            self.fail(node, path, f"a rule needs exactly one of 'require', 'any' or 'all' (given: {given})")
        combine = kinds[0] if kinds and kinds[0] != "require" else ""
        children = self.combination(entries[combine], _key(path, combine), level + 1) if combine else ()
        return Rule(
            name=name,
            when=self.optional(entries, "if", path, self.conditions, Conditions()),
            require=self.optional(entries, "require", path, self.requirements, Requirements()),
            options=self.optional(entries, "options", path, self.option_overrides, OptionOverrides()),
            combine=combine,
            children=children,
            line=_line(node),
        )

    def combination(self, node: Node, path: str, level: int) -> tuple[Rule, ...]:
        if level > MAX_NESTING:
            self.fail(node, path, f"'any'/'all' nested more than {MAX_NESTING} levels deep")
            return ()
        if isinstance(node, SequenceNode) and not node.value:
            self.fail(node, path, "expected at least one rule")
            return ()
        return self.rules(node, path, level)

    def rule_name(self, rule_node: Node, node: Node | None, path: str) -> str:
        if node is None:
            self.fail(rule_node, path, "a rule needs a name")
            return ""
        name = (self.string(node, _key(path, "name")) or "").strip()
        if not name:
            self.fail(node, _key(path, "name"), "a rule's name cannot be empty")
        elif len(name) > MAX_NAME_LENGTH:
            self.fail(node, _key(path, "name"), f"a rule's name is limited to {MAX_NAME_LENGTH} characters")
        elif name.casefold() in self.rule_names:
            first = self.rule_names[name.casefold()]
            self.fail(node, _key(path, "name"), f"duplicate rule name '{name}' (first used on line {first})")
        else:
            self.rule_names[name.casefold()] = _line(node)
        return name

    def conditions(self, node: Node, path: str) -> Conditions:
        entries = self.mapping(node, path, CONDITION_KEYS) or {}

        def read(key: str, reader: Callable[[Node, str], T | None], default: T) -> T:
            return self.optional(entries, key, path, reader, default)

        return Conditions(
            paths=read("paths", self.path_patterns, _NO_PATTERNS),
            not_paths=read("not_paths", self.path_patterns, _NO_PATTERNS),
            base_branches=read("base_branches", self.branch_patterns, _NO_PATTERNS),
            labels=tuple(label.lower() for label in read("labels", self.string_list, _NO_TEXT)),
            author_in_teams=tuple(_team_slug(team) for team in read("author_in_teams", self.string_list, _NO_TEXT)),
            size_over=read("size_over", self.bounded(0, MAX_SIZE_OVER), None),
            draft=read("draft", self.boolean, None),
            touches_incident_within_days=read("touches_incident_within_days", self.bounded(1, MAX_WINDOW_DAYS), None),
        )

    def requirements(self, node: Node, path: str) -> Requirements:
        entries = self.mapping(node, path, REQUIREMENT_KEYS) or {}
        teams = tuple(_team_slug(team) for team in self.optional(entries, "teams", path, self.string_list, _NO_TEXT))
        people = tuple(
            _person_name(name) for name in self.optional(entries, "people", path, self.string_list, _NO_TEXT)
        )
        # Naming teams or people without a count means "one approval from them".
        default_approvals = 1 if teams or people else 0
        return Requirements(
            approvals=self.optional(entries, "approvals", path, self.bounded(0, MAX_APPROVALS), default_approvals),
            code_owners=self.optional(entries, "code_owners", path, self.boolean, False),
            teams=teams,
            people=people,
            checks=self.optional(entries, "checks", path, self.string_list, _NO_TEXT),
        )

    def option_overrides(self, node: Node, path: str) -> OptionOverrides:
        entries = self.mapping(node, path, OPTION_KEYS) or {}
        values: dict[str, Any] = {}
        for key, value_node in entries.items():
            read = self.bounded(0, MAX_APPROVALS) if key == "pairing_credit" else self.boolean
            values[key] = read(value_node, _key(path, key))
        return OptionOverrides(**values)

    def risk(self, node: Node, path: str) -> Risk:
        entries = self.mapping(node, path, RISK_KEYS) or {}
        return Risk(
            incident_window_days=self.optional(
                entries, "incident_window_days", path, self.bounded(1, MAX_WINDOW_DAYS), Risk.incident_window_days
            ),
            # A risk section without a count still means "recent incidents raise the bar": by one.
            extra_approvals=self.optional(entries, "extra_approvals", path, self.bounded(0, MAX_APPROVALS), 1),
        )

    def override(self, node: Node, path: str) -> Override:
        entries = self.mapping(node, path, OVERRIDE_KEYS) or {}
        return Override(
            allowed=self.optional(entries, "allowed", path, self.string_list, Override.allowed),
            allow_self=self.optional(entries, "allow_self", path, self.boolean, False),
            followup_review_hours=self.optional(
                entries, "followup_review_hours", path, self.bounded(1, MAX_FOLLOWUP_HOURS), 48
            ),
        )

    def reviewers(self, node: Node, path: str) -> Reviewers:
        entries = self.mapping(node, path, REVIEWERS_KEYS) or {}
        return Reviewers(
            request=self.optional(entries, "request", path, self.bounded(0, MAX_REVIEWERS_REQUESTED), 0),
        )

    def deploy(self, node: Node, path: str) -> Deploy:
        entries = self.mapping(node, path, DEPLOY_KEYS) or {}
        return Deploy(
            block_on=self.optional(entries, "block_on", path, self.threshold, Deploy.block_on),
            warn_on=self.optional(entries, "warn_on", path, self.threshold, Deploy.warn_on),
        )

    # Values.

    def threshold(self, node: Node, path: str) -> str | None:
        value = self.string(node, path)
        if value is not None and value not in DEPLOY_THRESHOLDS:
            self.fail(node, path, f"expected one of {', '.join(DEPLOY_THRESHOLDS)}, got {value!r}")
            return None
        return value

    def optional(
        self, entries: dict[str, Node], key: str, path: str, reader: Callable[[Node, str], T | None], default: T
    ) -> T:
        if key not in entries:
            return default
        value = reader(entries[key], _key(path, key))
        return default if value is None else value

    def mapping(self, node: Node, path: str, allowed: tuple[str, ...]) -> dict[str, Node] | None:
        if not isinstance(node, MappingNode):
            self.fail(node, path, f"expected a mapping, got {self.describe(node)}")
            return None
        if id(node) not in self.flattened:
            self.flattened.add(id(node))
            self.report_duplicate_keys(node, path)
            self.constructor.flatten_mapping(node)
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.fail(key_node, path, f"keys must be text, got {self.describe(key_node)}")
            elif key not in allowed:
                self.fail(key_node, _key(path, key), _unknown_key(key, allowed))
            else:
                # Merged (`<<`) keys come first, so the mapping's own keys win, as YAML says.
                entries[key] = value_node
        return entries

    def report_duplicate_keys(self, node: MappingNode, path: str) -> None:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, ScalarNode):
                continue
            key = self.scalar(key_node)
            if key in seen:
                self.fail(key_node, _key(path, str(key)), f"duplicate key '{key}'")
            seen.add(key)

    def bounded(self, minimum: int, maximum: int) -> Callable[[Node, str], int | None]:
        def read(node: Node, path: str) -> int | None:
            value = self.scalar(node)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                kind = "a non-negative integer" if minimum == 0 else f"an integer of at least {minimum}"
                self.fail(node, path, f"expected {kind}, got {self.describe(node)}")
                return None
            if value > maximum:
                self.fail(node, path, f"{value} is too large; the limit is {maximum:,}")
                return None
            return value

        return read

    def boolean(self, node: Node, path: str) -> bool | None:
        value = self.scalar(node)
        if not isinstance(value, bool):
            self.fail(node, path, f"expected true or false, got {self.describe(node)}")
            return None
        return value

    def string(self, node: Node, path: str) -> str | None:
        value = self.scalar(node)
        if not isinstance(value, str):
            self.fail(node, path, f"expected text, got {self.describe(node)}")
            return None
        return value

    def string_list(self, node: Node, path: str) -> tuple[str, ...] | None:
        items = self.sequence(node, path, "a list of text")
        if items is None:
            return None
        found = (self.nonempty_string(item, f"{path}[{index}]") for index, item in enumerate(items))
        return tuple(value for value in found if value is not None)

    def nonempty_string(self, node: Node, path: str) -> str | None:
        value = self.string(node, path)
        if value is not None and not value.strip():
            self.fail(node, path, "expected text, got an empty string")
            return None
        return value.strip() if value is not None else None

    def sequence(self, node: Node, path: str, expected: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.fail(node, path, f"expected {expected}, got {self.describe(node)}")
            return None
        if len(node.value) > MAX_LIST_ITEMS:
            self.fail(node, path, f"too many entries ({len(node.value)}); the limit is {MAX_LIST_ITEMS}")
            return None
        return list(node.value)

    def path_patterns(self, node: Node, path: str) -> tuple[Pattern, ...] | None:
        """A list of globs and `re:` regexes, or a mapping with `glob:` and `regex:` lists."""
        if not isinstance(node, MappingNode):
            texts = self.string_list(node, path)
            return None if texts is None else self.patterns(node, path, texts, glob_to_regex)
        entries = self.mapping(node, path, PATTERN_FORM_KEYS) or {}
        globs = self.optional(entries, "glob", path, self.string_list, _NO_TEXT)
        regexes = self.optional(entries, "regex", path, self.string_list, _NO_TEXT)
        return self.patterns(node, path, (*globs, *(f"re:{regex}" for regex in regexes)), glob_to_regex)

    def branch_patterns(self, node: Node, path: str) -> tuple[Pattern, ...] | None:
        texts = self.string_list(node, path)
        return None if texts is None else self.patterns(node, path, texts, name_glob_to_regex)

    def patterns(
        self, node: Node, path: str, texts: tuple[str, ...], translate: Callable[[str], str]
    ) -> tuple[Pattern, ...]:
        found = (self.pattern(node, path, text, translate) for text in texts)
        return tuple(pattern for pattern in found if pattern is not None)

    def pattern(self, node: Node, path: str, text: str, translate: Callable[[str], str]) -> Pattern | None:
        try:
            source = text[3:] if text.startswith("re:") else translate(text)
            return Pattern(text=text, regex=re2.compile(source, RE2_OPTIONS))
        except (re.error, re2.error, UnicodeEncodeError) as error:  # RE2 reads UTF-8: a lone surrogate is not
            line = self.item_line(node, text)
            self.problems.append(
                Problem(line, path, f"'{text}' is not a valid regular expression: {_why(error, text)}")
            )
            return None

    def item_line(self, node: Node, text: str) -> int:
        """The line of the list item holding `text`, so that an error in a long list points at its entry."""
        written = {text, text.removeprefix("re:")}
        for item in _descendants(node):
            if isinstance(item, ScalarNode) and str(item.value).strip() in written:
                return _line(item)
        return _line(node)

    # Helpers.

    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return node
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError):
            # An unknown tag or an impossible date: keep the text, so the type check reports it.
            return str(node.value)

    def describe(self, node: Node) -> str:
        if isinstance(node, SequenceNode):
            return "a list"
        if isinstance(node, MappingNode):
            return "a mapping"
        value = self.scalar(node)
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "nothing (null)"
        if isinstance(value, int | float):
            return str(value)
        return repr(str(node.value))

    def fail(self, node: Node, path: str, message: str) -> None:
        self.problems.append(Problem(_line(node), path, message))


def _descendants(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for _, value in node.value for item in _descendants(value)]
    return [node]


def _team_slug(team: str) -> str:
    """`@acme/payments`, `acme/payments` and `payments` all name the team whose slug is `payments`."""
    return team.lstrip("@").rsplit("/", 1)[-1].lower()


def _person_name(name: str) -> str:
    return name.lstrip("@").lower()


def _why(error: Exception, text: str) -> str:
    """RE2 says why in bytes. A pattern only a backtracking engine runs (backreferences, lookarounds) says so."""
    if isinstance(error, UnicodeEncodeError):
        return f"it holds a lone surrogate (U+{ord(error.object[error.start]):04X}), which is not text"
    reason = error.args[0] if error.args else error
    why = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    if isinstance(error, re2.error) and _backtracking_only(text[3:]):
        why += " (re: patterns run on RE2, in linear time: no backreferences or lookarounds)"
    return why


def _backtracking_only(source: str) -> bool:
    try:
        re.compile(source)
    except re.error:
        return False
    return True


DEFAULT_POLICY_TEXT = """\
rules:
  - name: one approval from someone other than the author
    require: {approvals: 1}
"""

DEFAULT_POLICY = parse_policy(DEFAULT_POLICY_TEXT)
