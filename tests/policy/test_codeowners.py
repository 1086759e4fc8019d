"""CODEOWNERS in GitHub and GitLab syntax, and the gitignore-style globs behind both."""

from __future__ import annotations

import re

import pytest

from reviews.policy import OwnerRequirement, PersonRef, is_owner, parse_codeowners
from reviews.policy.codeowners import glob_to_regex

GITHUB = """\
# Lines starting with '#' are comments.
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go    docs@example.com
/build/logs/ @doctocat
docs/*  docs@example.com
apps/   @octocat
/docs/  @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
/payments/ @Acme/Payments-Team
"""


def owners(text: str, path: str, syntax: str = "github") -> list[frozenset[str]]:
    return [requirement.owners for requirement in parse_codeowners(text, syntax).owners_for(path)]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", {"global-owner1", "global-owner2"}),
        ("src/index.js", {"js-owner"}),
        ("cmd/main.go", {"docs@example.com"}),
        ("build/logs/today.log", {"octocat"}),  # **/logs is later than /build/logs/
        ("docs/getting-started.md", {"doctocat"}),  # /docs/ is later than docs/*
        ("scripts/deploy.sh", {"doctocat", "octocat"}),
        ("deeply/nested/logs/x.txt", {"octocat"}),
        ("apps/web/index.ts", {"octocat"}),
        ("payments/api.py", {"acme/payments-team"}),
    ],
)
def test_github_last_matching_pattern_wins(path: str, expected: set[str]) -> None:
    assert owners(GITHUB, path) == [frozenset(expected)]


def test_github_pattern_without_owners_leaves_files_unowned() -> None:
    assert owners(GITHUB, "apps/github/main.go") == []
    assert owners(GITHUB, "apps/other/main.go") == [frozenset({"octocat"})]


def test_github_requirement_shape() -> None:
    (requirement,) = parse_codeowners(GITHUB).owners_for("/payments/api.py")
    assert requirement == OwnerRequirement(
        section="", owners=frozenset({"acme/payments-team"}), approvals_needed=1, optional=False, pattern="/payments/"
    )


def test_github_reads_sections_as_patterns() -> None:
    # `[` starts a character class in GitHub syntax, not a section.
    assert owners("[ab]c.txt @x\n", "ac.txt") == [frozenset({"x"})]


def test_unreadable_lines_are_skipped_and_reported() -> None:
    codeowners = parse_codeowners("* @a\nsrc/ not-an-owner\n")
    assert codeowners.owners_for("src/x.py")[0].owners == frozenset({"a"})
    assert codeowners.errors == (
        "line 2: 'not-an-owner' is not an owner (expected @user, @org/team or an e-mail address)",
    )


def test_escaped_spaces_in_patterns() -> None:
    assert owners("/my\\ docs/ @a\n", "my docs/x.md") == [frozenset({"a"})]


GITLAB = """\
# Default section (before any header)
* @root-owner

[Backend] @backend-default
*.rb
/app/payments/ @payments-lead

[Database][2] @dba1 @dba2 @dba3
db/

^[Documentation] @docs-team
*.md
/app/payments/README.md

[backend]
/app/legacy/
"""


def gitlab(path: str) -> list[OwnerRequirement]:
    return parse_codeowners(GITLAB, "gitlab").owners_for(path)


def test_gitlab_sections_apply_independently() -> None:
    found = {(r.section, r.owners, r.approvals_needed, r.optional) for r in gitlab("app/payments/README.md")}
    assert found == {
        ("", frozenset({"root-owner"}), 1, False),
        ("Backend", frozenset({"payments-lead"}), 1, False),
        ("Documentation", frozenset({"docs-team"}), 1, True),
    }


def test_gitlab_default_owners_fill_in_for_bare_patterns() -> None:
    backend = [r for r in gitlab("app/models/user.rb") if r.section == "Backend"]
    assert backend[0].owners == frozenset({"backend-default"})


def test_gitlab_approvals_count() -> None:
    database = [r for r in gitlab("db/schema.rb") if r.section == "Database"]
    assert (database[0].owners, database[0].approvals_needed) == (frozenset({"dba1", "dba2", "dba3"}), 2)


def test_gitlab_optional_section() -> None:
    docs = [r for r in gitlab("guide.md") if r.section == "Documentation"]
    assert docs[0].optional is True


def test_gitlab_last_match_within_a_section_wins() -> None:
    docs = [r for r in gitlab("app/payments/README.md") if r.section == "Documentation"]
    assert docs[0].pattern == "/app/payments/README.md"


def test_gitlab_sections_with_the_same_name_combine() -> None:
    backend = [r for r in gitlab("app/legacy/old.py") if r.section == "Backend"]
    assert backend[0].owners == frozenset({"backend-default"})


def test_gitlab_exclusion_pattern() -> None:
    text = "[Backend] @be\n*\n!*.lock\n"
    assert owners(text, "Gemfile.lock", "gitlab") == []
    assert owners(text, "app.rb", "gitlab") == [frozenset({"be"})]


def test_gitlab_unowned_when_nothing_matches() -> None:
    assert parse_codeowners("[Backend] @be\n*.rb\n", "gitlab").owners_for("README.md") == []


def test_unknown_syntax_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown CODEOWNERS syntax"):
        parse_codeowners("", "bitbucket")


@pytest.mark.parametrize(
    ("person", "owner_set", "expected"),
    [
        (PersonRef("1", frozenset({"ada"})), {"ada"}, True),
        (PersonRef("1", frozenset({"ada@example.com"})), {"ada@example.com"}, True),
        (PersonRef("1", frozenset({"ada"}), teams=frozenset({"payments"})), {"acme/payments"}, True),
        (PersonRef("1", frozenset({"ada"}), teams=frozenset({"payments"})), {"group/sub/payments"}, True),
        (PersonRef("1", frozenset({"payments"})), {"acme/payments"}, False),
        (PersonRef("1", frozenset({"ada"}), teams=frozenset({"payments"})), {"payments"}, False),
        (PersonRef("1", frozenset({"Ada"})), {"ada"}, True),
    ],
    ids=["login", "email", "team", "nested group", "a login is not a team", "a team is not a login", "case"],
)
def test_is_owner(person: PersonRef, owner_set: set[str], expected: bool) -> None:
    assert is_owner(person, frozenset(owner_set)) is expected


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("*", ["a", "a/b/c.py"], []),
        ("*.md", ["README.md", "docs/x/y.md"], ["README.mdx", "md"]),
        ("payments/**", ["payments/a.py", "payments/x/y.py"], ["payments", "lib/payments/a.py", "payments2/a"]),
        ("docs/*", ["docs/a.md"], ["docs/a/b.md", "x/docs/a.md"]),
        ("/docs/", ["docs/a.md", "docs/a/b.md"], ["x/docs/a.md", "docs"]),
        ("docs/", ["docs/a.md", "x/docs/a.md"], ["docs"]),
        ("docs", ["docs", "docs/a.md", "x/docs/a.md"], ["docsy/a.md"]),
        ("**/logs", ["logs/a", "build/logs/a", "a/b/logs"], ["logsx/a"]),
        ("a/**/b", ["a/b", "a/x/b", "a/x/y/b/c"], ["a/xb"]),
        ("file?.txt", ["file1.txt"], ["file10.txt", "file/.txt"]),
        ("[!a]bc", ["xbc"], ["abc"]),
    ],
)
def test_glob(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    regex = re.compile(glob_to_regex(pattern))
    assert [path for path in matching if not regex.match(path)] == []
    assert [path for path in not_matching if regex.match(path)] == []


def test_a_codeowners_pattern_runs_in_linear_time():
    # CODEOWNERS is read from the repository, so anyone who can push writes its patterns; each is matched against
    # every changed path on every evaluation. Under a backtracking engine these take exponential time.
    owners = parse_codeowners("**/" * 30 + "x @alice\n" + "*a" * 30 + "b @bob\n")
    assert owners.owners_for("a/" * 200 + "b") == []
    assert owners.owners_for("a" * 5_000) == []
    assert [r.owners for r in owners.owners_for("a/" * 200 + "x")] == [frozenset({"alice"})]


def test_a_codeowners_pattern_with_a_lone_surrogate_is_skipped_with_its_reason():
    owners = parse_codeowners("src/\ud800 @alice\ndocs/ @bob\n")
    assert len(owners.errors) == 1 and owners.errors[0].startswith("line 1")
    assert [r.owners for r in owners.owners_for("docs/a.md")] == [frozenset({"bob"})]
