"""/me/: a person's open pull requests, what waits on their review, and their notices."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from reviews.models import Identity, Membership, PolicyEvaluation
from telemetry.models import Notification
from tests.factories import (
    IdentityFactory,
    MembershipFactory,
    PersonFactory,
    PullRequestFactory,
    RepositoryFactory,
    ReviewFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


def test_me_lists_my_pull_requests_what_waits_on_me_and_my_notices(client):
    team = TeamFactory(slug="shop")
    user = User.objects.create_user("sam", password="pw")
    sam = PersonFactory(display_name="Sam", user=user)
    MembershipFactory(team=team, person=sam, role=Membership.Role.MEMBER)
    IdentityFactory(person=sam, kind=Identity.Kind.GITHUB, value="sam-h")
    repository = RepositoryFactory(team=team)
    mine = PullRequestFactory(repository=repository, author=sam, title="My change")
    PullRequestFactory(repository=repository, author=sam, title="My merged change", state="merged")
    requested = PullRequestFactory(repository=repository, title="Asks Sam")
    requested.requested_reviewers.add(sam)
    done = PullRequestFactory(repository=repository, title="Sam reviewed it")
    done.requested_reviewers.add(sam)
    ReviewFactory(pull_request=done, reviewer=sam)
    owned = PullRequestFactory(repository=repository, title="Needs an owner")
    reason = "needs a code owner of src/ (sam-h, @acme/core)"
    PolicyEvaluation.objects.create(
        pull_request=owned,
        head_sha=owned.head_sha,
        outcome="pending",
        trace={"rules": [{"name": "owners", "state": "pending", "reason": reason}]},
    )
    elsewhere = PullRequestFactory(repository=RepositoryFactory(team=TeamFactory(slug="other")), title="Not my team")
    elsewhere.requested_reviewers.add(sam)
    abroad = PullRequestFactory(repository=elsewhere.repository, author=sam, title="Mine, in another team's repo")
    Notification.objects.create(person=sam, kind="incident_cause", subject="Traced", body="...")
    client.force_login(user)
    page = client.get("/me/").content.decode()
    waiting = page[page.index('id="waiting-on-me"') :].split("</section>")[0]
    assert "Asks Sam" in waiting and "review requested" in waiting
    assert "Needs an owner" in waiting and "needs a code owner: you" in waiting
    assert "Sam reviewed it" not in waiting and "Not my team" not in waiting and "My change" not in waiting
    own = page[page.index('id="my-pull-requests"') :].split("</section>")[0]
    assert f'data-pull-request="{mine.pk}"' in own and "My merged change" not in own
    # Only what the pull request page opens for Sam: that one would answer 404 from the link.
    assert f'data-pull-request="{abroad.pk}"' not in own
    assert client.get(f"/pulls/{abroad.repository.full_path}/{abroad.number}/").status_code == 404
    assert "1 unread notice" in page
    assert 'href="/me/"' in page  # in the header


def test_me_without_a_person_says_why(client):
    client.force_login(User.objects.create_user("nobody", password="pw"))
    assert "not linked to a person" in client.get("/me/").content.decode()
