"""GitLab's GraphQL API (POST /api/graphql, the subset Tandem's sync asks for), over the fake GitLab's state.

The query is parsed, validated against a schema of GitLab's real field names and types, and executed by
graphql-core. GitLab's ways are kept: global ids (`gid://gitlab/Note/12`), `iid` as a string, enum values in
upper case for `detailedMergeStatus`, connections of at most 100 nodes a page, `diffRefs` null while the diff is
prepared, and the same request throttle as the REST API (the fake counts a GraphQL call like any other).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from graphql import GraphQLSchema, build_schema, graphql_sync

if TYPE_CHECKING:
    from tests.fakes.gitlab import FakeGitLab, _MergeRequest, _Project

Json = dict[str, Any]
MAX_PAGE = 100

SCHEMA_SDL = """
scalar Time

type Query {
  project(fullPath: ID!): Project
}

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! endCursor: String startCursor: String }

type Project {
  id: ID!
  fullPath: ID!
  mergeRequests(iids: [String!], updatedAfter: Time, first: Int, after: String, last: Int, before: String):
    MergeRequestConnection
}

type MergeRequestConnection { count: Int! pageInfo: PageInfo! nodes: [MergeRequest] }

enum DetailedMergeStatus {
  APPROVALS_SYNCING BLOCKED_STATUS CHECKING CI_MUST_PASS CI_STILL_RUNNING COMMITS_STATUS CONFLICT
  DISCUSSIONS_NOT_RESOLVED DRAFT_STATUS JIRA_ASSOCIATION_MISSING LOCKED_LFS_FILES LOCKED_PATHS MERGEABLE MERGE_TIME
  NEED_REBASE NOT_APPROVED
  NOT_OPEN PREPARING REQUESTED_CHANGES SECURITY_POLICY_VIOLATIONS TITLE_NOT_MATCHING UNCHECKED
}

type DiffRefs { baseSha: String headSha: String! startSha: String! }
type DiffStatsSummary { additions: Int! changes: Int! deletions: Int! fileCount: Int! }

type UserCore { id: ID! username: String! name: String! webUrl: String! bot: Boolean! }
type UserCoreConnection { count: Int! pageInfo: PageInfo! nodes: [UserCore] }

type DiffPosition { newPath: String oldPath: String }
type Note { id: ID! body: String! system: Boolean! createdAt: Time! author: UserCore position: DiffPosition }
type NoteConnection { count: Int! pageInfo: PageInfo! nodes: [Note] }

type MergeRequest {
  id: ID!
  iid: String!
  title: String!
  updatedAt: Time!
  detailedMergeStatus: DetailedMergeStatus
  diffRefs: DiffRefs
  diffStatsSummary: DiffStatsSummary
  approvedBy(first: Int, after: String, last: Int, before: String): UserCoreConnection
  notes(first: Int, after: String, last: Int, before: String): NoteConnection!
}
"""

_SCHEMA: GraphQLSchema | None = None


def schema() -> GraphQLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = build_schema(SCHEMA_SDL)
    return _SCHEMA


def _gid(kind: str, number: int) -> str:
    return f"gid://gitlab/{kind}/{number}"


def _cursor(offset: int) -> str:
    return base64.b64encode(f'{{"offset":{offset}}}'.encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().split(":")[1].rstrip("}")) + 1


def connection(items: Sequence[Any], render: Callable[[Any], Json]) -> Callable[..., Json]:
    def resolve(info: Any, first: int | None = None, after: str | None = None, **_: Any) -> Json:
        size = min(first or MAX_PAGE, MAX_PAGE)  # GitLab caps every page at 100
        start = _offset(after)
        page = items[start : start + size]
        return {
            "count": len(items),
            "pageInfo": {
                "hasNextPage": start + len(page) < len(items),
                "hasPreviousPage": start > 0,
                "startCursor": _cursor(start) if page else None,
                "endCursor": _cursor(start + len(page) - 1) if page else None,
            },
            "nodes": [render(item) for item in page],
        }

    return resolve


def _user(user: Json) -> Json:
    return {
        "id": _gid("User", user["id"]),
        "username": user["username"],
        "name": user["name"],
        "webUrl": user["web_url"],
        "bot": bool(user.get("bot")),
    }


def _note(note: Json) -> Json:
    position = note.get("position")
    return {
        "id": _gid("Note", note["id"]),
        "body": note["body"],
        "system": bool(note.get("system")),
        "createdAt": note["created_at"],
        "author": _user(note["author"]),
        "position": {"newPath": position.get("new_path"), "oldPath": position.get("old_path")} if position else None,
    }


def _merge_request(project: _Project, mr: _MergeRequest) -> Json:
    data = mr.data
    notes = sorted(mr.notes, key=lambda note: (note["created_at"], note["id"]))
    ready = mr.diff_ready
    return {
        "id": _gid("MergeRequest", data["id"]),
        "iid": str(data["iid"]),
        "title": data["title"],
        "updatedAt": data["updated_at"],
        "detailedMergeStatus": "MERGEABLE" if ready else "PREPARING",
        "diffRefs": (
            {"baseSha": project.base_sha, "headSha": data["sha"], "startSha": project.base_sha} if ready else None
        ),
        "diffStatsSummary": {"additions": 0, "changes": 0, "deletions": 0, "fileCount": len(mr.diffs) * ready},
        "approvedBy": connection([user for user, _ in mr.approvals], _user),
        "notes": connection(notes, _note),
    }


def serve(fake: FakeGitLab, body: Any) -> tuple[int, Json]:
    """Answer one POST /api/graphql. Call with the fake's lock held."""
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, str):
        return 400, {"errors": [{"message": "No query string was present"}]}
    variables = body.get("variables") or {}

    def project(info: Any, fullPath: str) -> Json | None:
        found = fake._projects.get(fullPath)
        if found is None:
            return None

        def merge_requests(
            info: Any, iids: list[str] | None = None, updatedAfter: str | None = None, **page: Any
        ) -> Json:
            items = list(found.merge_requests.values())
            if iids is not None:
                wanted = {int(iid) for iid in iids}
                items = [mr for mr in items if mr.data["iid"] in wanted]
            if updatedAfter:
                items = [mr for mr in items if mr.data["updated_at"] >= updatedAfter]
            items.sort(key=lambda mr: (mr.data["updated_at"], mr.data["id"]), reverse=True)
            return connection(items, lambda mr: _merge_request(found, mr))(info, **page)

        return {"id": _gid("Project", found.data["id"]), "fullPath": fullPath, "mergeRequests": merge_requests}

    result = graphql_sync(schema(), query, root_value={"project": project}, variable_values=variables)
    payload: Json = {"data": result.data}
    if result.errors:
        payload["errors"] = [{"message": error.message, "path": error.path} for error in result.errors]
    return 200, payload
