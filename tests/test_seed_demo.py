"""`seed_demo` writes a realistic organisation through the ingestion services, deterministically."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db.models import Count

from reviews.models import Commit, Connection, Identity, PairingSession, Person, PullRequest, Repository, Review, Team
from telemetry.models import Deployment, Incident, Service

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


@pytest.mark.slow(60)
def test_seed_demo_twice_leaves_the_same_row_counts():
    _seed("--scale", "0.03")
    first = _row_counts()
    reviewed = list(Review.objects.order_by("pk").values_list("pull_request__number", "state", "submitted_at"))
    _seed("--scale", "0.03")
    assert _row_counts() == first
    # Deterministic too: the same reviews at the same times, not just as many.
    assert list(Review.objects.order_by("pk").values_list("pull_request__number", "state", "submitted_at")) == reviewed


@pytest.mark.slow(30)
def test_seed_demo_stores_every_merged_pull_requests_figures_so_no_page_computes_them(client):
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reviews.models import PullRequestFigures

    _seed("--scale", "0.03")
    merged = PullRequest.objects.filter(state="merged", author__is_bot=False)
    assert PullRequestFigures.objects.count() == merged.count() > 0
    assert not PullRequest.objects.exclude(figures_inputs_changed_at=None).exists()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    with CaptureQueriesContext(connection) as captured:
        for url in ("/teams/", "/teams/payments/", "/teams/payments/?days=90"):
            assert client.get(url).status_code == 200
    written = [q["sql"] for q in captured.captured_queries if "INSERT" in q["sql"] and "pullrequestfigures" in q["sql"]]
    assert written == []


@pytest.mark.slow(20)
def test_seed_demo_if_empty_skips_a_seeded_database():
    _seed("--scale", "0.01")  # any seeded database: how much it holds is the other tests' business
    before = _row_counts()
    assert "already present" in _seed("--if-empty")
    assert _row_counts() == before


@pytest.mark.slow(360)
def test_full_demo_is_a_realistic_organisation():
    output = _seed()
    assert "Demo ready" in output
    assert Team.objects.count() == 3
    humans = Person.objects.filter(is_bot=False)
    assert humans.count() == 15
    assert Person.objects.filter(is_bot=True).exists()
    # Every person has a GitHub login, a GitLab username and an e-mail address.
    kinds = humans.annotate(kinds=Count("identities__kind", distinct=True))
    assert set(kinds.values_list("kinds", flat=True)) == {3}
    assert Repository.objects.count() == 5
    assert set(Connection.objects.values_list("provider", flat=True)) == {"github", "gitlab"}
    assert set(Repository.objects.values_list("connection__provider", flat=True)) == {"github", "gitlab"}
    assert PullRequest.objects.count() >= 1500
    assert PullRequest.objects.filter(state="merged").count() > 1000
    assert PullRequest.objects.filter(state="open").exists()
    assert Review.objects.filter(state="approved").count() > 1000
    assert Review.objects.filter(state="changes_requested").exists()
    assert Commit.objects.filter(co_authors__isnull=False).distinct().count() > 50
    # Co-authors resolve to the people they name.
    assert not Identity.objects.filter(co_authored_commits__isnull=False, person__isnull=True).exists()
    assert PairingSession.objects.count() >= 3
    assert Service.objects.count() == 5
    assert Deployment.objects.filter(environment="production", status="success").count() > 100
    assert Incident.objects.count() >= 5
    # Review activity is spread over the whole 90 days.
    first = PullRequest.objects.order_by("created_at").first()
    last = PullRequest.objects.order_by("-created_at").first()
    assert (last.created_at - first.created_at).days >= 85
