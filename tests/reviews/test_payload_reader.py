"""One typed reader of payloads for every integration: the same fault reads the same whoever sent it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reviews.integrations import github, gitlab
from reviews.integrations.payloads import JsonReader
from reviews.integrations.records import PayloadError
from telemetry.integrations import opsgenie, pagerduty
from tests.reviews.test_github_payloads import load
from tests.reviews.test_gitlab_payloads import shared
from tests.telemetry.test_incident_webhooks import og_event, pd_event


def _github(payload_change: Any) -> None:
    event, payload = load("pull_request.opened.json")
    payload_change(payload)
    github.parse_webhook(event, payload)


def _gitlab(payload_change: Any) -> None:
    payload = shared("mr_open_real.json")
    payload_change(payload)
    gitlab.parse_webhook("Merge Request Hook", payload)


def _pagerduty(payload_change: Any) -> None:
    payload = pd_event()
    payload_change(payload)
    pagerduty.parse_webhook(payload)


def _opsgenie(payload_change: Any) -> None:
    payload = og_event()
    payload_change(payload)
    opsgenie.parse_webhook(payload)


@pytest.mark.parametrize(
    ("parse", "change", "message"),
    [
        (_github, lambda p: p["pull_request"].update(title=7), "pull_request.title: expected a string, got integer"),
        (_gitlab, lambda p: p["object_attributes"].update(title=7), "object_attributes.title: expected a string"),
        (_pagerduty, lambda p: p["event"].update(event_type=7), "event.event_type: expected a string, got integer"),
        (_opsgenie, lambda p: p.update(action=7), "action: expected a string, got integer"),
        (_github, lambda p: p.update(pull_request=[]), "pull_request: expected an object, got array"),
        (_gitlab, lambda p: p.update(project=[]), "project: expected an object, got array"),
        (_pagerduty, lambda p: p["event"].update(data=[]), "event.data: expected an object, got array"),
        (_opsgenie, lambda p: p.update(alert=[]), "alert: expected an object, got array"),
    ],
)
def test_the_same_fault_reads_the_same_on_every_integration(parse, change, message):
    with pytest.raises(PayloadError) as raised:
        parse(change)
    assert str(raised.value).startswith(message)


def test_getters_walk_keys_and_name_the_path():
    reader = JsonReader({"a": {"b": {"c": 1, "d": None}}, "e": "2025-03-10T12:00:00Z", "f": "12"})
    assert reader.req_int("a", "b", "c") == 1
    assert reader.opt_str("a", "b", "d") == ""
    assert reader.opt_int("a", "x", "y") is None
    assert reader.req_time("e") == dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC)
    assert reader.req_id("f") == "12"
    for call, text in (
        (lambda: reader.req_int("a", "b", "d"), "a.b.d: expected an integer, got null"),
        (lambda: reader.req_str("a", "x"), "a.x: missing"),
        (lambda: reader.req_obj("a", "b", "c"), "a.b.c: expected an object, got integer"),
        (lambda: reader.req_time("f"), "f: expected a date-time, got '12'"),
    ):
        with pytest.raises(PayloadError) as raised:
            call()
        assert str(raised.value) == text
