"""Blameless notices reach the people they address: "Your notices" for every signed-in person (linked from every
page's navigation, with the unread count) and `GET /api/v1/notifications`, each person's own only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from telemetry.models import Notification
from telemetry.services.suspects import suspect_confirm
from tests.telemetry.test_suspects import world  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

API = "/api/v1/notifications"


@pytest.fixture
def noticed(actors, world):  # noqa: F811 - the fixture above
    """The suspect confirmed: Alice (who wrote it) and Max (who reviewed it) each have a notice; Lena none."""
    suspect, alice = world
    alice.user = get_user_model().objects.create_user(username="alice", password="x")  # noqa: S106
    alice.save()
    suspect_confirm(suspect=suspect, decided_by=actors.lead)
    return alice


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_page_links_to_your_notices_with_the_unread_count(actors, noticed):
    page = _browser(noticed.user).get("/teams/").content.decode()
    link = re.search(r'<a href="/notices/" id="nav-notices">(.*?)</a>', page)
    assert link is not None
    assert "Your notices" in link.group(1)
    assert '<span class="badge">1</span>' in link.group(1)
    lena = _browser(actors.lead.user).get("/teams/").content.decode()
    assert 'id="nav-notices">Your notices</a>' in lena  # no badge: nothing unread


def test_your_notices_shows_your_own_and_only_yours(actors, noticed):
    page = _browser(noticed.user).get("/notices/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "“Checkout 500s” was traced to acme/shop#1" in text
    assert "which you wrote" in text
    assert "which you reviewed" not in text  # Max's notice is his
    assert "Mark 1 notice as read" in text
    assert "not about blame" in text
    assert "No notices" in _browser(actors.lead.user).get("/notices/").content.decode()


def test_marking_your_notices_read_leaves_the_others_alone(actors, noticed):
    client = _browser(noticed.user)
    response = client.post("/notices/")
    assert response.status_code == 302
    assert Notification.objects.get(person=noticed).read_at is not None
    assert Notification.objects.get(person=actors.member).read_at is None
    page = client.get("/notices/").content.decode()
    assert 'class="badge">' not in page
    assert "Mark" not in page


def test_a_login_with_no_person_is_told_why_nothing_reaches_it(noticed):
    admin = get_user_model().objects.create_superuser(username="root", password="x")  # noqa: S106
    page = _browser(admin).get("/notices/").content.decode()
    assert "not linked to a person" in page
    assert "Checkout 500s" not in page  # a superuser reads only their own notices too


def test_an_anonymous_visitor_is_sent_to_sign_in():
    response = Client().get("/notices/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- API --------------------------------------------------------------------------------------------------------------


def test_the_api_lists_the_callers_own_notices(actors, noticed):
    body = actors.client("member").get(API).json()
    assert body["count"] == 1
    [notice] = body["results"]
    assert notice["subject"] == "“Checkout 500s” was traced to acme/shop#1"
    assert "which you reviewed" in notice["body"]
    assert notice["read_at"] is None
    assert notice["incident"]["title"] == "Checkout 500s"
    assert notice["pull_request"]["repository"] == "acme/shop"
    assert notice["pull_request"]["number"] == 1
    assert actors.client("lead").get(API).json()["count"] == 0


def test_the_api_is_paginated_and_filters_unread(actors, noticed, django_assert_max_num_queries):
    for number in range(2, 8):
        Notification.objects.create(person=noticed, kind="test", subject=f"notice {number}", body="…")
    client = actors.client("member")
    client.force_authenticate(user=noticed.user)
    with django_assert_max_num_queries(4):
        first = client.get(API, {"page_size": 3}).json()
    assert first["count"] == 7
    assert len(first["results"]) == 3
    assert first["next"]
    assert [n["subject"] for n in first["results"]] == ["notice 7", "notice 6", "notice 5"]
    read = first["results"][0]["id"]
    response = client.post(f"{API}/{read}/read")
    assert response.status_code == 200
    assert response.json()["read_at"]
    assert client.post(f"{API}/{read}/read").json()["read_at"] == response.json()["read_at"]  # again: unchanged
    assert client.get(API, {"unread": "true"}).json()["count"] == 6
    assert client.get(API, {"unread": "maybe"}).status_code == 400


def test_nobody_reads_or_marks_another_persons_notice(actors, noticed):
    alices = Notification.objects.get(person=noticed).pk
    assert actors.client("member").post(f"{API}/{alices}/read").status_code == 404
    assert actors.client("outsider").post(f"{API}/{alices}/read").status_code == 404
    assert Notification.objects.get(pk=alices).read_at is None


@pytest.mark.parametrize(("who", "status"), [("token", 403), ("anonymous", 401)])
def test_tokens_and_anonymous_callers_read_no_notices(actors, noticed, who, status):
    response = actors.client(who).get(API)
    assert response.status_code == status
    assert response.json()["error"]


def test_the_notifications_endpoint_is_in_the_openapi_schema(actors):
    client = actors.client("lead")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/notifications"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"page", "page_size", "unread"}
    assert "403" in operation["responses"]
    assert "/api/v1/notifications/{id}/read" in schema["paths"]
