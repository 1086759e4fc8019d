"""Tandem's review-policy engine: pure Python, no Django.

A `Snapshot` of a pull request at one head sha and a `Policy` (parsed from YAML) go in; `evaluate` returns a
`Trace` saying, rule by rule, which approvals counted, which did not and why, and the verdict.
"""

from __future__ import annotations

from reviews.policy.codeowners import CodeOwners, OwnerRequirement, is_owner, parse_codeowners
from reviews.policy.document import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_TEXT,
    Conditions,
    OptionOverrides,
    Options,
    Override,
    Pattern,
    Policy,
    PolicyError,
    Problem,
    Requirements,
    Risk,
    Rule,
    parse_policy,
)
from reviews.policy.engine import (
    Approval,
    BlockingReview,
    CheckTrace,
    Discarded,
    IncidentHit,
    RiskTrace,
    RuleTrace,
    Trace,
    approvals_that_count,
    asks_code_owners,
    contributors,
    evaluate,
    incident_windows,
)
from reviews.policy.snapshot import (
    CommitRef,
    FileChange,
    FrozenDict,
    PairingCredit,
    PersonRef,
    ReviewRef,
    RiskSignalRef,
    Snapshot,
    SnapshotError,
)

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_POLICY_TEXT",
    "Approval",
    "BlockingReview",
    "CheckTrace",
    "CodeOwners",
    "CommitRef",
    "Conditions",
    "Discarded",
    "FileChange",
    "FrozenDict",
    "IncidentHit",
    "OptionOverrides",
    "Options",
    "Override",
    "OwnerRequirement",
    "PairingCredit",
    "Pattern",
    "PersonRef",
    "Policy",
    "PolicyError",
    "Problem",
    "Requirements",
    "ReviewRef",
    "Risk",
    "RiskSignalRef",
    "RiskTrace",
    "Rule",
    "RuleTrace",
    "Snapshot",
    "SnapshotError",
    "Trace",
    "approvals_that_count",
    "asks_code_owners",
    "contributors",
    "evaluate",
    "incident_windows",
    "is_owner",
    "parse_codeowners",
    "parse_policy",
]
