"""Review findings on issues 12 and 13: one definition of a contributor, facts Tandem does not know."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from reviews.models import Person, Repository
from reviews.services.policies import override_followup_complete, pull_request_override
from reviews.services.teams import membership_set, team_upsert
from tests.scenarios.conftest import PATCH_V1, PATCH_V2, REPO

pytestmark = pytest.mark.django_db


def test_a_truncated_commit_list_keeps_the_verdict_pending(github):
    """GitHub's pull request commits endpoint lists at most 250 commits; the pull request's `commits` count says
    how many there are. Simulate the cut: the list omits the commit cy committed. Tandem must see the list is
    short (as it does for files) and stay pending, not count cy as an independent approver."""
    fake = github.fake
    fake.add_pull(REPO, number=1, author="ada", head="ada/x", head_sha="1" * 40)
    fake.add_commit(
        REPO,
        1,
        author_login="ada",
        committer_login="cy",
        committer_name="Cy",
        committer_email="cy@example.com",
        message="cy rebased this",
    )
    fake.add_commit(REPO, 1, author_login="ada", message="second")
    fake.add_file(REPO, 1, "ledger/book.py", patch=PATCH_V1)
    original = fake._list_commits

    def truncated(**kwargs):
        response = original(**kwargs)
        response.payload = response.payload[1:]  # the list is cut; the pull request still says commits=2
        return response

    fake._list_commits = truncated
    for i, (method, pattern, handler) in enumerate(fake._routes):
        if getattr(handler, "__name__", "") == "_list_commits":
            fake._routes[i] = (method, pattern, truncated)
    github.pull_event("opened", 1)
    github.review(1, "cy")
    assert github.verdict(1) == "pending", github.statuses(1)
    assert "commits" in github.description(1), github.description(1)


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


def test_control_untruncated_commit_list_discards_the_committer(github):
    fake = github.fake
    fake.add_pull(REPO, number=1, author="ada", head="ada/x", head_sha="1" * 40)
    fake.add_commit(
        REPO,
        1,
        author_login="ada",
        committer_login="cy",
        committer_name="Cy",
        committer_email="cy@example.com",
        message="cy rebased this",
    )
    fake.add_commit(REPO, 1, author_login="ada", message="second")
    fake.add_file(REPO, 1, "ledger/book.py", patch=PATCH_V1)
    github.pull_event("opened", 1)
    github.review(1, "cy")
    assert github.verdict(1) == "pending"
