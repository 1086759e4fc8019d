"""The endpoint template of a GitHub or GitLab API URL, for counting calls by endpoint without an id in the label.

`/api/v3/repos/acme/api/pulls/12/files?page=2` is `/repos/{owner}/{repo}/pulls/{number}/files`; GitLab's
`/api/v4/projects/acme%2Fapi/merge_requests/7/notes` is `/projects/{project}/merge_requests/{number}/notes`. Names,
numbers, shas, refs and file paths become placeholders, so the set of templates stays as small as the set of
endpoints Tandem calls, whatever the repositories are called.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Segments after which the rest of the path is one value (a file path, a compare range).
_REST_IS_ONE = {"contents": "{path}", "compare": "{basehead}"}
# Segments always followed by a value, which may look like a word (a branch "main", a file "README").
_NEXT_IS_VALUE = {"commits": "{ref}", "statuses": "{ref}", "branches": "{branch}", "files": "{path}"}
_WORD = re.compile(r"^[a-z][a-z_-]{0,39}$")
_API_PREFIX = re.compile(r"^/api/v[34](?=/)")


def endpoint_template(url: str) -> str:
    """The URL's path with every value replaced by a placeholder (see the module's docstring)."""
    path = _API_PREFIX.sub("", urlsplit(url).path) or "/"
    segments = [segment for segment in path.split("/") if segment]
    template: list[str] = []
    index = 0
    while index < len(segments):
        segment = segments[index]
        previous = template[-1] if template else ""
        if previous == "repos" and len(template) == 1:
            template += ["{owner}", "{repo}"]
            index += 2
            continue
        if previous == "projects" and len(template) == 1:
            template.append("{project}")
        elif previous in _REST_IS_ONE:
            template.append(_REST_IS_ONE[previous])
            break
        elif previous in _NEXT_IS_VALUE:
            template.append("{number}" if segment.isdigit() else _NEXT_IS_VALUE[previous])
        elif segment.isdigit():
            template.append("{number}")
        elif _WORD.match(segment):
            template.append(segment)
        else:
            template.append("{id}")
        index += 1
    return "/" + "/".join(template)
