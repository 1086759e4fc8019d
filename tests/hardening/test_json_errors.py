"""Every error under /api/ and /webhooks/ is JSON; pages elsewhere keep Django's HTML."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/nowhere", "/api/v2/", "/webhooks/bitbucket/", "/webhooks/"])
def test_an_unknown_machine_path_is_a_json_404(client, path):
    response = client.post(path, data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found."}


@pytest.mark.parametrize("path", ["/webhooks/github/", "/webhooks/gitlab/", "/webhooks/pagerduty/"])
def test_a_wrong_method_on_a_webhook_is_a_json_405_naming_the_allowed_one(client, path):
    response = client.get(path)
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed."}
    assert response["Allow"] == "POST"


def test_an_unhandled_error_under_webhooks_is_a_json_500(settings, monkeypatch):
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"

    def broken(**fields):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("reviews.webhooks.webhook_delivery_receive", broken)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/webhooks/gitlab/",
        data=b'{"object_kind": "push"}',
        content_type="application/json",
        HTTP_X_GITLAB_TOKEN="gl-token",
        HTTP_X_GITLAB_EVENT="Push Hook",
    )
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error."}
    assert "database on fire" not in response.content.decode()


def test_pages_outside_the_machine_prefixes_keep_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
