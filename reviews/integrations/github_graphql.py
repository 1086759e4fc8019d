"""GitHub's GraphQL API for sync: pull requests with their reviews, comments, commits and files, many to a call.

A GraphQL pull request is turned into the REST shapes the REST client reads (`rest_pull`, `rest_review`, ...), so
the very same converters in `reviews.integrations.github` make the records: what is stored cannot depend on the
API it came through. Where the shapes differ, GitHub's REST answer is the reference:

- A bot's `login` is "dependabot" in GraphQL and "dependabot[bot]" in REST.
- A git author or committer that is a bot has no `user` in GraphQL (the field is a User); REST names the bot
  account, which GitHub's no-reply address (`<id>+<login>@users.noreply.github.com`) also names.
- `merge_commit_sha` is the merge commit once merged, else the test merge commit (`potentialMergeCommit`).

What GraphQL cannot give is fetched by REST (see `GitHubClient`): a diff's patches (for the fingerprint of an open
pull request's head) and a renamed file's previous path, and any list longer than a page asks here.

Points: GitHub charges one request per connection per parent node, /100. Every connection below a pull request is
one request per pull request; `reviews.comments` and `commits.parents` are one per review and per commit, so
their page sizes (REVIEWS, COMMITS) set the price: about 0.5 point a pull request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

PAGE_SIZE = 100  # pull requests per call (GitHub's maximum)
BATCH_SIZE = 25  # pull requests per call when asked for by number (incremental sync)
REVIEWS = 10  # reviews per pull request; more: that pull request is read by REST
REVIEW_COMMENTS = 50  # diff comments per review
COMMITS = 30  # commits per pull request
PARENTS = 5  # parents per commit (an octopus merge has more than 2)
LISTS = 100  # labels, requested reviewers, conversation comments and files per pull request

_NOREPLY_BOT = re.compile(r"^(\d+)\+([^@]+\[bot\])@users\.noreply\.github\.com$", re.IGNORECASE)

FRAGMENTS = f"""
fragment ActorFields on Actor {{ __typename login ... on User {{ databaseId }} ... on Bot {{ databaseId }} }}
fragment GitActorFields on GitActor {{ name email date user {{ login databaseId }} }}
fragment PullRequestFacts on PullRequest {{
  databaseId number title body url state isDraft createdAt updatedAt mergedAt closedAt
  author {{ ...ActorFields }}
  mergedBy {{ ...ActorFields }}
  baseRefName headRefName headRefOid
  mergeCommit {{ oid }}
  potentialMergeCommit {{ oid }}
  additions deletions changedFiles
  labels(first: {LISTS}) {{ pageInfo {{ hasNextPage }} nodes {{ name }} }}
  reviewRequests(first: {LISTS}) {{
    pageInfo {{ hasNextPage }}
    nodes {{ requestedReviewer {{ __typename ... on User {{ login databaseId }} ... on Bot {{ login databaseId }} }} }}
  }}
  reviews(first: {REVIEWS}) {{
    pageInfo {{ hasNextPage }}
    nodes {{
      databaseId state body submittedAt
      author {{ ...ActorFields }}
      commit {{ oid }}
      comments(first: {REVIEW_COMMENTS}) {{
        pageInfo {{ hasNextPage }}
        nodes {{ databaseId body createdAt path author {{ ...ActorFields }} }}
      }}
    }}
  }}
  comments(first: {LISTS}) {{
    pageInfo {{ hasNextPage }}
    nodes {{ databaseId body createdAt author {{ ...ActorFields }} }}
  }}
  commits(first: {COMMITS}) {{
    totalCount
    pageInfo {{ hasNextPage }}
    nodes {{
      commit {{
        oid message
        author {{ ...GitActorFields }}
        committer {{ ...GitActorFields }}
        parents(first: {PARENTS}) {{ pageInfo {{ hasNextPage }} nodes {{ oid }} }}
      }}
    }}
  }}
  files(first: {LISTS}) {{ totalCount pageInfo {{ hasNextPage }} nodes {{ path additions deletions changeType }} }}
}}
"""

RATE_LIMIT = "rateLimit { cost remaining resetAt }"

PAGE_QUERY = (
    """
query PullRequestPage($owner: String!, $name: String!, $first: Int!, $after: String) {
  RATE_LIMIT
  repository(owner: $owner, name: $name) {
    pullRequests(first: $first, after: $after, orderBy: {field: UPDATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes { ...PullRequestFacts }
    }
  }
}
""".replace("RATE_LIMIT", RATE_LIMIT)
    + FRAGMENTS
)


def numbers_query(numbers: Sequence[int]) -> str:
    """One call for these pull requests, each under an alias (`n<number>`)."""
    fields = "\n".join(
        f"    n{int(number)}: pullRequest(number: {int(number)}) {{ ...PullRequestFacts }}" for number in numbers
    )
    return (
        "query PullRequestsByNumber($owner: String!, $name: String!) {\n"
        f"  {RATE_LIMIT}\n"
        "  repository(owner: $owner, name: $name) {\n"
        f"{fields}\n"
        "  }\n"
        "}\n" + FRAGMENTS
    )


# --- GraphQL shapes → REST shapes ----------------------------------------------------------------------------------


def rest_user(actor: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not actor:
        return None
    bot = actor.get("__typename") == "Bot"
    login = str(actor.get("login") or "")
    if bot and not login.endswith("[bot]"):
        login += "[bot]"
    return {"login": login, "id": actor.get("databaseId"), "type": "Bot" if bot else "User"}


def _git_account(git_actor: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The account REST names for a git author or committer: GraphQL's `user`, or the bot its no-reply address is."""
    if not git_actor:
        return None
    user = git_actor.get("user")
    if user:
        return {"login": user.get("login"), "id": user.get("databaseId"), "type": "User"}
    found = _NOREPLY_BOT.match(str(git_actor.get("email") or ""))
    return {"login": found.group(2), "id": int(found.group(1)), "type": "Bot"} if found else None


def _git_person(git_actor: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not git_actor:
        return None
    return {"name": git_actor.get("name"), "email": git_actor.get("email"), "date": git_actor.get("date")}


def _nodes(connection: Mapping[str, Any] | None) -> list[Any]:
    return [node for node in (connection or {}).get("nodes") or [] if node is not None]


def overflows(node: Mapping[str, Any]) -> bool:
    """Whether any list of this pull request is longer than the page GraphQL was asked for."""

    def more(connection: Mapping[str, Any] | None) -> bool:
        return bool(((connection or {}).get("pageInfo") or {}).get("hasNextPage"))

    if any(more(node.get(key)) for key in ("labels", "reviewRequests", "reviews", "comments", "commits", "files")):
        return True
    if any(more(review.get("comments")) for review in _nodes(node.get("reviews"))):
        return True
    return any(more((item.get("commit") or {}).get("parents")) for item in _nodes(node.get("commits")))


def rest_pull(node: Mapping[str, Any]) -> dict[str, Any]:
    state = node.get("state")
    merge_commit = node.get("mergeCommit") or node.get("potentialMergeCommit") or {}
    reviewers = [
        rest_user(request.get("requestedReviewer"))
        for request in _nodes(node.get("reviewRequests"))
        if (request.get("requestedReviewer") or {}).get("__typename") in ("User", "Bot")
    ]
    return {
        "id": node.get("databaseId"),
        "number": node.get("number"),
        "title": node.get("title"),
        "body": node.get("body") or None,
        "html_url": node.get("url"),
        "user": rest_user(node.get("author")),
        "state": "open" if state == "OPEN" else "closed",
        "merged": state == "MERGED",
        "draft": node.get("isDraft"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "merged_at": node.get("mergedAt"),
        "closed_at": node.get("closedAt"),
        "merged_by": rest_user(node.get("mergedBy")),
        "base": {"ref": node.get("baseRefName")},
        "head": {"ref": node.get("headRefName"), "sha": node.get("headRefOid")},
        "merge_commit_sha": merge_commit.get("oid"),
        "additions": node.get("additions"),
        "deletions": node.get("deletions"),
        "changed_files": node.get("changedFiles"),
        "commits": (node.get("commits") or {}).get("totalCount"),
        "labels": [{"name": label.get("name")} for label in _nodes(node.get("labels"))],
        "requested_reviewers": reviewers,
    }


def rest_reviews(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": review.get("databaseId"),
            "user": rest_user(review.get("author")),
            "state": review.get("state"),
            "body": review.get("body"),
            "submitted_at": review.get("submittedAt"),
            "commit_id": (review.get("commit") or {}).get("oid"),
        }
        for review in _nodes(node.get("reviews"))
    ]


def rest_review_comments(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": comment.get("databaseId"),
            "user": rest_user(comment.get("author")),
            "body": comment.get("body"),
            "created_at": comment.get("createdAt"),
            "path": comment.get("path"),
            "pull_request_review_id": review.get("databaseId"),
        }
        for review in _nodes(node.get("reviews"))
        for comment in _nodes(review.get("comments"))
    ]


def rest_issue_comments(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": comment.get("databaseId"),
            "user": rest_user(comment.get("author")),
            "body": comment.get("body"),
            "created_at": comment.get("createdAt"),
        }
        for comment in _nodes(node.get("comments"))
    ]


def rest_commits(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    commits = []
    for item in _nodes(node.get("commits")):
        commit = item.get("commit") or {}
        commits.append(
            {
                "sha": commit.get("oid"),
                "commit": {
                    "message": commit.get("message"),
                    "author": _git_person(commit.get("author")),
                    "committer": _git_person(commit.get("committer")),
                },
                "author": _git_account(commit.get("author")),
                "committer": _git_account(commit.get("committer")),
                "parents": [{"sha": parent.get("oid")} for parent in _nodes(commit.get("parents"))],
            }
        )
    return commits


_FILE_STATUS = {
    "ADDED": "added",
    "DELETED": "removed",
    "MODIFIED": "modified",
    "RENAMED": "renamed",
    "COPIED": "copied",
    "CHANGED": "changed",
}


def rest_files(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "filename": changed.get("path"),
            "additions": changed.get("additions"),
            "deletions": changed.get("deletions"),
            "status": _FILE_STATUS.get(str(changed.get("changeType")), "modified"),
        }
        for changed in _nodes(node.get("files"))
    ]


def files_lack_previous_path(node: Mapping[str, Any]) -> bool:
    """A renamed or copied file's previous path is not in GraphQL."""
    return any(changed.get("changeType") in ("RENAMED", "COPIED") for changed in _nodes(node.get("files")))
