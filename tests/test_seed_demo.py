"""`seed_demo` writes a realistic organisation through the ingestion services, deterministically (the small demo;
the full one is test_seed_demo_full.py)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import transaction

from reviews.models import PullRequest, Review

pytestmark = pytest.mark.django_db


def _row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in {"reviews", "telemetry"}
    }


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def small_demo(django_db_setup, django_db_blocker):
    """A small demo (3% of the pull requests), seeded once for the tests that only read it or seed again over it.

    It lives in a transaction of the module's that is rolled back at the end; each test's own transaction is a
    savepoint inside it, so every test starts from the demo as the seed left it (nothing is committed, as when each
    test seeded its own)."""
    with django_db_blocker.unblock(), transaction.atomic():
        _seed("--scale", "0.03")
        yield
        transaction.set_rollback(True)


# One worker seeds the small demo once for all of them.
small = pytest.mark.xdist_group("small_demo")


@small
@pytest.mark.slow(40)
def test_seed_demo_twice_leaves_the_same_row_counts(small_demo):
    first = _row_counts()
    reviewed = list(Review.objects.order_by("pk").values_list("pull_request__number", "state", "submitted_at"))
    assert first["PullRequest"] > 0
    _seed("--scale", "0.03")
    assert _row_counts() == first
    # Deterministic too: the same reviews at the same times, not just as many.
    assert list(Review.objects.order_by("pk").values_list("pull_request__number", "state", "submitted_at")) == reviewed


@small
@pytest.mark.slow(30)
def test_seed_demo_stores_every_merged_pull_requests_figures_so_no_page_computes_them(small_demo, client):
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reviews.models import PullRequestFigures

    merged = PullRequest.objects.filter(state="merged", author__is_bot=False)
    assert PullRequestFigures.objects.count() == merged.count() > 0
    assert not PullRequest.objects.exclude(figures_inputs_changed_at=None).exists()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    with CaptureQueriesContext(connection) as captured:
        for url in ("/teams/", "/teams/payments/", "/teams/payments/?days=90"):
            assert client.get(url).status_code == 200
    written = [q["sql"] for q in captured.captured_queries if "INSERT" in q["sql"] and "pullrequestfigures" in q["sql"]]
    assert written == []


@small
@pytest.mark.slow(20)
def test_seed_demo_if_empty_skips_a_seeded_database(small_demo):
    before = _row_counts()  # any seeded database: how much it holds is the other tests' business
    assert before["PullRequest"] > 0
    assert "already present" in _seed("--if-empty")
    assert _row_counts() == before
