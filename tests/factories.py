"""factory_boy factories for the domain rows tests need most."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from reviews.models import (
    Comment,
    Commit,
    Connection,
    Identity,
    Membership,
    Person,
    PullRequest,
    Repository,
    Review,
    Team,
)
from telemetry.models import Deployment, Incident, Service


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    display_name = factory.Sequence(lambda n: f"Person {n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    person = factory.SubFactory(PersonFactory)
    role = Membership.Role.MEMBER


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection
        django_get_or_create = ("provider", "base_url")

    provider = "github"
    name = factory.LazyAttribute(lambda o: f"{o.provider} {o.base_url}")
    base_url = "https://api.github.com"


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    person = factory.SubFactory(PersonFactory)
    kind = Identity.Kind.GITHUB
    connection = factory.SubFactory(ConnectionFactory)
    value = factory.Sequence(lambda n: f"login{n}")


class RepositoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Repository

    connection = factory.SubFactory(ConnectionFactory)
    external_id = factory.Sequence(lambda n: str(1000 + n))
    full_path = factory.Sequence(lambda n: f"acme/repo-{n}")


class PullRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PullRequest

    repository = factory.SubFactory(RepositoryFactory)
    number = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Change {n}")
    author = factory.SubFactory(PersonFactory)
    created_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=2))
    updated_at = factory.LazyFunction(timezone.now)
    ready_at = factory.LazyAttribute(lambda o: o.created_at)
    head_sha = factory.Sequence(lambda n: f"{n:040x}")
    # Its files, commits and reviews were fetched for its head: a test about missing facts says so.
    details_head_sha = factory.LazyAttribute(lambda o: o.head_sha)
    details_synced_at = factory.LazyAttribute(lambda o: o.updated_at)


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    pull_request = factory.SubFactory(PullRequestFactory)
    external_id = factory.Sequence(str)
    reviewer = factory.SubFactory(PersonFactory)
    state = Review.State.APPROVED
    # Given on the head, as GitHub says of its reviews; a test of a review with no sha says so.
    commit_sha = factory.LazyAttribute(lambda o: o.pull_request.head_sha)
    submitted_at = factory.LazyFunction(timezone.now)


class CommentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comment

    pull_request = factory.SubFactory(PullRequestFactory)
    external_id = factory.Sequence(str)
    author = factory.SubFactory(PersonFactory)
    body = "Looks good"
    created_at = factory.LazyFunction(timezone.now)


class CommitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Commit

    repository = factory.SubFactory(RepositoryFactory)
    sha = factory.Sequence(lambda n: f"{n + 7_000_000:040x}")
    authored_at = factory.LazyFunction(timezone.now)


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    slug = factory.Sequence(lambda n: f"service-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    service = factory.SubFactory(ServiceFactory)
    environment = "production"
    sha = factory.Sequence(lambda n: f"{n + 9_000_000:040x}")
    status = Deployment.Status.SUCCESS
    source = "api"
    external_id = factory.Sequence(lambda n: f"deploy-{n}")
    finished_at = factory.LazyFunction(timezone.now)


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"Incident {n}")
    source = "api"
    external_id = factory.Sequence(lambda n: f"incident-{n}")
    started_at = factory.LazyFunction(timezone.now)


def facts_fetched(pull_request: PullRequest) -> None:
    """As if the VCS's lists of files, commits and reviews had been fetched whole for the current head."""
    PullRequest.objects.filter(pk=pull_request.pk).update(
        details_head_sha=pull_request.head_sha, details_synced_at=timezone.now(), files_incomplete=""
    )
    pull_request.refresh_from_db()
