"""Risk signals: what review policies need to know about production, written here by telemetry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from reviews.models import Repository, RiskSignal
from reviews.selectors.affected import open_pull_requests_of_repositories
from reviews.services.enqueue import pull_request_evaluations_enqueue


def risk_signal_record(
    *,
    repository: Repository,
    reference: str,
    occurred_at: dt.datetime,
    path_prefixes: Sequence[str] = (),
    service_name: str = "",
) -> RiskSignal:
    """Record (idempotently, by repository + reference) that paths of a repository had a confirmed incident."""
    signal, _ = RiskSignal.objects.update_or_create(
        repository=repository,
        reference=reference,
        defaults={"occurred_at": occurred_at, "path_prefixes": list(path_prefixes), "service_name": service_name},
    )
    # `touches_incident_within_days` and the risk's extra approvals read these: verdicts may change now.
    pull_request_evaluations_enqueue(
        pull_request_ids=open_pull_requests_of_repositories(repository_ids=[repository.pk])
    )
    return signal


def risk_signal_withdraw(*, reference: str) -> int:
    """A confirmation was taken back: its signals no longer raise the bar."""
    signals = RiskSignal.objects.filter(reference=reference)
    repository_ids = list(signals.values_list("repository_id", flat=True))
    deleted, _ = signals.delete()
    pull_request_evaluations_enqueue(pull_request_ids=open_pull_requests_of_repositories(repository_ids=repository_ids))
    return deleted
