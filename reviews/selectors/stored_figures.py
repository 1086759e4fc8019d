"""The stored per-pull-request review figures (`PullRequestFigures`) of given pull requests, for surfaces that need a
few of each pull request's figures rather than the team page's aggregates (DORA's lead-time parts and review modes).

Read as `reviews.services.figures` defines a current row (`current_figures_filter`); the rows missing or owed are
computed and stored first, as the team page does: never stale, only slower. A fixed number of queries besides that
computation, whatever the number of pull requests.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from reviews.models import PullRequest, PullRequestFigures
from reviews.selectors.health import bot_ids


def current_pull_request_figures(
    *, pull_request_ids: Collection[int], fields: Sequence[str] = ()
) -> dict[int, PullRequestFigures]:
    """Pull request → its current stored figures, for those of `pull_request_ids` that have figures: merged, and
    not a bot's (unless METRICS_INCLUDE_BOTS). The others are left out.

    `fields`: the only figures the caller reads (all when empty). Reading the rows whole cost DORA's team section
    more than its queries: two JSON lists and two dates decoded per pull request, for three numbers."""
    from reviews.services.figures import current_figures_filter, figures_input_version, pull_request_figures_store

    ids = sorted(set(pull_request_ids))
    if not ids:
        return {}
    bots = bot_ids()
    version = figures_input_version(bots=bots)
    rows = PullRequestFigures.objects.filter(pull_request_id__in=ids)
    if fields:
        rows = rows.only("pull_request_id", *fields)
    found = {row.pull_request_id: row for row in rows.filter(current_figures_filter(version=version))}
    missing = [pk for pk in ids if pk not in found]
    if not missing:
        return found
    owed = list(
        PullRequest.objects.filter(pk__in=missing)
        .filter(state=PullRequest.State.MERGED, merged_at__isnull=False)
        .exclude(author_id__in=list(bots))
        .select_related("repository__connection")
        .order_by("pk")
    )
    if owed:
        pull_request_figures_store(pull_requests=owed, bots=bots, version=version)
        found |= {row.pull_request_id: row for row in rows.filter(pull_request_id__in=[pr.pk for pr in owed])}
    return found
