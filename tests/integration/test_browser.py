"""A browser opens the demo team page: Playwright driving Debian's Chromium (never a downloaded browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from reviews.models import Person

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(__file__).resolve().parents[2] / "test-results" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); .ci/run installs it"
    ),
]


@pytest.fixture
def demo_lead(transactional_db):
    call_command("seed_demo", "--scale", "0.1", verbosity=0)
    user = User.objects.create_user("ada", password="demo-pass", is_staff=True)
    Person.objects.filter(display_name="Ada Okafor").update(user=user)
    return user


def test_demo_team_page_shows_its_figures_and_charts(monkeypatch, live_server, demo_lead):
    from playwright.sync_api import sync_playwright

    # Playwright runs an event loop in this thread; the ORM work above is done, and none happens below. For this test
    # only: the tests after it (in this process, whichever they are under xdist) keep Django's check.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/teams/payments/")
        assert "/accounts/login/" in page.url  # sign in first
        page.fill("#id_username", "ada")
        page.fill("#id_password", "demo-pass")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/teams/payments/")
        assert page.locator("h1").inner_text() == "Payments"
        merged = page.locator('[data-metric="merged"] .value').inner_text()
        assert int(merged) > 0
        assert page.locator('[data-metric="coverage"] .value').inner_text().endswith("%")
        assert page.locator("#review-flow table tr").count() >= 7
        assert page.locator("svg.chart").count() >= 4
        assert page.locator("#reviewer-load tr").count() >= 2
        page.screenshot(path=str(OUTPUT / "team-page.png"), full_page=True)
        page.goto(f"{live_server.url}/teams/")
        assert page.locator("text=Payments").count() == 1
        browser.close()
    assert (OUTPUT / "team-page.png").stat().st_size > 10_000
