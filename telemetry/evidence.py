"""Change-management evidence: every change a team merged to its default branch in a period, with its approvals,
its verdict at merge and the trace behind it, overrides with their reason and follow-up, the pairing credit used
and the deployments that shipped it — streamed as CSV or JSON in constant memory, a chunk of changes at a time.

The export ends with its own SHA-256: the last line carries the digest of every byte before that line, so a
copy handed to an auditor can be checked later (`head -n -1 export.csv | sha256sum`, or `evidence_verify`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F, Q

from reviews.models import Override, OverrideWithdrawal, PolicyEvaluation, PullRequest, Review, Team
from reviews.selectors.compliance import merged_changes
from reviews.selectors.review_facts import NO_FACTS, pull_request_review_facts
from telemetry.models import DeploymentChange

CHUNK = 500
CSV_COLUMNS = [
    "pull_request", "repository", "number", "title", "author", "base_ref", "merged_at", "merged_by", "head_sha",
    "merge_commit_sha", "status", "reason", "verdict_at_merge", "verdict_evaluated_at", "verdict_head_sha",
    "approvals", "pairing_credit", "overrides", "deployments", "trace",
]  # fmt: skip
DIGEST_PREFIX_CSV = "# sha256: "


def evidence_changes(*, team: Team, since: dt.datetime, until: dt.datetime) -> Iterator[dict[str, Any]]:
    """The evidence, one dict per merged change, oldest merge first; a bounded number of queries per chunk."""
    base = (
        merged_changes(team=team, since=since, until=until)
        # A change merged to the default branch (or to a branch Tandem was never told about: fail closed, include).
        .filter(Q(base_ref="") | Q(base_ref=F("repository__default_branch")))
        .select_related("repository", "author", "merged_by")
        .order_by("merged_at", "pk")
    )
    after: tuple[dt.datetime | None, int] | None = None
    while True:
        queryset = base
        if after is not None:
            queryset = queryset.filter(Q(merged_at__gt=after[0]) | Q(merged_at=after[0], pk__gt=after[1]))
        chunk = list(queryset[:CHUNK])
        if not chunk:
            return
        yield from _rows(chunk)
        after = (chunk[-1].merged_at, chunk[-1].pk)


def _rows(chunk: list[PullRequest]) -> Iterator[dict[str, Any]]:
    ids = [pr.pk for pr in chunk]
    facts = pull_request_review_facts(pull_request_ids=ids)
    approvals: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for review in (
        Review.objects.filter(pull_request_id__in=ids, state=Review.State.APPROVED)
        .select_related("reviewer")
        .order_by("submitted_at", "pk")
    ):
        counted = facts.get(review.pull_request_id, NO_FACTS).approvals
        approvals[review.pull_request_id].append(
            {
                "reviewer": review.reviewer.display_name if review.reviewer else None,
                "at": review.submitted_at,
                "head": review.commit_sha,
                # METRICS.md's "approval that counted": what the verdict counted toward a rule that applies.
                "counted": any(
                    (a.reviewer_id, a.submitted_at) == (review.reviewer_id, review.submitted_at) for a in counted
                ),
            }
        )
    evaluations = PolicyEvaluation.objects.in_bulk([pr.verdict_at_merge_id for pr in chunk if pr.verdict_at_merge_id])  # type: ignore[attr-defined]
    overrides: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for override in (
        Override.objects.filter(pull_request_id__in=ids)
        .select_related("overridden_by", "followup__reviewer", "followup__review", "withdrawal__withdrawn_by")
        .order_by("created_at", "pk")
    ):
        overrides[override.pull_request_id].append(_override(override))
    deployments: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for change in (
        DeploymentChange.objects.filter(pull_request_id__in=ids)
        .select_related("deployment__service")
        .order_by("deployment__finished_at", "deployment_id")
    ):
        deployment = change.deployment
        if (change.pull_request_id, deployment.pk) in seen:
            continue
        seen.add((change.pull_request_id, deployment.pk))  # type: ignore[arg-type]
        deployments[change.pull_request_id].append(  # type: ignore[index]
            {
                "service": deployment.service.slug,
                "environment": deployment.environment,
                "sha": deployment.sha,
                "status": deployment.status,
                "finished_at": deployment.finished_at,
            }
        )
    for pr in chunk:
        evaluation = evaluations.get(pr.verdict_at_merge_id)  # type: ignore[attr-defined]
        trace = evaluation.trace if evaluation else None
        yield {
            "pull_request": pr.pk,
            "repository": pr.repository.full_path,
            "number": pr.number,
            "title": pr.title,
            "author": pr.author.display_name if pr.author else None,
            "base_ref": pr.base_ref,
            "merged_at": pr.merged_at,
            "merged_by": pr.merged_by.display_name if pr.merged_by else None,
            "head_sha": pr.head_sha,
            "merge_commit_sha": pr.merge_commit_sha,
            "status": pr.status,  # type: ignore[attr-defined]
            "reason": pr.reason,  # type: ignore[attr-defined]
            "verdict_at_merge": evaluation.outcome if evaluation else None,
            "verdict_evaluated_at": evaluation.evaluated_at if evaluation else None,
            "verdict_head_sha": evaluation.head_sha if evaluation else None,
            "approvals": approvals[pr.pk],
            "pairing_credit": _pairing_credit(trace),
            "overrides": overrides[pr.pk],
            "deployments": deployments[pr.pk],
            "trace": trace,
        }


def _override(override: Override) -> dict[str, Any]:
    followup = getattr(override, "followup", None)
    withdrawal = getattr(override, "withdrawal", None)
    return {
        "by": override.overridden_by.display_name,
        "at": override.created_at,
        "head": override.head_sha,
        "reason": override.reason,
        "incident_reference": override.incident_reference,
        "followup_due_at": override.followup_due_at,
        "followup": {
            "reviewer": followup.reviewer.display_name,
            "at": followup.completed_at,
            "note": followup.note,
            "review": followup.review.external_id if followup.review else None,
        }
        if followup
        else None,
        "withdrawn": {
            "by": withdrawal.withdrawn_by.display_name,
            "at": withdrawal.created_at,
            "reason": withdrawal.reason,
        }
        if withdrawal
        else None,
    }


def _withdrawal(withdrawal: OverrideWithdrawal | None) -> dict[str, Any] | None:
    if withdrawal is None:
        return None
    return {"by": withdrawal.withdrawn_by.display_name, "at": withdrawal.created_at, "reason": withdrawal.reason}


def _pairing_credit(trace: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Approvals that counted by way of pairing rather than a review, from every rule of the trace."""
    found: list[dict[str, Any]] = []
    rules = list((trace or {}).get("rules", []))
    while rules:
        rule = rules.pop(0)
        for approval in rule.get("approvals_counted", []):
            if approval.get("via", "review") != "review":
                found.append({"rule": rule.get("name"), **approval})
        rules.extend(rule.get("children", []))
    return found


def _json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)


def _csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return _json(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def evidence_csv(rows: Iterable[dict[str, Any]], *, header: dict[str, Any]) -> Iterator[bytes]:
    """A comment line naming the export, the columns, a line per change, and the digest line last."""
    digest = hashlib.sha256()

    def emit(text: str) -> bytes:
        data = text.encode()
        digest.update(data)
        return data

    yield emit("# tandem evidence " + _json(header) + "\n")
    yield emit(_csv_line(CSV_COLUMNS))
    count = 0
    for row in rows:
        count += 1
        yield emit(_csv_line(_csv_value(row[column]) for column in CSV_COLUMNS))
    yield emit(f"# rows: {count}\n")
    yield f"{DIGEST_PREFIX_CSV}{digest.hexdigest()}\n".encode()


def evidence_json(rows: Iterable[dict[str, Any]], *, header: dict[str, Any]) -> Iterator[bytes]:
    """One JSON object; each change on a line of its own; `"sha256"` alone on the last line."""
    digest = hashlib.sha256()

    def emit(text: str) -> bytes:
        data = text.encode()
        digest.update(data)
        return data

    yield emit('{"export": ' + _json(header) + ',\n"changes": [\n')
    count = 0
    for row in rows:
        yield emit((",\n" if count else "") + _json(row))
        count += 1
    yield emit(f'\n],\n"rows": {count},\n')
    yield f'"sha256": "{digest.hexdigest()}"}}\n'.encode()


def evidence_verify(content: bytes) -> bool:
    """True when the last line's digest is the SHA-256 of every byte before it (CSV or JSON export)."""
    body, _, last = content.rstrip(b"\n").rpartition(b"\n")
    body += b"\n"
    text = last.decode()
    if text.startswith(DIGEST_PREFIX_CSV):
        claimed = text[len(DIGEST_PREFIX_CSV) :]
    elif text.startswith('"sha256": "'):
        claimed = text[len('"sha256": "') :].rstrip('"}')
    else:
        return False
    return hashlib.sha256(body).hexdigest() == claimed.strip()
