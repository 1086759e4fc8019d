"""A lead steers the demo team page in a browser: Playwright driving Debian's Chromium (never a downloaded browser).

The journey of issue 17: a period range, a filter, a drill-down from a tile and its CSV, a pull request's timeline,
a suspect change confirmed, the pages at 360 px, and axe-core on every page. A screenshot of each step is saved
under test-results/browser/. axe-core comes from the npm registry (package-lock.json; `make node_modules`) and is
injected from node_modules, never from a CDN.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from reviews.models import Person, PullRequest
from telemetry.models import SuspectChange

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = ROOT / "test-results" / "browser"
PHONE = {"width": 360, "height": 740}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); .ci/run installs it"
    ),
]


@pytest.fixture
def no_session_left_open(transactional_db) -> Iterator[None]:
    """After the test and its browser: no other session on the test database but this thread's, within the 5 s
    PostgreSQL's DROP DATABASE waits for them (one left open makes the suite's teardown fail to drop it)."""
    yield
    if connection.vendor != "postgresql":
        return
    others: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, application_name, state, left(query, 200) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            others = cursor.fetchall()
        if not others:
            return
        time.sleep(0.1)
    raise AssertionError(f"sessions left open on the test database: {others}")


@pytest.fixture
def demo_lead(transactional_db) -> User:
    call_command("seed_demo", "--scale", "0.1", verbosity=0)
    user = User.objects.create_user("ada", password="demo-pass", is_staff=True)
    Person.objects.filter(display_name="Ada Okafor").update(user=user)
    return user


@pytest.fixture
def browser(demo_lead, monkeypatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright runs an event loop in this thread; the test's own ORM reads below are plain reads of what the
    # live server wrote. For these tests only: the tests after them (in this process, whichever they are under
    # xdist) keep Django's check.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()
            # Inside this block Playwright's event loop runs in this thread, so Django keeps the connections the test
            # opens here apart from the thread's own (asgiref's Local: per context while a loop runs): nothing else
            # ever closes them, and the session left open kept the suite from dropping the test database.
            connections.close_all()


def _signed_in_page(browser: Any, live_server: Any, *, viewport: dict[str, int]) -> Any:
    page = browser.new_context(viewport=viewport, accept_downloads=True).new_page()
    page.goto(f"{live_server.url}/teams/payments/")
    assert "/accounts/login/" in page.url  # sign in first
    page.fill("#id_username", "ada")
    page.fill("#id_password", "demo-pass")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/teams/payments/")
    return page


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)
    assert (OUTPUT / f"{name}.png").stat().st_size > 5_000


def test_a_lead_on_a_desktop_on_a_phone_and_with_a_screen_reader(no_session_left_open, live_server, browser):
    """One seed of the demo for the three journeys (each seed costs most of a minute; the tests share none)."""
    _a_lead_steers_the_team_page_down_to_the_pull_requests(live_server, browser)
    _pages_fit_a_360_px_phone(live_server, browser)
    if not AXE.exists():
        pytest.skip("axe-core is not installed (`make node_modules` runs `npm ci`; it needs npm)")
    _no_serious_or_critical_accessibility_violations(live_server, browser)


def _a_lead_steers_the_team_page_down_to_the_pull_requests(live_server: Any, browser: Any) -> None:
    page = _signed_in_page(browser, live_server, viewport={"width": 1280, "height": 900})
    assert page.locator("h1").inner_text() == "Payments"
    assert int(page.locator('[data-metric="merged"] .value').inner_text()) > 0
    assert page.locator('[data-metric="coverage"] .value').inner_text().endswith("%")
    assert page.locator("#review-flow table tr").count() >= 7
    assert page.locator("svg.chart").count() >= 4
    assert page.locator("#reviewer-load tr").count() >= 2
    _shot(page, "1-team-page")

    # A period range: from–to dates in the form, carried in the URL and named on the page.
    today = timezone.now().date()
    since, until = today - dt.timedelta(days=60), today - dt.timedelta(days=15)
    page.fill('input[name="since"]', since.isoformat())
    page.fill('input[name="until"]', until.isoformat())
    page.click(".scope-form button[type=submit]")
    page.wait_for_url(re.compile(rf"since={since.isoformat()}.*until={until.isoformat()}"))
    assert f"{since.isoformat()} → {until.isoformat()}" in page.locator("nav.periods").inner_text()
    assert page.locator('nav.periods [aria-current="page"]').count() == 0  # no quick range is the current one
    _shot(page, "2-period-range")

    # A filter, on top of the range: the author.
    author = page.locator('select[name="author"] option').nth(1)
    author_pk, author_name = author.get_attribute("value"), author.inner_text()
    page.select_option('select[name="author"]', author_pk)
    page.click(".scope-form button[type=submit]")
    page.wait_for_url(re.compile(rf"author={author_pk}"))
    assert "since=" in page.url
    assert page.locator(".scope-note", has_text="Filtered:").count() == 1
    merged = int(page.locator('[data-metric="merged"] .value').inner_text())
    assert merged > 0, "the demo's author has merged pull requests in the range"
    _shot(page, "3-filtered")

    # Drill-down from the merged tile: the same period and filter, one row per pull request counted.
    page.click('[data-metric="merged"] a.drill')
    page.wait_for_url(re.compile(r"/teams/payments/pulls/\?.*metric=merged"))
    assert f"author={author_pk}" in page.url and f"since={since.isoformat()}" in page.url
    rows = page.locator("#pulls tr:has(td[data-column])")
    assert rows.count() == min(merged, 50)
    assert {row.inner_text() for row in page.locator('#pulls td[data-column="author"]').all()} == {author_name}
    _shot(page, "4-drill-down")

    # Its CSV: the whole list, the same pull requests.
    with page.expect_download() as download:
        page.click("text=CSV of the whole list")
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(exported) == merged
    listed = {row.inner_text() for row in page.locator('#pulls td[data-column="pull_request"]').all()}
    assert listed <= {row["Pull request"] for row in exported}
    assert {row["Author"] for row in exported} == {author_name}

    # A pull request's timeline, from the list.
    page.locator('#pulls td[data-column="pull_request"] a').first.click()
    page.wait_for_url(re.compile(r"/pulls/\d+/$"))
    events = [item.get_attribute("data-event") for item in page.locator("#timeline li").all()]
    assert len(events) >= 3 and "opened" in events, events
    assert events.index("opened") < events.index("merged"), events
    assert page.locator("#figures").is_visible()
    _shot(page, "5-pull-request-timeline")

    # A suspect change confirmed by the lead from the team page.
    suspect = (
        SuspectChange.objects.filter(incident__services__team__slug="payments")
        .exclude(verdict=SuspectChange.Verdict.CONFIRMED)
        .order_by("pk")
        .first()
    )
    assert suspect is not None, "the demo ranks suspects of the payments incidents"
    page.goto(f"{live_server.url}/teams/payments/?days=90")
    button = page.locator(f'button[data-suspect="{suspect.pk}"][data-verdict="confirm"]')
    button.scroll_into_view_if_needed()
    _shot(page, "6-suspect-before")
    button.click()
    page.wait_for_url(re.compile(rf"#incident-{suspect.incident_id}$"))
    assert page.locator(f'button[data-suspect="{suspect.pk}"][data-verdict="confirm"]').count() == 0
    suspect.refresh_from_db()
    assert suspect.verdict == SuspectChange.Verdict.CONFIRMED
    _shot(page, "7-suspect-confirmed")

    page.goto(f"{live_server.url}/teams/")
    assert page.locator("text=Payments").count() >= 1
    _shot(page, "8-teams")


def _pages_fit_a_360_px_phone(live_server: Any, browser: Any) -> None:
    page = _signed_in_page(browser, live_server, viewport=PHONE)
    pull_request = PullRequest.objects.filter(repository__team__slug="payments", state="merged").latest("merged_at")
    pages = {
        "team-page": "/teams/payments/",
        "drill-down": "/teams/payments/pulls/?metric=merged",
        "pull-request": f"/pulls/{pull_request.pk}/",
    }
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        width = page.evaluate("document.scrollingElement.scrollWidth")
        _shot(page, f"360px-{name}")
        assert width <= PHONE["width"], f"{path} scrolls sideways at 360 px: {width} px wide"


def _no_serious_or_critical_accessibility_violations(live_server: Any, browser: Any) -> None:
    page = _signed_in_page(browser, live_server, viewport={"width": 1280, "height": 900})
    pull_request = PullRequest.objects.filter(repository__team__slug="payments", state="merged").latest("merged_at")
    pages = {
        "team-page": "/teams/payments/",
        "pull-request": f"/pulls/{pull_request.pk}/",
        "drill-down": "/teams/payments/pulls/?metric=merged",
        "teams": "/teams/",
        "me": "/me/",
    }
    found: dict[str, list[str]] = {}
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate("async () => (await axe.run(document)).violations")
        found[path] = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[node['target'] for node in v['nodes']][:3]}"
            for v in violations
            if v["impact"] in {"serious", "critical"}
        ]
        _shot(page, f"axe-{name}")
    assert found == {path: [] for path in pages.values()}
