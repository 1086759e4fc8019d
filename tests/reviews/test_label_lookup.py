"""`has_any_element` (reviews.fields): the label filter of the pages and the API, the same on SQLite (the embedded
default, where Django's JSON `contains` is not supported) and PostgreSQL."""

from __future__ import annotations

import pytest

from reviews.models import PullRequest
from tests.factories import PullRequestFactory

pytestmark = pytest.mark.django_db


def test_a_list_holding_any_of_the_labels_matches_and_nothing_else_does():
    bug = PullRequestFactory(labels=["bug", "payments"])
    urgent = PullRequestFactory(labels=["urgent"])
    PullRequestFactory(labels=["bugfix", 'say "bug"', "Bug"])  # neither a substring, a quoted form nor another case
    PullRequestFactory(labels=[])
    PullRequestFactory(labels=[7])

    def matching(labels: list[str]) -> set[int]:
        return set(PullRequest.objects.filter(labels__has_any_element=labels).values_list("pk", flat=True))

    assert matching(["bug"]) == {bug.pk}
    assert matching(["bug", "urgent"]) == {bug.pk, urgent.pk}
    assert matching(["7"]) == set()  # labels are strings; a number in the list is not the label "7"
    assert matching([]) == set()
    assert matching(["missing"]) == set()
