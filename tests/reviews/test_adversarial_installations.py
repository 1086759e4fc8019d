"""Adversarial review of issue 16's GitHub App: events arriving late or redelivered for an installation GitHub
already told Tandem was uninstalled. GitHub never reuses an installation's id (a new installation gets a new one),
so such an event is stale: it must not bring the installation or its repositories back."""

from __future__ import annotations

import copy

import pytest

from reviews.models import AppInstallation, Repository, WebhookDelivery
from tests.reviews.test_github_app import app_connection, app_key, deliver, fixture, github  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def uninstalled(github, app_connection, deliver):  # noqa: F811
    created = fixture("installation.created")
    repo = created["repositories"][0]
    github.add_repo(repo["full_name"], id=repo["id"])
    github.install_app("Codertocat", [repo["full_name"]], installation_id=created["installation"]["id"])
    deliver("installation", created)
    deleted = copy.deepcopy(created)
    deleted["action"] = "deleted"
    deliver("installation", deleted)
    return created


def _stays_uninstalled(full_name: str) -> None:
    installation = AppInstallation.objects.get()
    assert installation.deleted_at is not None
    repository = Repository.objects.get(full_path=full_name)
    assert not repository.is_active
    assert repository.access_error.startswith("The GitHub App was uninstalled from Codertocat")


def test_a_redelivered_installation_created_after_the_uninstall_changes_nothing(uninstalled, deliver):  # noqa: F811
    response = deliver("installation", uninstalled)

    assert response.status_code == 202
    _stays_uninstalled(uninstalled["repositories"][0]["full_name"])
    delivery = WebhookDelivery.objects.order_by("-pk").first()
    assert delivery.status == WebhookDelivery.Status.IGNORED
    assert "uninstalled" in delivery.error


def test_repositories_added_late_to_an_uninstalled_installation_stay_off(uninstalled, deliver):  # noqa: F811
    added = fixture("installation_repositories.added")
    added["installation"] = copy.deepcopy(uninstalled["installation"])
    added["repositories_added"] = uninstalled["repositories"]

    deliver("installation_repositories", added)

    _stays_uninstalled(uninstalled["repositories"][0]["full_name"])


def test_a_late_suspend_or_unsuspend_of_an_uninstalled_installation_changes_nothing(uninstalled, deliver):  # noqa: F811
    for action in ("suspend", "unsuspend"):
        event = copy.deepcopy(uninstalled)
        event["action"] = action
        deliver("installation", event)
        _stays_uninstalled(uninstalled["repositories"][0]["full_name"])


@pytest.mark.parametrize("how", ["removed", "uninstalled"])
def test_a_repository_a_person_switched_off_stays_off_when_the_app_drops_it_and_covers_it_again(
    github,  # noqa: F811
    app_connection,  # noqa: F811
    deliver,  # noqa: F811
    how,
):
    """The README: adding a repository back switches it on again, but 'one a person switched off stays off'. A
    removal or an uninstall in between must not turn the person's choice into the installation's."""
    created = fixture("installation.created")
    repo = created["repositories"][0]
    github.add_repo(repo["full_name"], id=repo["id"])
    github.install_app("Codertocat", [repo["full_name"]], installation_id=created["installation"]["id"])
    deliver("installation", created)
    Repository.objects.filter(full_path=repo["full_name"]).update(is_active=False)  # a person, in the admin

    if how == "removed":
        removed = fixture("installation_repositories.removed")
        removed["installation"] = copy.deepcopy(created["installation"])
        removed["repositories_removed"] = created["repositories"]
        deliver("installation_repositories", removed)
        added = copy.deepcopy(removed)
        added.update(action="added", repositories_added=created["repositories"], repositories_removed=[])
        deliver("installation_repositories", added)
    else:
        deleted = copy.deepcopy(created)
        deleted["action"] = "deleted"
        deliver("installation", deleted)
        again = copy.deepcopy(created)
        again["installation"]["id"] = created["installation"]["id"] + 1  # a new installation, a new id
        github.install_app("Codertocat", [repo["full_name"]], installation_id=again["installation"]["id"])
        deliver("installation", again)

    assert not Repository.objects.get(full_path=repo["full_name"]).is_active
