"""Builders for telemetry tests: teams with named actors, repositories with a real commit graph of merged pull
requests, deployments and incidents at fixed times, API clients per actor, and a fake chat webhook server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from reviews.models import ChangedFile, Commit, Membership, Person, PullRequest, Repository, Review, Team
from reviews.services.tokens import api_token_create
from telemetry.models import Deployment, Incident, Service, ServiceRepository
from tests.factories import ConnectionFactory, RepositoryFactory

T0 = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def sha_of(label: str) -> str:
    return hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()


class History:
    """A repository's main line: merged pull requests, each a branch commit and a merge commit whose parents are
    the previous main-line commit and the branch."""

    def __init__(self, repository: Repository, *, start: dt.datetime = T0 - dt.timedelta(days=30)) -> None:
        self.repository = repository
        root = self.commit("root", at=start, parents=())
        self.head = root.sha

    def commit(
        self, label: str, *, at: dt.datetime, parents: Sequence[str] | None = None, author: Person | None = None
    ) -> Commit:
        return Commit.objects.create(
            repository=self.repository,
            sha=sha_of(f"{self.repository.full_path}:{label}"),
            message=label,
            author=author,
            authored_at=at,
            committed_at=at,
            parents=list(parents if parents is not None else [self.head]),
            parents_known=True,
        )

    def merge(
        self,
        number: int,
        *,
        at: dt.datetime,
        author: Person | None = None,
        files: Sequence[str] = ("app.py",),
        lines: int = 10,
        merged_by: Person | None = None,
        ready: dt.timedelta = dt.timedelta(hours=4),
        first_commit: dt.timedelta = dt.timedelta(hours=8),
        store_commits: bool = True,
    ) -> PullRequest:
        """A pull request merged at `at`: its branch commit authored `first_commit` before, ready `ready` before."""
        branch_sha = sha_of(f"{self.repository.full_path}:branch-{number}")
        merge_sha = sha_of(f"{self.repository.full_path}:merge-{number}")
        author = author or Person.objects.create(display_name=f"Author {number}")
        pull_request = PullRequest.objects.create(
            repository=self.repository,
            number=number,
            title=f"Change {number}",
            author=author,
            state=PullRequest.State.MERGED,
            base_ref=self.repository.default_branch,
            head_ref=f"feature-{number}",
            head_sha=branch_sha,
            merge_commit_sha=merge_sha,
            additions=lines,
            deletions=0,
            changed_files=len(files),
            created_at=at - ready,
            updated_at=at,
            ready_at=at - ready,
            first_commit_at=at - first_commit,
            merged_at=at,
            merged_by=merged_by,
        )
        per_file = max(lines // max(len(files), 1), 1)
        ChangedFile.objects.bulk_create(
            [ChangedFile(pull_request=pull_request, path=path, additions=per_file) for path in files]
        )
        if store_commits:
            branch = self.commit(f"branch-{number}", at=at - first_commit, author=author)
            merge = self.commit(f"merge-{number}", at=at, parents=[self.head, branch.sha], author=author)
            pull_request.commits.add(branch)
            assert merge.sha == merge_sha
            # Its files and commits are stored, as a sync stores them: the head's facts are known.
            PullRequest.objects.filter(pk=pull_request.pk).update(details_head_sha=branch_sha)
            pull_request.details_head_sha = branch_sha
        self.head = merge_sha
        return pull_request


def approve(pull_request: PullRequest, reviewer: Person, *, at: dt.datetime, body: str = "") -> Review:
    count = Review.objects.filter(pull_request=pull_request).count()
    return Review.objects.create(
        pull_request=pull_request,
        external_id=f"{pull_request.pk}-{count}",
        reviewer=reviewer,
        state=Review.State.APPROVED,
        body=body,
        commit_sha=pull_request.head_sha,  # given on the head, as GitHub says of its reviews
        submitted_at=at,
    )


def make_service(
    slug: str, team: Team | None, repositories: Sequence[tuple[Repository, Sequence[str]]] = ()
) -> Service:
    service = Service.objects.create(slug=slug, name=slug.title(), team=team)
    for repository, path_filters in repositories:
        ServiceRepository.objects.create(service=service, repository=repository, path_filters=list(path_filters))
    return service


def make_deployment(
    service: Service,
    sha: str,
    *,
    at: dt.datetime,
    repository: Repository | None = None,
    environment: str = "production",
    status: str = Deployment.Status.SUCCESS,
    external_id: str = "",
) -> Deployment:
    return Deployment.objects.create(
        service=service,
        environment=environment,
        repository=repository,
        sha=sha,
        status=status,
        source="api",
        external_id=external_id or f"{service.slug}-{environment}-{sha[:10]}-{at.timestamp():.0f}",
        started_at=at - dt.timedelta(minutes=10),
        finished_at=at,
    )


def make_incident(
    services: Sequence[Service], *, at: dt.datetime, title: str = "Checkout down", **extra: Any
) -> Incident:
    incident = Incident.objects.create(
        title=title, source="api", external_id=f"inc-{title}-{at.timestamp():.0f}", started_at=at, **extra
    )
    incident.services.set(services)
    return incident


# --- actors ---------------------------------------------------------------------------------------------------------


class Actors:
    """A team with a lead and a member, another team, an outsider, and API tokens for both teams."""

    def __init__(self) -> None:
        self.team = Team.objects.create(slug="payments", name="Payments")
        self.other_team = Team.objects.create(slug="search", name="Search")
        self.lead = self._person("Lena Lead", self.team, Membership.Role.LEAD)
        self.member = self._person("Max Member", self.team, Membership.Role.MEMBER)
        self.outsider = self._person("Olga Outsider", self.other_team, Membership.Role.LEAD)
        _, self.team_token = api_token_create(name="payments CI", teams=[self.team])
        _, self.other_token = api_token_create(name="search CI", teams=[self.other_team])

    @staticmethod
    def _person(name: str, team: Team, role: str) -> Person:
        user = get_user_model().objects.create_user(username=name.split()[0].lower(), password="x")  # noqa: S106
        person = Person.objects.create(display_name=name, user=user)
        Membership.objects.create(team=team, person=person, role=role)
        return person

    def client(self, who: str) -> APIClient:
        """An API client acting as "token", "other_token", "lead", "member", "outsider" or "anonymous"."""
        client = APIClient()
        if who == "token":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.team_token}")
        elif who == "other_token":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.other_token}")
        elif who in {"lead", "member", "outsider"}:
            client.force_authenticate(user=getattr(self, who).user)
        return client


@pytest.fixture
def actors(db) -> Actors:
    return Actors()


@pytest.fixture
def repository(db, actors) -> Repository:
    return RepositoryFactory(
        full_path="acme/shop", connection=ConnectionFactory(base_url="https://github.example/api"), team=actors.team
    )


@pytest.fixture
def history(repository) -> History:
    return History(repository)


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what a block queued on commit (tasks run inline in tests), as a context manager."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- a chat webhook on 127.0.0.1 --------------------------------------------------------------------------------------


class FakeChat:
    """A Slack-compatible incoming webhook: records each JSON body posted; `status` is what it answers.

    `received` counts every POST; `shown` is what a person would see in the channel. With `silent` set it shows the
    message but never answers (until the test ends), as a chat whose answer is lost would."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.status = 200
        self.received = 0
        self.silent = False
        self._released = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.received += 1
                if fake.status == 200:
                    fake.messages.append(json.loads(body))
                if fake.silent:
                    fake._released.wait(30)
                    return
                self.send_response(fake.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if fake.status == 200 else b"error")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/services/T000/B000/XXXX"

    def __enter__(self) -> FakeChat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


@pytest.fixture
def fake_chat() -> Iterator[FakeChat]:
    with FakeChat() as chat:
        yield chat
