"""Risk signals: what review policies need to know about production, written here by telemetry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from reviews.models import Repository, RiskSignal


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
    return signal


def risk_signal_withdraw(*, reference: str) -> int:
    """A confirmation was taken back: its signals no longer raise the bar."""
    deleted, _ = RiskSignal.objects.filter(reference=reference).delete()
    return deleted
