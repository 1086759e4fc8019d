"""A signature, token or API key header that is garbage (non-ASCII, wrong shape) is a 401, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

GARBAGE = ["v1=é", "sha256=ü" + "0" * 63, "é" * 64, "\u00ff\u00fe", "v1=,v1=\u00e9\u00e9", " "]


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.GITHUB_WEBHOOK_SECRET = "gh-secret"
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"
    settings.PAGERDUTY_WEBHOOK_SECRET = "pd-secret"
    settings.OPSGENIE_WEBHOOK_TOKEN = "og-token"


ENDPOINTS = [
    ("/webhooks/github/", "HTTP_X_HUB_SIGNATURE_256", {"HTTP_X_GITHUB_EVENT": "ping", "HTTP_X_GITHUB_DELIVERY": "1"}),
    ("/webhooks/gitlab/", "HTTP_X_GITLAB_TOKEN", {"HTTP_X_GITLAB_EVENT": "Push Hook"}),
    ("/webhooks/pagerduty/", "HTTP_X_PAGERDUTY_SIGNATURE", {}),
    ("/webhooks/opsgenie/", "HTTP_X_TANDEM_TOKEN", {}),
    ("/webhooks/opsgenie/", "HTTP_AUTHORIZATION", {}),
]


@pytest.mark.parametrize("value", GARBAGE)
@pytest.mark.parametrize(("url", "header", "extra"), ENDPOINTS)
def test_a_garbage_credential_header_is_refused_with_401(client, url, header, extra, value):
    if header == "HTTP_AUTHORIZATION":
        value = "Bearer " + value
    response = client.post(url, data=b"{}", content_type="application/json", **{header: value}, **extra)
    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize("value", ["Bearer tdm_é", "Token \u00ff\u00fe", "Bearer é é"])
def test_a_garbage_api_token_is_refused_with_401(client, value):
    response = client.get("/api/v1/teams", HTTP_AUTHORIZATION=value)
    assert response.status_code == 401


MALFORMED_INSTANCES = ["http://[::1", "http://[not-ipv6]/", "https://[::1]:99999/"]


@pytest.mark.parametrize("instance", MALFORMED_INSTANCES)
def test_an_unauthenticated_malformed_gitlab_instance_header_is_a_401(client, instance):
    client.raise_request_exception = False
    response = client.post(
        "/webhooks/gitlab/",
        data=b"{}",
        content_type="application/json",
        HTTP_X_GITLAB_TOKEN="wrong",
        HTTP_X_GITLAB_EVENT="Push Hook",
        HTTP_X_GITLAB_INSTANCE=instance,
    )
    assert response.status_code == 401, response.content
    assert "error" in response.json()


@pytest.mark.parametrize("instance", ["http://[::1", "http://[not-ipv6]/"])
def test_a_verified_malformed_gitlab_instance_header_is_a_400_naming_it(client, instance):
    client.raise_request_exception = False
    response = client.post(
        "/webhooks/gitlab/",
        data=b"{}",
        content_type="application/json",
        HTTP_X_GITLAB_TOKEN="gl-token",
        HTTP_X_GITLAB_EVENT="Push Hook",
        HTTP_X_GITLAB_INSTANCE=instance,
    )
    assert response.status_code == 400, response.content
    assert "X-Gitlab-Instance" in response.json()["error"]
