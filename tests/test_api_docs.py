"""`/api/docs/` works without internet access (Swagger UI from the installed sidecar package, no CDN), and a person
who is not signed in is sent to sign in, from the docs as from the team pages; API clients still get JSON 401."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from reviews.services.tokens import api_token_create
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db

BROWSER = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_the_docs_page_loads_swagger_ui_from_tandem_itself(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser(username="root", password="x"))  # noqa: S106
    page = client.get("/api/docs/", **BROWSER)
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in s for s in sources), sources
    assert not [s for s in sources if s.startswith(("http://", "https://", "//"))], sources  # no CDN
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js") is not None
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css") is not None


@pytest.mark.parametrize("path", ["/api/docs/", "/teams/", "/teams/payments/", "/pulls/1/", "/notices/"])
def test_an_anonymous_browser_is_sent_to_sign_in(path):
    TeamFactory(slug="payments")
    response = Client().get(path, **BROWSER)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_an_anonymous_api_client_still_gets_a_json_401():
    response = Client().get("/api/docs/", HTTP_ACCEPT="*/*")  # curl's, and most HTTP libraries'
    assert response.status_code == 401
    assert response.json()["error"]


def test_a_token_with_a_browser_accept_header_is_not_redirected():
    _, secret = api_token_create(name="ci", teams=[TeamFactory()])
    response = Client().get("/api/docs/", HTTP_AUTHORIZATION="Bearer tdm_wrong", **BROWSER)
    assert response.status_code == 401
    assert Client().get("/api/docs/", HTTP_AUTHORIZATION=f"Bearer {secret}", **BROWSER).status_code == 200
