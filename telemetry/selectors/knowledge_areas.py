"""Services as areas of the bus factor (`reviews.selectors.knowledge`): a file is in a service's area when it lies in
one of the service's repositories and matches one of its path filters (none: the whole repository), as deployment
linking reads them. Registered in TelemetryConfig.ready(); reviews never imports this."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import re2

from reviews.policy.codeowners import RE2_OPTIONS, glob_to_regex
from reviews.selectors.knowledge import SERVICE, AreaRef
from telemetry.models import ServiceRepository


class ServiceAreas:
    def __init__(self, links: dict[int, list[tuple[AreaRef, Any]]]) -> None:
        self.links = links  # repository id → (the service's area, its path pattern or None: every file)

    def areas_of(self, repository_id: int, path: str) -> Iterable[AreaRef]:
        for area, pattern in self.links.get(repository_id, ()):
            if pattern is None or pattern.match(path):
                yield area


def service_areas(repositories: Mapping[int, str]) -> ServiceAreas | None:
    """The services built from these repositories, each an area named by its slug. One query. A service whose path
    filters cannot be read is left out rather than read as the whole repository."""
    links: dict[int, list[tuple[AreaRef, Any]]] = defaultdict(list)
    rows = (
        ServiceRepository.objects.filter(repository_id__in=list(repositories))
        .order_by("service__slug", "repository_id")
        .values_list("repository_id", "service__slug", "service__name", "path_filters")
    )
    for repository_id, slug, name, filters in rows:
        pattern = None
        if filters:
            try:
                pattern = re2.compile("|".join(f"(?:{glob_to_regex(str(f))})" for f in filters), RE2_OPTIONS)
            except (re2.error, UnicodeEncodeError):
                continue
        links[repository_id].append((AreaRef(SERVICE, "", slug, f"service {name}"), pattern))
    return ServiceAreas(dict(links)) if links else None
