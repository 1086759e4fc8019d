"""`seed_demo` at full scale: the organisation the demo and the team pages show (the small demo's tests are in
test_seed_demo.py; kept apart, so that this seed never runs over theirs)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count

from reviews.models import Commit, Connection, Identity, PairingSession, Person, PullRequest, Repository, Review, Team
from telemetry.models import Deployment, Incident, Service

pytestmark = pytest.mark.django_db


@pytest.mark.slow(360)
def test_full_demo_is_a_realistic_organisation():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    output = out.getvalue()
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
