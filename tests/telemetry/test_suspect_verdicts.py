"""A suspect's verdict is a decision on the record: each confirmation or rejection is a new SuspectVerdict and an
audit event, never edited or deleted; an incident whose suspects were decided cannot be deleted."""

from __future__ import annotations

import pytest
from django.db.models import ProtectedError

from reviews.models import AuditEvent, RecordImmutable
from telemetry.models import SuspectVerdict
from tests.telemetry.test_suspects import decide, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_each_decision_is_a_new_record_with_who_decided(actors, world, run_on_commit):  # noqa: F811
    suspect, _ = world
    with run_on_commit():
        assert decide(actors.client("lead"), suspect, "confirm").status_code == 200
        assert decide(actors.client("token"), suspect, "reject").status_code == 200
    decisions = list(SuspectVerdict.objects.order_by("pk").values_list("verdict", "decided_by", "token__name"))
    assert decisions == [("confirmed", actors.lead.pk, None), ("rejected", None, "payments CI")]
    events = AuditEvent.objects.filter(action="suspect.verdict").order_by("pk")
    assert [e.changes["verdict"] for e in events] == [
        {"before": "suspected", "after": "confirmed"},
        {"before": "confirmed", "after": "rejected"},
    ]
    assert events[1].actor_token is not None and events[1].source == "api"


def test_a_decision_is_never_edited_and_its_incident_never_deleted(actors, world, run_on_commit):  # noqa: F811
    suspect, _ = world
    with run_on_commit():
        decide(actors.client("lead"), suspect, "confirm")
    with pytest.raises(RecordImmutable):
        SuspectVerdict.objects.update(verdict="rejected")
    with pytest.raises(RecordImmutable):
        SuspectVerdict.objects.all().delete()
    with pytest.raises(ProtectedError):
        suspect.incident.delete()
