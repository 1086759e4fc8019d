"""Review findings on issues 12 and 13: one definition of a contributor, facts Tandem does not know."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from reviews.models import Person, Repository
from reviews.services.policies import override_followup_complete, pull_request_override
from reviews.services.teams import membership_set, team_upsert
from tests.scenarios.conftest import PATCH_V2, REPO

pytestmark = pytest.mark.django_db


def _lead(slug: str = "ledger", name: str = "Lee") -> Person:
    team = team_upsert(slug=slug, name=slug.capitalize())
    Repository.objects.filter(full_path=REPO).update(team=team)
    person = (
        Person.objects.get(identities__value=name.lower())
        if Person.objects.filter(identities__value=name.lower()).exists()
        else Person.objects.create(display_name=name)
    )
    membership_set(team=team, person=person, role="lead")
    return person


def test_a_lead_who_pushed_to_the_change_may_not_override_it(github):
    """Issue 13: `override.allow_self: false` — nobody overrides a pull request they authored OR CONTRIBUTED TO;
    issue 12 defines a contributor as whoever authored, committed or pushed a commit."""
    github.open(1, author="ada")
    github.push(1, pusher="bob", author="ada", files={"ledger/book.py": PATCH_V2})  # bob pushed to ada's branch
    bob = _lead(name="bob")
    pull_request = github.pull_request(1)
    assert pull_request.commits.filter(pushed_by=bob).exists()
    with pytest.raises(PermissionDenied):
        github.run(pull_request_override, pull_request=pull_request, person=bob, reason="ship it")


def test_a_lead_who_committed_to_the_change_may_not_override_it(github):
    github.open(1, author="ada")
    github.push(1, pusher="ada", author="ada", committer="cy", files={"ledger/book.py": PATCH_V2})
    cy = _lead(name="cy")
    with pytest.raises(PermissionDenied):
        github.run(pull_request_override, pull_request=github.pull_request(1), person=cy, reason="ship it")


def test_a_pusher_may_not_complete_the_followup_of_an_override(github):
    """The follow-up is done by someone who is neither the author/contributors nor the overrider."""
    github.open(1, author="ada")
    github.push(1, pusher="bob", author="ada", files={"ledger/book.py": PATCH_V2})
    lee = _lead(name="Lee")
    override = github.run(pull_request_override, pull_request=github.pull_request(1), person=lee, reason="hotfix")
    bob = Person.objects.get(identities__value="bob")
    with pytest.raises(PermissionDenied):
        override_followup_complete(override=override, person=bob, note="looked at it")
