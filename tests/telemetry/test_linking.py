"""A successful deployment is linked to the commits and pull requests it shipped, across services, environments,
a monorepo's path filters, and whichever way the commits can be found (stored graph, compare API, merge order)."""

from __future__ import annotations

import pytest

from reviews.integrations.records import CommitRecord, GitUserRecord
from reviews.models import Commit, Connection, PullRequest
from reviews.services.pull_requests import commit_upsert
from telemetry.models import Deployment, DeploymentChange
from telemetry.services.linking import deployment_changes_link
from tests.factories import RepositoryFactory
from tests.telemetry.conftest import T0, History, hours, make_deployment, make_service, sha_of

pytestmark = pytest.mark.django_db


def shipped(deployment: Deployment) -> list[int]:
    """The numbers of the pull requests a deployment shipped."""
    return sorted(
        DeploymentChange.objects.filter(deployment=deployment, pull_request__isnull=False)
        .values_list("pull_request__number", flat=True)
        .distinct()
    )


def link(deployment: Deployment, **kwargs) -> str:
    return deployment_changes_link(deployment_id=deployment.pk, **kwargs).method


def test_a_deployment_ships_what_was_merged_since_the_previous_one(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    history.merge(1, at=T0 - hours(50))
    first = make_deployment(service, history.head, at=T0 - hours(48), repository=repository)
    history.merge(2, at=T0 - hours(30))
    history.merge(3, at=T0 - hours(25))
    second = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)

    assert link(first) == "graph"
    assert link(second) == "graph"

    assert shipped(first) == [1]
    assert shipped(second) == [2, 3]
    # Every commit of the range is there, each with the pull request that brought it (branch and merge commit).
    merge_three = Commit.objects.get(sha=sha_of("acme/shop:merge-3"))
    branch_three = Commit.objects.get(sha=sha_of("acme/shop:branch-3"))
    changes = DeploymentChange.objects.filter(deployment=second)
    assert changes.get(commit=merge_three).pull_request.number == 3
    assert changes.get(commit=branch_three).pull_request.number == 3
    assert changes.count() == 4


def test_environments_and_services_keep_their_own_previous_deployment(actors, repository, history):
    other_repository = RepositoryFactory(full_path="acme/search", team=actors.other_team)
    other_history = History(other_repository)
    shop = make_service("shop", actors.team, [(repository, [])])
    search = make_service("search", actors.other_team, [(other_repository, [])])
    history.merge(1, at=T0 - hours(50))
    other_history.merge(1, at=T0 - hours(50))
    production_1 = make_deployment(shop, history.head, at=T0 - hours(48), repository=repository)
    search_1 = make_deployment(search, other_history.head, at=T0 - hours(47), repository=other_repository)
    history.merge(2, at=T0 - hours(40))
    staging = make_deployment(shop, history.head, at=T0 - hours(39), repository=repository, environment="staging")
    history.merge(3, at=T0 - hours(30))
    other_history.merge(2, at=T0 - hours(30))
    production_2 = make_deployment(shop, history.head, at=T0 - hours(20), repository=repository)
    search_2 = make_deployment(search, other_history.head, at=T0 - hours(19), repository=other_repository)

    for deployment in (production_1, search_1, staging, production_2, search_2):
        link(deployment)

    assert shipped(production_1) == [1]
    assert shipped(staging) == [1, 2]  # staging's first deployment: everything merged in the look-back
    assert shipped(production_2) == [2, 3]  # staging in between does not shorten production's range
    assert shipped(search_1) == [1]
    assert shipped(search_2) == [2]
    assert not DeploymentChange.objects.filter(deployment=search_2, pull_request__repository=repository).exists()


def test_a_monorepo_service_ships_only_the_pull_requests_touching_its_paths(actors, repository, history):
    auth = make_service("auth", actors.team, [(repository, ["services/auth/**"])])
    billing = make_service("billing", actors.team, [(repository, ["services/billing/**", "deploy/**"])])
    everything = make_service("platform", actors.team, [(repository, [])])
    base = history.head
    history.merge(1, at=T0 - hours(30), files=["services/auth/login.py"])
    history.merge(2, at=T0 - hours(29), files=["services/billing/invoice.py", "README.md"])
    history.merge(3, at=T0 - hours(28), files=["deploy/helm/values.yaml", "services/auth/config.py"])
    history.merge(4, at=T0 - hours(27), files=["docs/index.md"])
    direct = history.commit("hotfix pushed straight to main", at=T0 - hours(26))
    history.head = direct.sha
    deployments = {}
    for service in (auth, billing, everything):
        make_deployment(service, base, at=T0 - hours(40), repository=repository)
        deployments[service.slug] = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)
    for deployment in Deployment.objects.order_by("finished_at", "pk"):
        link(deployment)

    assert shipped(deployments["auth"]) == [1, 3]
    assert shipped(deployments["billing"]) == [2, 3]
    assert shipped(deployments["platform"]) == [1, 2, 3, 4]
    # A commit pushed without a pull request belongs to no path: only the service without filters ships it.
    assert DeploymentChange.objects.filter(
        deployment=deployments["platform"], commit=direct, pull_request=None
    ).exists()
    assert not DeploymentChange.objects.filter(deployment=deployments["auth"], commit=direct).exists()


def test_linking_twice_changes_nothing(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    make_deployment(service, history.head, at=T0 - hours(48), repository=repository)
    history.merge(1, at=T0 - hours(30))
    deployment = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)
    link(deployment)
    before = list(DeploymentChange.objects.order_by("pk").values_list("pk", "commit_id", "pull_request_id"))
    link(deployment)
    assert list(DeploymentChange.objects.order_by("pk").values_list("pk", "commit_id", "pull_request_id")) == before


def test_the_same_sha_deployed_again_ships_nothing(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    history.merge(1, at=T0 - hours(30))
    make_deployment(service, history.head, at=T0 - hours(20), repository=repository)
    again = make_deployment(service, history.head, at=T0 - hours(10), repository=repository)
    link(again)
    assert shipped(again) == []
    assert DeploymentChange.objects.filter(deployment=again).count() == 0


def test_a_late_deployment_takes_its_changes_from_the_next_one(actors, repository, history, run_on_commit):
    service = make_service("shop", actors.team, [(repository, [])])
    first = make_deployment(service, history.head, at=T0 - hours(60), repository=repository)
    history.merge(1, at=T0 - hours(50))
    middle_sha = history.head
    history.merge(2, at=T0 - hours(30))
    last = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)
    link(first)
    link(last)
    assert shipped(last) == [1, 2]

    late = make_deployment(service, middle_sha, at=T0 - hours(45), repository=repository)
    with run_on_commit():
        link(late)  # linked for the first time: the next deployment is linked again

    assert shipped(late) == [1]
    assert shipped(last) == [2]


def test_a_deployment_that_is_not_successful_ships_nothing(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    make_deployment(service, history.head, at=T0 - hours(48), repository=repository)
    history.merge(1, at=T0 - hours(30))
    deployment = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)
    link(deployment)
    assert shipped(deployment) == [1]

    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.FAILURE)
    assert link(deployment) == "none"
    assert shipped(deployment) == []
    failed = make_deployment(
        service, history.head, at=T0 - hours(10), repository=repository, status=Deployment.Status.ERROR
    )
    link(failed)
    assert shipped(failed) == []


def test_the_repository_is_found_from_the_sha_when_a_service_has_several(actors, repository, history):
    other = RepositoryFactory(full_path="acme/shop-web", team=actors.team)
    service = make_service("shop", actors.team, [(repository, []), (other, [])])
    make_deployment(service, history.head, at=T0 - hours(48), repository=repository)
    history.merge(1, at=T0 - hours(30))
    deployment = make_deployment(service, history.head, at=T0 - hours(20))  # no repository reported
    link(deployment)
    deployment.refresh_from_db()
    assert deployment.repository == repository
    assert shipped(deployment) == [1]


# --- commits missing from the database ----------------------------------------------------------------------------


@pytest.fixture
def fake_repository(actors, fake_github, github_connection):
    """acme/shop on the fake GitHub, its history five commits past the initial one."""
    fake_github.add_repo("acme/shop")
    shas = [fake_github.add_commit("acme/shop", message=f"commit {n}")["sha"] for n in range(1, 6)]
    repository = RepositoryFactory(connection=github_connection, full_path="acme/shop", team=actors.team)
    return repository, shas


def _merged(repository, number: int, merge_sha: str) -> PullRequest:
    return PullRequest.objects.create(
        repository=repository,
        number=number,
        title=f"Change {number}",
        state=PullRequest.State.MERGED,
        base_ref="main",
        merge_commit_sha=merge_sha,
        created_at=T0 - hours(40),
        updated_at=T0 - hours(30),
        merged_at=T0 - hours(30) + hours(number),
    )


def test_missing_commits_are_read_from_the_compare_api(actors, fake_repository, fake_github):
    repository, shas = fake_repository
    service = make_service("shop", actors.team, [(repository, [])])
    _merged(repository, 7, shas[2])
    _merged(repository, 8, shas[4])
    _merged(repository, 9, "f" * 40)  # merged elsewhere: not in this range
    make_deployment(service, shas[0], at=T0 - hours(48), repository=repository)
    deployment = make_deployment(service, shas[4], at=T0 - hours(20), repository=repository)
    fake_github.clear_log()

    assert link(deployment) == "compare"

    assert len(fake_github.requests_to(f"/compare/{shas[0]}...{shas[4]}")) == 1
    assert shipped(deployment) == [7, 8]
    # The compared commits are stored, with their parents, for the next walk.
    assert set(Commit.objects.filter(repository=repository).values_list("sha", flat=True)) == set(shas[1:])
    assert Commit.objects.get(sha=shas[2]).parents == [shas[1]]
    assert DeploymentChange.objects.filter(deployment=deployment).count() == 4
    assert DeploymentChange.objects.filter(deployment=deployment, pull_request=None).count() == 2


def test_a_failing_vcs_falls_back_to_merge_order_with_the_error_recorded(actors, fake_repository, fake_github):
    repository, shas = fake_repository
    service = make_service("shop", actors.team, [(repository, [])])
    _merged(repository, 7, shas[2])
    _merged(repository, 8, shas[4])
    make_deployment(service, shas[0], at=T0 - hours(48), repository=repository)
    deployment = make_deployment(service, shas[4], at=T0 - hours(20), repository=repository)
    fake_github.fail_next("/compare/", status=404)

    assert link(deployment) == "merge_order"

    deployment.refresh_from_db()
    assert "compare" in deployment.link_error
    assert shipped(deployment) == [7, 8]  # merged after the previous deployment's start, up to sha 5's merge
    assert DeploymentChange.objects.filter(deployment=deployment, commit=None).count() == 2


def test_without_a_token_merge_order_is_used(actors, repository):
    assert not Connection.objects.get(pk=repository.connection_id).api_token
    service = make_service("shop", actors.team, [(repository, ["services/shop/**"])])
    previous = make_deployment(service, "a" * 40, at=T0 - hours(48), repository=repository)
    one = PullRequest.objects.create(
        repository=repository,
        number=1,
        title="one",
        state="merged",
        base_ref="main",
        merge_commit_sha="b" * 40,
        created_at=T0 - hours(50),
        updated_at=T0 - hours(30),
        merged_at=T0 - hours(30),
    )
    one.files.create(path="services/shop/cart.py", additions=3)
    two = PullRequest.objects.create(
        repository=repository,
        number=2,
        title="two",
        state="merged",
        base_ref="main",
        merge_commit_sha="c" * 40,
        created_at=T0 - hours(50),
        updated_at=T0 - hours(25),
        merged_at=T0 - hours(25),
    )
    two.files.create(path="docs/readme.md", additions=3)
    deployment = make_deployment(service, "c" * 40, at=T0 - hours(20), repository=repository)

    assert link(deployment) == "merge_order"
    assert shipped(deployment) == [1]  # two touched no path of the service
    assert shipped(previous) == []


# --- a first deployment whose commits came from push webhooks only ------------------------------------------------


def _pushed(repository, sha: str, at) -> Commit:
    """A commit as a push webhook stores it: the payload lists no parents."""
    author = GitUserRecord(name="Dev", email="dev@example.com")
    record = CommitRecord(sha=sha, message="pushed", author=author, authored_at=at)
    return commit_upsert(repository=repository, record=record)


@pytest.fixture
def pushed_main(actors, fake_github, github_connection):
    """acme/shop on the fake GitHub: a change merged before the look-back, then four merged within it, each merge
    commit known to Tandem only from a push to main. The third was branched from the initial commit."""
    fake_github.add_repo("acme/shop")
    initial = fake_github.add_commit("acme/shop", message="initial", authored_at=T0 - hours(24 * 30))["sha"]
    repository = RepositoryFactory(connection=github_connection, full_path="acme/shop", team=actors.team)
    days = [T0 - hours(24 * 20), T0 - hours(60), T0 - hours(50), T0 - hours(40), T0 - hours(30)]
    shas: list[str] = []
    for number, at in enumerate(days, start=1):
        parents = None
        if number == 3:
            branch = fake_github.add_commit("acme/shop", message="branch", authored_at=at, parents=[initial])["sha"]
            parents = [shas[-1], branch]
        sha = fake_github.add_commit("acme/shop", message=f"merge {number}", authored_at=at, parents=parents)["sha"]
        shas.append(sha)
        PullRequest.objects.filter(pk=_merged(repository, number, sha).pk).update(merged_at=at)
        _pushed(repository, sha, at)
    return repository, shas


def test_a_first_deployment_from_pushed_commits_ships_every_change_in_the_look_back(actors, pushed_main, fake_github):
    repository, shas = pushed_main
    service = make_service("shop", actors.team, [(repository, [])])
    deployment = make_deployment(service, shas[-1], at=T0 - hours(20), repository=repository)

    assert link(deployment) == "compare"

    # The base is the last change merged before the look-back: what came after it all shipped, not the head alone.
    assert len(fake_github.requests_to(f"/compare/{shas[0]}...{shas[-1]}")) == 1
    assert shipped(deployment) == [2, 3, 4, 5]
    assert Commit.objects.get(sha=shas[2]).parents_known
    deployment.refresh_from_db()
    assert deployment.link_error == ""


def test_linking_again_asks_the_compare_conditionally_and_ships_the_same(actors, pushed_main, fake_github):
    repository, shas = pushed_main
    service = make_service("shop", actors.team, [(repository, [])])
    deployment = make_deployment(service, shas[-1], at=T0 - hours(20), repository=repository)
    link(deployment)
    etag = Deployment.objects.get(pk=deployment.pk).compared["etag"]
    fake_github.clear_log()

    assert link(deployment) == "compare"

    (request,) = fake_github.requests_to("/compare/")
    assert request.headers.get("If-None-Match") == etag
    assert request.status == 304  # costs no quota
    assert shipped(deployment) == [2, 3, 4, 5]


def test_a_first_deployment_falls_back_to_merge_order_and_says_why(actors, pushed_main, fake_github):
    repository, shas = pushed_main
    service = make_service("shop", actors.team, [(repository, [])])
    deployment = make_deployment(service, shas[-1], at=T0 - hours(20), repository=repository)
    fake_github.fail_next("/compare/", status=404)

    assert link(deployment) == "merge_order"

    assert shipped(deployment) == [2, 3, 4, 5]
    deployment.refresh_from_db()
    assert deployment.link_error.startswith("Found by merge order, not from commits: compare ")
    assert "failed" in deployment.link_error


def test_a_first_deployment_with_nothing_before_the_look_back_says_it_had_no_base(actors, pushed_main):
    repository, shas = pushed_main
    PullRequest.objects.filter(repository=repository, number=1).delete()
    service = make_service("shop", actors.team, [(repository, [])])
    deployment = make_deployment(service, shas[-1], at=T0 - hours(20), repository=repository)

    assert link(deployment) == "merge_order"

    assert shipped(deployment) == [2, 3, 4, 5]
    deployment.refresh_from_db()
    assert "no change merged into main before it gives a base to compare with" in deployment.link_error


def test_a_first_deployment_on_gitlab_reads_the_compare_too(actors, fake_gitlab, gitlab_connection):
    fake_gitlab.add_project("acme/shop")
    repository = RepositoryFactory(connection=gitlab_connection, full_path="acme/shop", team=actors.team)
    days = [T0 - hours(24 * 20), T0 - hours(60), T0 - hours(50)]
    parent = fake_gitlab.add_commit("acme/shop", message="root", authored_date=T0 - hours(24 * 30))["id"]
    shas = []
    for number, at in enumerate(days, start=1):
        parent = fake_gitlab.add_commit("acme/shop", message=f"merge {number}", authored_date=at, parent_ids=[parent])[
            "id"
        ]
        shas.append(parent)
        PullRequest.objects.filter(pk=_merged(repository, number, parent).pk).update(merged_at=at)
        _pushed(repository, parent, at)
    service = make_service("shop", actors.team, [(repository, [])])
    deployment = make_deployment(service, shas[-1], at=T0 - hours(20), repository=repository)

    assert link(deployment) == "compare"

    assert shipped(deployment) == [2, 3]
    assert any(r.query.get("from") == [shas[0]] for r in fake_gitlab.requests if r.path.endswith("/compare"))


# --- one chain for production, branches, and links that found nothing -----------------------------------------------


def test_prod_and_production_are_one_chain(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, [])])
    history.merge(1, at=T0 - hours(50))
    first = make_deployment(service, history.head, at=T0 - hours(48), repository=repository, environment="prod")
    history.merge(2, at=T0 - hours(30))
    second = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)  # "production"
    link(first)
    link(second)

    assert shipped(first) == [1]
    assert shipped(second) == [2]  # not 1 again: prod's deployment came before it


def test_a_deployment_from_a_release_branch_links_what_was_merged_into_that_branch(actors, repository):
    assert not Connection.objects.get(pk=repository.connection_id).api_token
    service = make_service("shop", actors.team, [(repository, [])])
    make_deployment(service, "a" * 40, at=T0 - hours(48), repository=repository)
    for number, base_ref, sha in ((1, "main", "b"), (2, "release/2.0", "c"), (3, "release/2.0", "d")):
        PullRequest.objects.create(
            repository=repository,
            number=number,
            title=f"change {number}",
            state="merged",
            base_ref=base_ref,
            merge_commit_sha=sha * 40,
            created_at=T0 - hours(50),
            updated_at=T0 - hours(30),
            merged_at=T0 - hours(30) + hours(number),
        )
    deployment = make_deployment(service, "d" * 40, at=T0 - hours(20), repository=repository)
    Deployment.objects.filter(pk=deployment.pk).update(ref="refs/heads/release/2.0")

    assert link(deployment) == "merge_order"
    assert shipped(deployment) == [2, 3]


def test_a_link_that_found_no_pull_request_says_why(actors, repository, history):
    service = make_service("shop", actors.team, [(repository, ["services/shop/**"])])
    make_deployment(service, history.head, at=T0 - hours(48), repository=repository)
    history.merge(1, at=T0 - hours(30), files=["docs/readme.md"])
    deployment = make_deployment(service, history.head, at=T0 - hours(20), repository=repository)

    result = deployment_changes_link(deployment_id=deployment.pk)

    assert (result.method, result.pull_requests) == ("graph", 0)
    deployment.refresh_from_db()
    assert deployment.link_error == (
        f"No pull request: none of the 2 commits since the previous deployment ({deployment.sha[:12]}) "
        "touched services/shop/**."
    ).replace(deployment.sha[:12], Deployment.objects.exclude(pk=deployment.pk).get().sha[:12])
    again = make_deployment(service, history.head, at=T0 - hours(10), repository=repository)
    link(again)
    again.refresh_from_db()
    assert again.link_error == f"No pull request: the same commit ({again.sha[:12]}) as the previous deployment."
