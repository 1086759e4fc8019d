"""GitHub's GraphQL API for sync: pull requests with their reviews, comments, commits and files, many to a call.

A GraphQL pull request is turned into the REST shapes the REST client reads (`rest_pull`, `rest_review`, ...), so
the very same converters in `reviews.integrations.github` make the records: what is stored cannot depend on the
API it came through. Where the shapes differ, GitHub's REST answer is the reference:

- A bot's `login` is "dependabot" in GraphQL and "dependabot[bot]" in REST.
- A git author or committer that is a bot has no `user` in GraphQL (the field is a User); REST names the bot
  account, which GitHub's no-reply address (`<id>+<login>@users.noreply.github.com`) also names.
- `merge_commit_sha` is the merge commit once merged, else the test merge commit (`potentialMergeCommit`).

What GraphQL cannot give is fetched by REST (see `GitHubClient`): a renamed file's previous path, and any list
longer than a page. A diff's patches (the fingerprint that keeps an approval across a rebase) are not fetched with
the page: an open pull request's head is marked as owing its fingerprint, fetched by one compare call when a verdict
needs it (`reviews.services.sync.fingerprints_fetch`).

Points: GitHub charges one request per connection per parent node, /100. Every connection below a pull request is
one request per pull request; `reviews.comments` and `commits.parents` are one per review and per commit, so
their page sizes (REVIEWS, COMMITS) set the price: about 0.5 point a pull request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from reviews.integrations.payloads import JsonReader

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
  baseRefName baseRefOid headRefName headRefOid
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
#
# Every value is read through `JsonReader` (the one typed reader), so a value of the wrong type in GitHub's answer is
# a PayloadError naming its path. Values passed on as they are (`raw`) are checked by the REST converters.


def rest_user(actor: JsonReader | None) -> dict[str, Any] | None:
    if actor is None:
        return None
    bot = actor.opt_str("__typename") == "Bot"
    login = actor.opt_str("login")
    if bot and not login.endswith("[bot]"):
        login += "[bot]"
    return {"login": login, "id": actor.raw("databaseId"), "type": "Bot" if bot else "User"}


def _git_account(git_actor: JsonReader | None) -> dict[str, Any] | None:
    """The account REST names for a git author or committer: GraphQL's `user`, or the bot its no-reply address is."""
    if git_actor is None:
        return None
    user = git_actor.opt_obj("user")
    if user is not None:
        return {"login": user.raw("login"), "id": user.raw("databaseId"), "type": "User"}
    found = _NOREPLY_BOT.match(git_actor.opt_str("email"))
    return {"login": found.group(2), "id": int(found.group(1)), "type": "Bot"} if found else None


def _git_person(git_actor: JsonReader | None) -> dict[str, Any] | None:
    if git_actor is None:
        return None
    return {"name": git_actor.raw("name"), "email": git_actor.raw("email"), "date": git_actor.raw("date")}


def _nodes(node: JsonReader, key: str) -> list[JsonReader]:
    """The nodes of a connection (GraphQL lists a node it cannot give as null: left out)."""
    connection = node.opt_obj(key)
    if connection is None:
        return []
    path = connection.key_path("nodes")
    items = connection.opt_list("nodes") or []
    return [JsonReader(item, f"{path}[{index}]") for index, item in enumerate(items) if item is not None]


def _more(node: JsonReader, key: str) -> bool:
    return node.opt_bool(key, "pageInfo", "hasNextPage")


def overflows(node: JsonReader) -> bool:
    """Whether any list of this pull request is longer than the page GraphQL was asked for."""
    if any(_more(node, key) for key in ("labels", "reviewRequests", "reviews", "comments", "commits", "files")):
        return True
    if any(_more(review, "comments") for review in _nodes(node, "reviews")):
        return True
    return any(_more(item.req_obj("commit"), "parents") for item in _nodes(node, "commits"))


def rest_pull(node: JsonReader) -> dict[str, Any]:
    state = node.opt_str("state")
    merge_commit = node.opt_obj("mergeCommit") or node.opt_obj("potentialMergeCommit")
    reviewers = []
    for request in _nodes(node, "reviewRequests"):
        reviewer = request.opt_obj("requestedReviewer")
        if reviewer is not None and reviewer.opt_str("__typename") in ("User", "Bot"):
            reviewers.append(rest_user(reviewer))
    return {
        "id": node.raw("databaseId"),
        "number": node.raw("number"),
        "title": node.raw("title"),
        "body": node.raw("body") or None,
        "html_url": node.raw("url"),
        "user": rest_user(node.opt_obj("author")),
        "state": "open" if state == "OPEN" else "closed",
        "merged": state == "MERGED",
        "draft": node.raw("isDraft"),
        "created_at": node.raw("createdAt"),
        "updated_at": node.raw("updatedAt"),
        "merged_at": node.raw("mergedAt"),
        "closed_at": node.raw("closedAt"),
        "merged_by": rest_user(node.opt_obj("mergedBy")),
        "base": {"ref": node.raw("baseRefName"), "sha": node.raw("baseRefOid")},
        "head": {"ref": node.raw("headRefName"), "sha": node.raw("headRefOid")},
        "merge_commit_sha": merge_commit.raw("oid") if merge_commit is not None else None,
        "additions": node.raw("additions"),
        "deletions": node.raw("deletions"),
        "changed_files": node.raw("changedFiles"),
        "commits": node.raw("commits", "totalCount"),
        "labels": [{"name": label.raw("name")} for label in _nodes(node, "labels")],
        "requested_reviewers": reviewers,
    }


def rest_reviews(node: JsonReader) -> list[dict[str, Any]]:
    return [
        {
            "id": review.raw("databaseId"),
            "user": rest_user(review.opt_obj("author")),
            "state": review.raw("state"),
            "body": review.raw("body"),
            "submitted_at": review.raw("submittedAt"),
            "commit_id": review.raw("commit", "oid"),
        }
        for review in _nodes(node, "reviews")
    ]


def rest_review_comments(node: JsonReader) -> list[dict[str, Any]]:
    return [
        {
            "id": comment.raw("databaseId"),
            "user": rest_user(comment.opt_obj("author")),
            "body": comment.raw("body"),
            "created_at": comment.raw("createdAt"),
            "path": comment.raw("path"),
            "pull_request_review_id": review.raw("databaseId"),
        }
        for review in _nodes(node, "reviews")
        for comment in _nodes(review, "comments")
    ]


def rest_issue_comments(node: JsonReader) -> list[dict[str, Any]]:
    return [
        {
            "id": comment.raw("databaseId"),
            "user": rest_user(comment.opt_obj("author")),
            "body": comment.raw("body"),
            "created_at": comment.raw("createdAt"),
        }
        for comment in _nodes(node, "comments")
    ]


def rest_commits(node: JsonReader) -> list[dict[str, Any]]:
    commits = []
    for item in _nodes(node, "commits"):
        commit = item.req_obj("commit")
        author, committer = commit.opt_obj("author"), commit.opt_obj("committer")
        commits.append(
            {
                "sha": commit.raw("oid"),
                "commit": {
                    "message": commit.raw("message"),
                    "author": _git_person(author),
                    "committer": _git_person(committer),
                },
                "author": _git_account(author),
                "committer": _git_account(committer),
                "parents": [{"sha": parent.raw("oid")} for parent in _nodes(commit, "parents")],
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


def rest_files(node: JsonReader) -> list[dict[str, Any]]:
    return [
        {
            "filename": changed.raw("path"),
            "additions": changed.raw("additions"),
            "deletions": changed.raw("deletions"),
            "status": _FILE_STATUS.get(changed.opt_str("changeType"), "modified"),
        }
        for changed in _nodes(node, "files")
    ]


def files_lack_previous_path(node: JsonReader) -> bool:
    """A renamed or copied file's previous path is not in GraphQL."""
    return any(changed.opt_str("changeType") in ("RENAMED", "COPIED") for changed in _nodes(node, "files"))
