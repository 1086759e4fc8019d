"""Two events of one incident applied at once, before its row exists (bench/faults.py: a PagerDuty trigger and its
resolve 10 ms apart): the newer one wins, whichever commits last."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time

import pytest
from django.db import connection, connections

from telemetry.integrations.records import IncidentRecord
from telemetry.services import incidents as incident_services

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def _event(status: str, occurred_at: dt.datetime) -> IncidentRecord:
    return IncidentRecord(
        source="pagerduty", external_id="P-RACE", title="Checkout down", status=status, started_at=T0,
        occurred_at=occurred_at, resolved_at=occurred_at if status == "resolved" else None,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_an_older_event_applied_at_the_same_time_as_a_newer_one_never_wins(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time; the race is PostgreSQL's")
    # Both events get past their read of the row before either writes (unless something orders them), and the
    # older one writes last.
    both_read = threading.Barrier(2)
    real_upsert = incident_services.incident_upsert

    def upsert_after_both_read(**kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):  # the other event waits for this one: ordered
            both_read.wait(timeout=2)
        if kwargs["status"] == "triggered":
            time.sleep(0.3)
        return real_upsert(**kwargs)

    monkeypatch.setattr(incident_services, "incident_upsert", upsert_after_both_read)
    monkeypatch.setattr(incident_services, "incident_correlate_enqueue", lambda **kwargs: None)
    errors: list[BaseException] = []

    def apply(event: IncidentRecord) -> None:
        try:
            incident_services.incident_record_apply(record=event)
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=apply, args=(_event("resolved", T0 + dt.timedelta(minutes=5)),)),
        threading.Thread(target=apply, args=(_event("triggered", T0),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    from telemetry.models import Incident

    assert Incident.objects.get(source="pagerduty", external_id="P-RACE").status == "resolved"
