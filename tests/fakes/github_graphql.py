"""GitHub's GraphQL API (the subset Tandem's sync asks for), served by the fake GitHub over the same state.

The query is parsed, validated against a schema of the real field names and types, and executed by graphql-core,
so a field GitHub does not have fails as it would there. What GitHub adds around execution is reproduced:

- Every connection needs `first` or `last` (1–100), and a query may reach at most 500,000 nodes.
- Its cost in points follows GitHub's documented rule: one request for each connection per parent node it is
  asked on (a connection under 100 pull requests is 100 requests), summed, divided by 100, at least 1. The cost is
  taken from the hourly budget (5,000 points), reported by `rateLimit { cost remaining resetAt }` and by the
  X-RateLimit-* headers (`X-RateLimit-Resource: graphql`); past the budget, GitHub answers 200 with an error of
  type RATE_LIMITED.
- An Actor who is a bot logs in without the "[bot]" suffix the REST API shows, and a git author or committer
  that is a bot has no `user` (that field is a User).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.error import GraphQLError
from graphql.utilities import value_from_ast_untyped

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub, _Commit, _Pull, _Repo

JSON = dict[str, Any]

NODE_LIMIT = 500_000
POINTS_PER_HOUR = 5000

SCHEMA_SDL = """
scalar DateTime
scalar GitTimestamp
scalar GitObjectID
scalar URI

type Query {
  rateLimit(dryRun: Boolean = false): RateLimit
  repository(owner: String!, name: String!): Repository
}

type RateLimit { cost: Int! limit: Int! nodeCount: Int! remaining: Int! resetAt: DateTime! used: Int! }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! endCursor: String startCursor: String }

enum PullRequestState { OPEN CLOSED MERGED }
enum IssueOrderField { CREATED_AT UPDATED_AT COMMENTS }
enum OrderDirection { ASC DESC }
input IssueOrder { field: IssueOrderField! direction: OrderDirection! }
enum PullRequestReviewState { PENDING COMMENTED APPROVED CHANGES_REQUESTED DISMISSED }
enum PatchStatus { ADDED CHANGED COPIED DELETED MODIFIED RENAMED }

interface Actor { login: String! url: URI! }
type User implements Actor { login: String! url: URI! databaseId: Int name: String }
type Bot implements Actor { login: String! url: URI! databaseId: Int }
type Team { name: String! slug: String! }
union RequestedReviewer = User | Bot | Team

type Repository {
  databaseId: Int
  nameWithOwner: String!
  pullRequest(number: Int!): PullRequest
  pullRequests(first: Int, after: String, last: Int, before: String, states: [PullRequestState!],
               orderBy: IssueOrder): PullRequestConnection!
}

type PullRequestConnection { totalCount: Int! pageInfo: PageInfo! nodes: [PullRequest] }

type PullRequest {
  databaseId: Int
  number: Int!
  title: String!
  body: String!
  url: URI!
  author: Actor
  state: PullRequestState!
  isDraft: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  mergedAt: DateTime
  closedAt: DateTime
  mergedBy: Actor
  baseRefName: String!
  baseRefOid: GitObjectID!
  headRefName: String!
  headRefOid: GitObjectID!
  mergeCommit: Commit
  potentialMergeCommit: Commit
  additions: Int!
  deletions: Int!
  changedFiles: Int!
  labels(first: Int, after: String, last: Int, before: String): LabelConnection
  reviewRequests(first: Int, after: String, last: Int, before: String): ReviewRequestConnection
  reviews(first: Int, after: String, last: Int, before: String, states: [PullRequestReviewState!]):
    PullRequestReviewConnection
  comments(first: Int, after: String, last: Int, before: String): IssueCommentConnection!
  commits(first: Int, after: String, last: Int, before: String): PullRequestCommitConnection!
  files(first: Int, after: String, last: Int, before: String): PullRequestChangedFileConnection
}

type Label { name: String! }
type LabelConnection { totalCount: Int! pageInfo: PageInfo! nodes: [Label] }
type ReviewRequest { requestedReviewer: RequestedReviewer }
type ReviewRequestConnection { totalCount: Int! pageInfo: PageInfo! nodes: [ReviewRequest] }

type PullRequestReview {
  databaseId: Int
  author: Actor
  state: PullRequestReviewState!
  body: String!
  submittedAt: DateTime
  commit: Commit
  comments(first: Int, after: String, last: Int, before: String): PullRequestReviewCommentConnection!
}
type PullRequestReviewConnection { totalCount: Int! pageInfo: PageInfo! nodes: [PullRequestReview] }

type PullRequestReviewComment {
  databaseId: Int
  author: Actor
  body: String!
  createdAt: DateTime!
  path: String!
  pullRequestReview: PullRequestReview
}
type PullRequestReviewCommentConnection { totalCount: Int! pageInfo: PageInfo! nodes: [PullRequestReviewComment] }

type IssueComment { databaseId: Int author: Actor body: String! createdAt: DateTime! }
type IssueCommentConnection { totalCount: Int! pageInfo: PageInfo! nodes: [IssueComment] }

type GitActor { name: String email: String date: GitTimestamp user: User }
type Commit {
  oid: GitObjectID!
  message: String!
  authoredDate: DateTime!
  committedDate: DateTime!
  author: GitActor
  committer: GitActor
  parents(first: Int, after: String, last: Int, before: String): CommitConnection!
}
type CommitConnection { totalCount: Int! pageInfo: PageInfo! nodes: [Commit] }
type PullRequestCommit { commit: Commit! }
type PullRequestCommitConnection { totalCount: Int! pageInfo: PageInfo! nodes: [PullRequestCommit] }

type PullRequestChangedFile { path: String! additions: Int! deletions: Int! changeType: PatchStatus! }
type PullRequestChangedFileConnection { totalCount: Int! pageInfo: PageInfo! nodes: [PullRequestChangedFile] }
"""

_SCHEMA: GraphQLSchema | None = None


def schema() -> GraphQLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = build_schema(SCHEMA_SDL)
        _SCHEMA.get_type("Actor").resolve_type = _typename  # type: ignore[union-attr]
        _SCHEMA.get_type("RequestedReviewer").resolve_type = _typename  # type: ignore[union-attr]
    return _SCHEMA


def _typename(value: JSON, *_: Any) -> str:
    return str(value["__typename"])


def _ts(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:v2:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(cursor).decode().rsplit(":", 1)[1]) + 1
    except (ValueError, IndexError) as exc:
        raise GraphQLError(f"`{cursor}` does not appear to be a valid cursor.") from exc


def connection(items: Sequence[Any], render: Callable[[Any], JSON]) -> Callable[..., JSON]:
    """A connection field resolved lazily: only the page asked for is rendered."""

    def resolve(info: Any, first: int | None = None, after: str | None = None, **_: Any) -> JSON:
        start = _offset(after)
        page = items[start : start + (first or 0)]
        return {
            "totalCount": len(items),
            "pageInfo": {
                "hasNextPage": start + len(page) < len(items),
                "hasPreviousPage": start > 0,
                "startCursor": _cursor(start) if page else None,
                "endCursor": _cursor(start + len(page) - 1) if page else None,
            },
            "nodes": [render(item) for item in page],
        }

    return resolve


# --- cost and limits, as GitHub documents them ---------------------------------------------------------------


def cost_and_nodes(document: Any, operation: OperationDefinitionNode, variables: JSON) -> tuple[int, int]:
    """(points, nodes) of a query; raises GraphQLError for a connection without a valid first/last."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    totals = {"requests": 0, "nodes": 0}

    def walk(selection_set: SelectionSetNode | None, parents: int) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FragmentSpreadNode):
                walk(fragments[selection.name.value].selection_set, parents)
            elif isinstance(selection, InlineFragmentNode):
                walk(selection.selection_set, parents)
            elif isinstance(selection, FieldNode):
                args = {
                    arg.name.value: value_from_ast_untyped(arg.value, variables) for arg in selection.arguments or ()
                }
                if selection.name.value in _CONNECTIONS:
                    size = args.get("first") or args.get("last")
                    name = selection.name.value
                    if size is None:
                        raise GraphQLError(
                            f"You must provide a `first` or `last` value to properly paginate the `{name}` connection."
                        )
                    if not 1 <= int(size) <= 100:
                        raise GraphQLError(
                            f"Requesting {size} records on the `{name}` connection exceeds the `first` limit of "
                            "100 records."
                        )
                    totals["requests"] += parents
                    totals["nodes"] += parents * int(size)
                    walk(selection.selection_set, parents * int(size))
                else:
                    walk(selection.selection_set, parents)

    walk(operation.selection_set, 1)
    return max(1, round(totals["requests"] / 100)), totals["nodes"]


_CONNECTIONS = frozenset(
    {"pullRequests", "labels", "reviewRequests", "reviews", "comments", "commits", "files", "parents"}
)


# --- rendering the fake's state ----------------------------------------------------------------------------------


class Renderer:
    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake

    def actor(self, login: str | None) -> JSON | None:
        if login is None:
            return None
        bot = login.endswith("[bot]")
        name = login.removesuffix("[bot]")
        url = f"{self.fake.web_url}/apps/{name}" if bot else f"{self.fake.web_url}/{login}"
        return {
            "__typename": "Bot" if bot else "User",
            "login": name,
            "url": url,
            "databaseId": self.fake._user_id(login),
        }

    def git_actor(self, name: str | None, email: str | None, when: dt.datetime, login: str | None) -> JSON:
        user = self.actor(login) if login and not login.endswith("[bot]") else None
        return {"name": name, "email": email, "date": _ts(when), "user": user}

    def commit(self, repo: _Repo, commit: _Commit) -> JSON:
        committer_login = commit.committer_login or commit.author_login
        return {
            "oid": commit.sha,
            "message": commit.message,
            "authoredDate": _ts(commit.authored_at),
            "committedDate": _ts(commit.committed_at),
            "author": self.git_actor(commit.author_name, commit.author_email, commit.authored_at, commit.author_login),
            "committer": self.git_actor(
                commit.committer_name or commit.author_name,
                commit.committer_email or commit.author_email,
                commit.committed_at,
                committer_login,
            ),
            "parents": connection(commit.parents, lambda sha: {"oid": sha}),
        }

    def merge_commit(self, sha: str) -> JSON:
        return {
            "oid": sha,
            "message": "Merge",
            "authoredDate": None,
            "committedDate": None,
            "author": None,
            "committer": None,
            "parents": connection([], lambda _: {}),
        }

    def pull(self, repo: _Repo, pull: _Pull) -> JSON:
        merged = pull.merged
        state = "MERGED" if merged else "CLOSED" if pull.state == "closed" else "OPEN"
        reviews_by_id = {review.id: review for review in pull.reviews}
        visible = [r for r in pull.reviews if r.state != "PENDING" or r.user == self.fake.login]

        def review(item: Any) -> JSON:
            comments = [c for c in pull.review_comments if c.review_id == item.id]
            return {
                "databaseId": item.id,
                "author": self.actor(item.user),
                "state": item.state,
                "body": item.body,
                "submittedAt": _ts(item.submitted_at),
                "commit": {
                    "oid": item.commit_id,
                    "message": "",
                    "authoredDate": None,
                    "committedDate": None,
                    "author": None,
                    "committer": None,
                    "parents": connection([], lambda _: {}),
                },
                "comments": connection(comments, lambda c: review_comment(c)),
            }

        def review_comment(comment: Any) -> JSON:
            parent = reviews_by_id.get(comment.review_id)
            return {
                "databaseId": comment.id,
                "author": self.actor(comment.user),
                "body": comment.body,
                "createdAt": _ts(comment.created_at),
                "path": comment.path or "",
                "pullRequestReview": {"databaseId": parent.id} if parent else None,
            }

        def requested(login: str) -> JSON:
            return {"requestedReviewer": self.actor(login)}

        return {
            "databaseId": pull.id,
            "number": pull.number,
            "title": pull.title,
            "body": pull.body,
            "url": f"{self.fake.web_url}/{repo.full_name}/pull/{pull.number}",
            "author": self.actor(pull.author),
            "state": state,
            "isDraft": pull.draft,
            "createdAt": _ts(pull.created_at),
            "updatedAt": _ts(pull.updated_at),
            "mergedAt": _ts(pull.merged_at),
            "closedAt": _ts(pull.closed_at),
            "mergedBy": self.actor(pull.merged_by) if merged else None,
            "baseRefName": pull.base_ref,
            "baseRefOid": pull.base_sha,
            "headRefName": pull.head_ref,
            "headRefOid": pull.head_sha,
            # GitHub: the merge commit once merged; before that, the test merge commit.
            "mergeCommit": self.merge_commit(pull.merge_commit_sha) if merged else None,
            "potentialMergeCommit": None if merged else self.merge_commit(pull.merge_commit_sha),
            "additions": sum(f.additions for f in pull.files),
            "deletions": sum(f.deletions for f in pull.files),
            "changedFiles": len(pull.files),
            "labels": connection(pull.labels, lambda name: {"name": name}),
            "reviewRequests": connection(pull.requested_reviewers, requested),
            "reviews": connection(visible, review),
            "comments": connection(
                pull.issue_comments,
                lambda c: {
                    "databaseId": c.id,
                    "author": self.actor(c.user),
                    "body": c.body,
                    "createdAt": _ts(c.created_at),
                },
            ),
            "commits": connection(pull.commits, lambda c: {"commit": self.commit(repo, c)}),
            "files": connection(
                pull.files[:3000],
                lambda f: {
                    "path": f.filename,
                    "additions": f.additions,
                    "deletions": f.deletions,
                    "changeType": _CHANGE_TYPES.get(f.status, "MODIFIED"),
                },
            ),
        }

    def repository(self, repo: _Repo) -> JSON:
        def pull_requests(info: Any, states: list[str] | None = None, orderBy: JSON | None = None, **page: Any) -> JSON:
            pulls = [p for p in repo.pulls.values() if not states or _state(p) in states]
            field = (orderBy or {}).get("field", "CREATED_AT")
            key: Callable[[Any], Any] = {
                "CREATED_AT": lambda p: (p.created_at, p.number),
                "UPDATED_AT": lambda p: (p.updated_at, p.number),
                "COMMENTS": lambda p: (len(p.issue_comments), p.number),
            }[field]
            pulls.sort(key=key, reverse=(orderBy or {}).get("direction", "ASC") == "DESC")
            return connection(pulls, lambda p: self.pull(repo, p))(info, **page)

        def pull_request(info: Any, number: int) -> JSON | None:
            found = repo.pulls.get(number)
            return None if found is None else self.pull(repo, found)

        return {
            "databaseId": repo.id,
            "nameWithOwner": repo.full_name,
            "pullRequests": pull_requests,
            "pullRequest": pull_request,
        }


_CHANGE_TYPES = {
    "added": "ADDED",
    "removed": "DELETED",
    "modified": "MODIFIED",
    "renamed": "RENAMED",
    "copied": "COPIED",
    "changed": "CHANGED",
}


def _state(pull: _Pull) -> str:
    return "MERGED" if pull.merged else "CLOSED" if pull.state == "closed" else "OPEN"


def serve(fake: FakeGitHub, body: JSON) -> tuple[int, JSON, dict[str, str]]:
    """Answer one POST /graphql: (status, payload, rate-limit headers). Call with the fake's lock held."""
    query = body.get("query") if isinstance(body, dict) else None
    variables = body.get("variables") or {} if isinstance(body, dict) else {}
    if not isinstance(query, str):
        return 400, {"message": "Problems parsing JSON"}, {}
    try:
        document = parse(query)
    except GraphQLError as error:
        return 200, {"errors": [{"message": error.message, "locations": []}]}, fake._graphql_headers()
    errors = validate(schema(), document)
    if errors:
        return 200, {"errors": [{"message": e.message} for e in errors]}, fake._graphql_headers()
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    try:
        cost, nodes = cost_and_nodes(document, operation, variables)
    except GraphQLError as error:
        return (
            200,
            {"errors": [{"type": "INVALID_CURSOR_ARGUMENTS", "message": error.message}]},
            fake._graphql_headers(),
        )
    if nodes > NODE_LIMIT:
        message = (
            f"By the time this query traverses to the nodes connection, it is requesting up to {nodes:,} possible "
            f"nodes which exceeds the maximum limit of {NODE_LIMIT:,}."
        )
        return 200, {"errors": [{"type": "MAX_NODE_LIMIT_EXCEEDED", "message": message}]}, fake._graphql_headers()
    if cost > fake.graphql_remaining:
        message = f"API rate limit already exceeded for user ID {fake._user_id(fake.login)}."
        return 200, {"errors": [{"type": "RATE_LIMITED", "message": message}]}, fake._graphql_headers()
    fake.graphql_remaining -= cost
    fake.graphql_points_used += cost
    renderer = Renderer(fake)

    def repository(info: Any, owner: str, name: str) -> JSON | None:
        repo = fake._repos.get(f"{owner}/{name}")
        return None if repo is None else renderer.repository(repo)

    root = {
        "rateLimit": lambda info, dryRun=False: {
            "cost": cost,
            "limit": POINTS_PER_HOUR,
            "nodeCount": nodes,
            "remaining": fake.graphql_remaining,
            "resetAt": _ts(dt.datetime.fromtimestamp(fake.rate_reset, tz=dt.UTC)),
            "used": POINTS_PER_HOUR - fake.graphql_remaining,
        },
        "repository": repository,
    }
    result = execute(schema(), document, root_value=root, variable_values=variables)
    payload: JSON = {"data": result.data}
    if result.errors:
        payload["errors"] = [{"message": e.message, "path": e.path} for e in result.errors]
    if result.data is not None and "repository" in result.data and result.data["repository"] is None:
        owner, name = variables.get("owner"), variables.get("name")
        payload.setdefault("errors", []).append(
            {
                "type": "NOT_FOUND",
                "path": ["repository"],
                "message": f"Could not resolve to a Repository with the name '{owner}/{name}'.",
            }
        )
    return 200, payload, fake._graphql_headers()
