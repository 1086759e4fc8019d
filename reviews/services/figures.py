"""Stored per-pull-request review figures (`PullRequestFigures`): written by the code that computes them for the team
page (`reviews.selectors.health.computed_flows`), computed again on read or by the reconciler once an input changed.

Owed, without locks and without a query of its own on the write path: a change stamps its pull requests
(`PullRequest.figures_inputs_changed_at`) in its own transaction, in the statement that marks their evaluation owed
(`enqueue.evaluations_owed_mark`). A row is current when its computation began at least `SETTLE` after the last
stamp (`computed_at`: before it read anything): a computation that began after the stamp but before the change
committed did not see the change, and no write transaction lasts `SETTLE`. For that long after a change, its pull
requests' figures are computed again on each read: slower, never wrong.

The row also says what it covered on its pull request (`PullRequest.figures_covered_until`: its computation's start
less `SETTLE`, written with the row), so that a page finds the owed rows of its period with an indexed probe (the
partial index `pr_figures_owed_idx`: merged, and none computed or a stamp after what was covered) instead of
comparing every row of the period. With the flow figures it stores the pull request's status at merge (compliance,
`reviews.selectors.compliance.with_status_at_merge`; a new verdict or violation of a merged pull request stamps it)
and its reviews per reviewer (reviewer load).

In the same transaction it adjusts the per-hour and per-day rollups (`FiguresRollup`, `FiguresDailyRollup`: the
additive figures of a repository's rows merged in one UTC hour, one UTC day) by what the rows it replaced or deleted
contributed and what the new ones do (`rollup_counts`, one definition): a page over whole hours adds those instead of
reading every row (its whole UTC days from the days, its edges from the hours). Each write adds its difference to
what each rollup holds (an upsert per level that sums, so writers of one hour or day add up), and the pull requests
are locked while their old rows are read, so two computations of one pull request cannot both take its old row out.
`rollups_rebuild` (`manage.py rebuild_figures_rollups`) computes both levels again from the rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from reviews.models import FIGURES_DURATIONS, FiguresDailyRollup, FiguresRollup, PullRequest, PullRequestFigures

# Bump when what a stored row means changes (a definition in health or review_facts): every row is computed again.
FIGURES_DEFINITION = "2"  # 2: compliance at merge and reviews per reviewer stored too
REFRESH_BATCH = 500
SETTLE = dt.timedelta(minutes=5)  # longer than any write transaction that stamps pull requests lasts

_STORED_FIELDS = (
    "repository",
    "merged_at",
    "changed_lines",
    *FIGURES_DURATIONS,
    "rework_cycles",
    "approvals",
    "rubber_stamps",
    "rubber_stamped_by",
    "paired",
    "coverage",
    "comments",
    "reviews_by",
    "compliance",
    "outcome_at_merge",
    "override",
    "input_version",
    "computed_at",
)


def figures_input_version(*, bots: Collection[int]) -> str:
    """What the stored figures were computed under besides the pull request's own facts: the definitions, the
    rubber-stamp threshold and who is a bot (bots are in no figure). Another value: every row is computed again."""
    inputs = f"{FIGURES_DEFINITION}|{settings.RUBBER_STAMP_MINUTES_PER_100_LINES}|{sorted(bots)}"
    return hashlib.sha256(inputs.encode()).hexdigest()[:32]


def figures_owed_filter() -> Q:
    """The pull requests (relative to PullRequest) whose stored figures, if merged, are owed: none computed yet, or a
    change stamped after what their computation saw (`figures_covered_until`). The partial index `pr_figures_owed_idx`
    holds exactly the merged ones, so a page finds them without reading the period's rows."""
    return Q(figures_covered_until__isnull=True) | Q(figures_inputs_changed_at__gt=F("figures_covered_until"))


def current_figures_filter(*, version: str) -> Q:
    """The rows that can be read as they are (relative to PullRequestFigures)."""
    changed = "pull_request__figures_inputs_changed_at"
    settled = Q(**{f"{changed}__isnull": True}) | Q(**{f"{changed}__lte": F("computed_at") - SETTLE})
    return Q(input_version=version, merged_at=F("pull_request__merged_at")) & settled


def pull_request_figures_store(*, pull_requests: list[PullRequest], bots: Collection[int], version: str) -> int:
    """Compute the figures of these merged pull requests (read with their repositories' connections, after the
    moment the caller began) and store them, replacing what was there; a pull request no longer merged, or a bot's,
    loses its row (bots are in no figure). Idempotent; one upsert after the computation's own queries."""
    from reviews.selectors.compliance import statuses_at_merge
    from reviews.selectors.health import computed_flows

    if not pull_requests:
        return 0
    began = timezone.now()
    counted = [pr for pr in pull_requests if _counted(pr, bots)]
    flows = computed_flows(pull_requests=counted, bots=set(bots))
    statuses = statuses_at_merge(pull_request_ids=[pr.pk for pr in counted], now=began)
    repository_of = {pr.pk: pr.repository_id for pr in pull_requests}
    rows = [
        PullRequestFigures(
            pull_request_id=flow.pull_request_id,
            repository_id=repository_of[flow.pull_request_id],
            merged_at=flow.merged_at,
            changed_lines=flow.changed_lines,
            time_to_first_review=_seconds(flow.time_to_first_review),
            pickup_time=_seconds(flow.pickup_time),
            review_time=_seconds(flow.review_time),
            time_to_approve=_seconds(flow.time_to_approve),
            merge_time=_seconds(flow.merge_time),
            cycle_time=_seconds(flow.cycle_time),
            rework_cycles=flow.rework_cycles,
            approvals=flow.approvals,
            rubber_stamps=flow.rubber_stamps,
            rubber_stamped_by=[stamp.reviewer_id for stamp in flow.facts.rubber_stamps],
            paired=flow.paired,
            coverage=flow.coverage,
            comments=flow.comments,
            reviews_by=[list(pair) for pair in flow.reviews_by],
            compliance=statuses[flow.pull_request_id].status,
            outcome_at_merge=statuses[flow.pull_request_id].outcome_at_merge,
            override_id=statuses[flow.pull_request_id].override_id,
            input_version=version,
            computed_at=began,
        )
        for flow in flows
    ]
    gone = set(repository_of) - {row.pull_request_id for row in rows}
    with transaction.atomic(savepoint=False):
        replaced = _rows_before(list(repository_of))
        if rows:
            PullRequestFigures.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["pull_request"], update_fields=list(_STORED_FIELDS)
            )
        if gone:  # no longer merged, or now a bot's: in no figure (the delete takes them out of the rollups)
            PullRequestFigures.objects.filter(pull_request_id__in=gone).delete()
        rollups_adjust(
            removed=[(repository_id, row) for repository_id, row in replaced if row.pull_request_id not in gone],
            added=[(repository_of[row.pull_request_id], row) for row in rows],
        )
    # They saw every change stamped SETTLE before they began; a stamp after that leaves them owed.
    PullRequest.objects.filter(pk__in=[pr.pk for pr in pull_requests]).update(figures_covered_until=began - SETTLE)
    return len(rows)


def _counted(pull_request: PullRequest, bots: Collection[int]) -> bool:
    return (
        pull_request.state == PullRequest.State.MERGED
        and pull_request.merged_at is not None
        and pull_request.author_id not in bots
    )


def _seconds(duration: dt.timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


def pull_request_figures_owed_mark(*, pull_requests: QuerySet[PullRequest] | Iterable[int]) -> int:
    """An input of these pull requests' figures changes in the current transaction: stamp them, so that their stored
    figures are computed again. (A change that marks their evaluation owed stamps them already.)"""
    if isinstance(pull_requests, QuerySet):
        rows = PullRequest.objects.filter(pk__in=pull_requests.values_list("pk", flat=True))
    else:
        ids = sorted(set(pull_requests))
        if not ids:
            return 0
        rows = PullRequest.objects.filter(pk__in=ids)
    return rows.update(figures_inputs_changed_at=timezone.now())


def pull_request_figures_refresh(*, bots: Collection[int], limit: int = REFRESH_BATCH) -> int:
    """The reconciler: compute up to `limit` merged pull requests whose stored figures are owed, of another input
    version, or missing (a backfill, too: run it until it returns 0). Idempotent."""
    version = figures_input_version(bots=bots)
    outdated = list(
        PullRequestFigures.objects.exclude(current_figures_filter(version=version))
        # A change of the last SETTLE is computed on read; computed now, it would not be settled yet either.
        .exclude(pull_request__figures_inputs_changed_at__gt=timezone.now() - SETTLE)
        .order_by()
        .values_list("pull_request_id", flat=True)[:limit]
    )
    # Missing, or owed by the pages' probe (`figures_owed_filter`) but not changed within the last SETTLE.
    recent = Q(figures_inputs_changed_at__gt=timezone.now() - SETTLE)
    missing = list(
        PullRequest.objects.filter(state=PullRequest.State.MERGED, merged_at__isnull=False)
        .filter(Q(figures__isnull=True) | (figures_owed_filter() & ~recent))
        .exclude(author_id__in=list(bots))
        .order_by()
        .values_list("pk", flat=True)[: max(limit - len(outdated), 0)]
    )
    owed = set(outdated) | set(missing)
    pull_requests = list(
        PullRequest.objects.filter(pk__in=owed).select_related("repository__connection").order_by("pk")
    )
    return pull_request_figures_store(pull_requests=pull_requests, bots=bots, version=version)


# The fields `rollup_counts` reads (the merge first).
ROLLUP_FIELDS = (
    "merged_at",
    "changed_lines",
    "rework_cycles",
    "approvals",
    "rubber_stamps",
    "rubber_stamped_by",
    "comments",
    "coverage",
    "reviews_by",
    "compliance",
    "outcome_at_merge",
    *FIGURES_DURATIONS,  # their histograms (`order_statistics.histogram_counts`)
)


def rollup_hour(moment: dt.datetime) -> dt.datetime:
    """The UTC hour a merge falls in (its rollup's `hour`)."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def rollup_day(moment: dt.datetime) -> dt.date:
    """The UTC day a merge (or an hour) falls in (its daily rollup's `day`)."""
    return moment.astimezone(dt.UTC).date()


def rollup_counts(row: Any) -> Counter[str]:
    """What one stored row adds to its hour's rollup: the additive parts of `health`'s aggregates (merged, sums,
    coverage, size buckets, review depth), reviews given and rubber stamps per person, and compliance per status and
    outcome at merge (but overridden: its follow-up is read live), and its durations' and size's histogram buckets
    (the medians' ranks). The sums of these are exactly what the aggregates over the rows give."""
    from reviews.selectors.health import size_bucket
    from reviews.selectors.order_statistics import histogram_counts

    counts: Counter[str] = Counter(merged=1, all_rework_cycles=row.rework_cycles, all_approvals=row.approvals)
    counts["all_rubber_stamps"] += row.rubber_stamps
    counts[f"coverage_{row.coverage}"] += 1
    if row.approvals or row.comments:  # `counts_for_depth`
        counts["depth"] += 1
        counts["depth_comments"] += row.comments
    bucket = size_bucket(row.changed_lines)
    if bucket:
        counts[f"size_{bucket}"] += 1
    for reviewer, given in row.reviews_by:
        counts[f"given:{int(reviewer)}"] += int(given)
    if row.rubber_stamps > 0:
        for reviewer in row.rubber_stamped_by:
            counts[f"stamps:{int(reviewer)}"] += 1
    if row.compliance != "overridden":
        counts[f"compliance:{row.compliance}:{row.outcome_at_merge}"] += 1
    counts.update(histogram_counts(row))
    return counts


def rollups_forget(figures: QuerySet[PullRequestFigures]) -> None:
    """These stored rows are about to be deleted: take them out of their rollups (in the deleting transaction)."""
    rollups_adjust(removed=_rows_before(figures.values_list("pull_request_id", flat=True)))


def _rows_before(pull_request_ids: Iterable[int]) -> list[tuple[int, Any]]:
    """(repository, stored row) of these pull requests that have a row, read with what `rollup_counts` needs. Their
    pull requests are locked until the transaction ends (PostgreSQL), stored row or not: two computations of one
    pull request take it out of its rollup (and put it in) one after the other, never both from the same row."""
    names = ROLLUP_FIELDS  # merged_at first: None when there is no stored row
    rows = (
        PullRequest.objects.filter(pk__in=pull_request_ids)
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list("pk", "repository_id", *(f"figures__{name}" for name in names))
    )
    return [
        (row[1], SimpleNamespace(pull_request_id=row[0], **dict(zip(names, row[2:], strict=True))))
        for row in rows
        if row[2] is not None  # a stored row (its merge)
    ]


def rollups_adjust(*, removed: Iterable[tuple[int, Any]] = (), added: Iterable[tuple[int, Any]] = ()) -> None:
    """Take what the `removed` rows contributed out of their hours' and days' rollups and add what the `added` ones
    do, in one upsert per level that adds to what each rollup holds when it is written (the row's own lock, so
    concurrent writers of one hour or day add up; hours before days, each in order, so they never wait in a
    circle); a name whose sum falls to 0 is dropped (a rollup left with nothing holds `{}`).
    In the writers' transaction, after `_rows_before`."""
    delta: dict[tuple[int, dt.datetime], Counter[str]] = defaultdict(Counter)
    for repository_id, row in added:
        delta[repository_id, rollup_hour(row.merged_at)].update(rollup_counts(row))
    for repository_id, row in removed:
        delta[repository_id, rollup_hour(row.merged_at)].subtract(rollup_counts(row))
    _rollups_add(FiguresRollup, "hour", delta)
    _rollups_add(FiguresDailyRollup, "day", daily_totals(delta))


def daily_totals(hourly: Mapping[tuple[int, dt.datetime], Counter[str]]) -> dict[tuple[int, dt.date], Counter[str]]:
    """The hours' counts summed per repository and UTC day (what `FiguresDailyRollup` holds)."""
    days: dict[tuple[int, dt.date], Counter[str]] = defaultdict(Counter)
    for (repository_id, hour), counts in hourly.items():
        days[repository_id, rollup_day(hour)].update(counts)  # update adds negative counts too (unlike +=)
    return days


def _rollups_add(model: Any, level: str, delta: Mapping[tuple[int, Any], Counter[str]]) -> None:
    """Add each key's changed counts to its rollup of `model` (`level`: its column besides the repository)."""
    adapt = connection.ops.adapt_datetimefield_value if level == "hour" else connection.ops.adapt_datefield_value
    values = [
        (repository_id, adapt(start), json.dumps(changed))
        for (repository_id, start), counts in sorted(delta.items())
        if (changed := {name: n for name, n in counts.items() if n})
    ]
    if not values:
        return
    table = model._meta.db_table
    vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    rows = ", ".join([_ROLLUP_VALUES[vendor]] * len(values))
    # Only the table's and the level's names and the code's own fragments are formatted in; values are parameters.
    sql = (
        f"INSERT INTO {table} (repository_id, {level}, counts) VALUES {rows} "  # noqa: S608
        f"ON CONFLICT (repository_id, {level}) DO UPDATE SET counts = {_ROLLUP_SUM[vendor].format(table=table)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in values for value in row])


_ROLLUP_VALUES = {"postgresql": "(%s, %s, %s::jsonb)", "sqlite": "(%s, %s, %s)"}
# The stored counts plus the written ones, name by name, without the names that sum to 0.
_ROLLUP_SUM = {
    "postgresql": (
        "(SELECT COALESCE(jsonb_object_agg(e.name, e.n), '{{}}'::jsonb) FROM (SELECT key AS name, SUM(value::bigint) "
        "AS n FROM (SELECT * FROM jsonb_each_text({table}.counts) UNION ALL SELECT * FROM "
        "jsonb_each_text(EXCLUDED.counts)) both_ GROUP BY key HAVING SUM(value::bigint) <> 0) e)"
    ),
    "sqlite": (
        "(SELECT COALESCE(json_group_object(e.name, e.n), '{{}}') FROM (SELECT key AS name, SUM(value) AS n FROM "
        "(SELECT key, value FROM json_each({table}.counts) UNION ALL "
        "SELECT key, value FROM json_each(excluded.counts)) GROUP BY key HAVING SUM(value) <> 0) e)"
    ),
}


def rollups_rebuild() -> int:
    """Every rollup (hours and days) computed again from the stored rows (after a restore, or to check them):
    returns how many hourly ones."""
    with transaction.atomic():
        if connection.vendor == "postgresql":  # no writer of the rows (and so of the rollups) until it is done
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {PullRequestFigures._meta.db_table} IN SHARE MODE")
        FiguresRollup.objects.all().delete()
        FiguresDailyRollup.objects.all().delete()
        hourly = rollup_totals(PullRequestFigures.objects.all())
        daily_rollups_create(FiguresDailyRollup, daily_totals(hourly))
        return rollups_create(FiguresRollup, hourly)


def rollup_totals(figures: QuerySet[Any]) -> dict[tuple[int, dt.datetime], Counter[str]]:
    """The rollups of these stored rows, summed in one pass (models as the caller has them: a migration's too)."""
    totals: dict[tuple[int, dt.datetime], Counter[str]] = defaultdict(Counter)
    for row in figures.only("repository", *ROLLUP_FIELDS).order_by("pull_request_id").iterator(chunk_size=5000):
        totals[row.repository_id, rollup_hour(row.merged_at)].update(rollup_counts(row))
    return totals


def rollups_create(model: Any, totals: dict[tuple[int, dt.datetime], Counter[str]]) -> int:
    model.objects.bulk_create(
        (model(repository_id=key[0], hour=key[1], counts=dict(counts)) for key, counts in totals.items()),
        batch_size=5000,
    )
    return len(totals)


def daily_rollups_create(model: Any, totals: Mapping[tuple[int, dt.date], Counter[str]]) -> int:
    model.objects.bulk_create(
        (model(repository_id=key[0], day=key[1], counts=dict(+counts)) for key, counts in totals.items() if +counts),
        batch_size=5000,
    )
    return len(totals)
