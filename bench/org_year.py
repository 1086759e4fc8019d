"""A year of a 50-person organisation's history, built fast into the database DATABASE_URL names (PostgreSQL).

    DEBUG=true DATABASE_URL=postgres://... .venv/bin/python bench/org_year.py --pulls 100000 [--wipe]

Eight teams with their own habits, one repository each plus a monorepo shared by two of them, two services per
team (some path-filtered inside a repository), 100,000 pull requests over 365 days (authors, reviews with
approvals, rubber stamps among them, comments, branch and merge commits on one main line per repository, changed
files under directory prefixes, some pairing sessions, overrides with their follow-ups, policy violations),
10,000 deployments to staging and production with the changes each shipped (as the commit-graph link would
find them), and incidents whose suspects are ranked by the real correlation, the top one of most confirmed (so
risk signals, failed deployments and notices follow from the real services). One incident is still open at the
end. Deterministic for a seed and an anchor (the end of the year, default: today at midnight UTC).

Other bench scripts reuse it:

    sys.path.insert(0, "bench"); from org_year import build_org_year
    build_org_year(pulls=100_000, deployments=10_000, people=50, seed=1)

Bulk rows go in by PostgreSQL COPY with ids taken from the tables' sequences (no model instances: a year is
~2 million rows); the organisation itself (teams, people, repositories, services, policies) and the incidents'
ranking and confirmation go through the project's services. `drifts` inject a change of habit from a date on
(for the alerting benchmark: a team whose pickup time doubles, whose rubber stamps rise...).
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import json
import os
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")  # a development run: settings are fail-closed without it

import django  # noqa: E402
from django.apps import apps  # noqa: E402

if not apps.ready:
    django.setup()

from django.db import connection, models  # noqa: E402
from django.utils import timezone  # noqa: E402

from reviews.integrations.records import RepositoryRecord, UserRecord  # noqa: E402
from reviews.models import (  # noqa: E402
    ChangedFile,
    Comment,
    Commit,
    Connection,
    FollowUpReview,
    Membership,
    Override,
    PairingParticipant,
    PairingSession,
    PolicyViolation,
    PullRequest,
    Repository,
    Review,
    Team,
)
from reviews.policy.codeowners import glob_to_regex  # noqa: E402
from reviews.services.people import person_from_account  # noqa: E402
from reviews.services.pull_requests import repository_upsert  # noqa: E402
from reviews.services.teams import connection_upsert, membership_set, team_upsert  # noqa: E402
from telemetry.models import Deployment, DeploymentChange, Incident, Service, SuspectChange  # noqa: E402
from telemetry.services import service_upsert  # noqa: E402
from telemetry.services.core import incident_upsert  # noqa: E402
from telemetry.services.correlation import incident_correlate  # noqa: E402
from telemetry.services.suspects import suspect_confirm  # noqa: E402

DAYS = 365
SOURCE = "orgyear"
CONNECTION_NAME = "GitHub (org year)"
FIRST_NAMES = """
    Ada Bruno Chen Dana Emeka Farah Gus Hana Ivan Jo Kai Lena Mo Nina Omar Pia Quinn Rui Sara Tomas Uma Vik Wen
    Xavi Yara Zoe Abel Bea Cyrus Dita Eli Fern Gil Hugo Iris Jonah Kira Luca Maya Nils Olga Pavel Rosa Sven Tara
    Ugo Vera Walt Xena Yuri
"""
NAMES = FIRST_NAMES.split()


@dataclass(frozen=True)
class Habits:
    """How a team works: pickup hours (range), approvals asked, and probabilities of each kind of review."""

    pickup_hours: tuple[float, float]
    approvals: tuple[int, ...]
    rubber_stamp: float
    unreviewed: float
    pairing: float
    comments: float
    deploys_per_weekday: float


HABITS = (
    Habits((0.5, 8), (2, 2, 1), 0.04, 0.01, 0.05, 0.8, 1.3),
    Habits((1, 16), (1, 1, 2), 0.12, 0.03, 0.30, 0.6, 1.2),
    Habits((2, 40), (1,), 0.35, 0.08, 0.03, 0.3, 0.9),
    Habits((1, 24), (1, 2), 0.15, 0.04, 0.10, 0.5, 1.0),
    Habits((0.5, 12), (1,), 0.20, 0.02, 0.15, 0.6, 1.5),
    Habits((3, 48), (1,), 0.25, 0.10, 0.02, 0.4, 0.7),
    Habits((1, 20), (2, 1), 0.08, 0.02, 0.20, 0.7, 1.1),
    Habits((2, 30), (1,), 0.30, 0.06, 0.05, 0.4, 0.8),
)
TEAM_NAMES = ("payments", "platform", "mobile", "search", "growth", "data", "identity", "infra")
DIRECTORIES = ("api/", "core/", "jobs/", "web/", "docs/", "config/", "lib/", "tests/")


@dataclass(frozen=True)
class Drift:
    """From `starts_at` on, one of a team's habits is multiplied by `factor`: `pickup` (hours to the first
    review), `rubber_stamp` or `unreviewed` (their probabilities), `deployments` (deployments per weekday)."""

    team: str
    figure: str
    starts_at: dt.datetime
    factor: float


@dataclass
class _Team:
    slug: str
    model: Team
    habits: Habits
    people: list[int] = field(default_factory=list)  # person ids, the lead first
    logins: dict[int, str] = field(default_factory=dict)


@dataclass
class _Repo:
    model: Repository
    teams: list[_Team]
    directories: tuple[str, ...]
    pulls: int


@dataclass
class _Merged:
    """A merged pull request as deployments see it."""

    pull_request_id: int
    merged_at: dt.datetime
    merge_sha: str
    commit_ids: list[int]  # the merge commit and the branch commits
    files: list[str]


@dataclass
class _Branch:
    """A merged pull request before its merge commit is laid on the main line."""

    merged_at: dt.datetime | None  # None: not merged (its first commit still forks from the main line)
    pull_request_id: int
    number: int
    merge_sha: str
    head_sha: str
    first_commit: dict[str, Any]  # the row itself: its parent is set on the main line, before it is written
    commit_ids: list[int]
    files: list[str]


@dataclass
class _Rows:
    """Rows to COPY, per model, in dependency order."""

    by_model: dict[type[models.Model], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, model: type[models.Model], **values: Any) -> None:
        self.by_model[model].append(values)

    def flush(self) -> int:
        written = 0
        for model in list(self.by_model):
            written += copy_rows(model, self.by_model.pop(model))
        return written


def build_org_year(  # noqa: PLR0913 - the knobs of a benchmark history
    *,
    pulls: int = 100_000,
    deployments: int = 10_000,
    people: int = 50,
    seed: int = 1,
    anchor: dt.datetime | None = None,
    drifts: Sequence[Drift] = (),
    wipe: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, int]:
    """Build the year; returns the number of rows of each kind. Refuses when history already exists, unless `wipe`
    (which empties every table of the reviews and telemetry apps first)."""
    if connection.vendor != "postgresql":
        raise RuntimeError("org_year writes with PostgreSQL's COPY: point DATABASE_URL at PostgreSQL")
    if wipe:
        _wipe()
    elif any(model.objects.exists() for model in (Team, Repository, Commit, PullRequest, Deployment)):
        raise RuntimeError("the database already holds history: pass wipe=True (--wipe) to empty it first")
    anchor = anchor or timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    clock = _Clock(progress)

    teams, repositories = _organisation(people=people, pulls=pulls, rng=rng)
    clock.phase(f"organisation: {len(teams)} teams, {people} people, {len(repositories)} repositories")

    later = _Rows()  # open pull requests: written last, once nothing re-evaluates them on the way
    merged: dict[int, list[_Merged]] = {}
    for repo in repositories:
        rows = _Rows()
        merged[repo.model.pk] = _pull_requests(repo, anchor, random.Random(rng.random()), drifts, rows, later)
        written = rows.flush()
        counts["pull_requests"] = counts.get("pull_requests", 0) + repo.pulls
        clock.phase(f"{repo.model.full_path}: {repo.pulls} pull requests, {written} rows")

    services = _services(teams, repositories)
    rows = _Rows()
    counts["deployments"] = _deployments(
        services, merged, deployments, anchor, random.Random(rng.random()), drifts, rows
    )
    counts["deployment_changes"] = len(rows.by_model[DeploymentChange])
    rows.flush()
    clock.phase(f"{counts['deployments']} deployments, {counts['deployment_changes']} changes shipped")

    counts["incidents"], counts["confirmed_causes"] = _incidents(services, anchor, random.Random(rng.random()))
    clock.phase(f"{counts['incidents']} incidents ranked, {counts['confirmed_causes']} causes confirmed")

    counts["open_rows"] = later.flush()
    clock.phase("open pull requests")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    clock.phase("analyze")
    return counts


class _Clock:
    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress
        self.started = self.last = time.perf_counter()

    def phase(self, what: str) -> None:
        now = time.perf_counter()
        self.progress(f"{now - self.started:7.1f}s (+{now - self.last:5.1f}s) {what}")
        self.last = now


# --- writing ------------------------------------------------------------------------------------------------------


def copy_rows(model: type[models.Model], rows: list[dict[str, Any]]) -> int:
    """COPY `rows` (attname → value; the rest take the field's default) into the model's table."""
    if not rows:
        return 0
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and "id" not in rows[0])]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    defaults = {f.attname: f.get_default() for f in fields}
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                values = []
                for f in fields:
                    value = row[f.attname] if f.attname in row else defaults[f.attname]
                    values.append(json.dumps(value) if f.attname in json_fields else value)
                copy.write_row(values)
    return len(rows)


class _Ids:
    """Primary keys taken from the tables' own sequences, a block at a time, so rows can point at each other
    before they are written."""

    def __init__(self) -> None:
        self.pools: dict[type[models.Model], list[int]] = defaultdict(list)

    def next(self, model: type[models.Model]) -> int:
        pool = self.pools[model]
        if not pool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, 5000)",
                    [model._meta.db_table],
                )
                pool.extend(sorted((row[0] for row in cursor.fetchall()), reverse=True))
        return pool.pop()


IDS = _Ids()


def _wipe() -> None:
    tables = [
        name
        for name in connection.introspection.django_table_names(only_existing=True, include_views=False)
        if name.startswith(("reviews_", "telemetry_"))
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")
    IDS.pools.clear()


def _sha(*parts: object) -> str:
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()  # noqa: S324 - ids, not security


# --- the organisation ---------------------------------------------------------------------------------------------


def _organisation(*, people: int, pulls: int, rng: random.Random) -> tuple[list[_Team], list[_Repo]]:
    github = connection_upsert(
        provider="github", name=CONNECTION_NAME, base_url="https://github.example", web_url="https://github.example"
    )
    teams = [
        _Team(slug, team_upsert(slug=slug, name=slug.title(), review_within_hours=24), HABITS[index % len(HABITS)])
        for index, slug in enumerate(TEAM_NAMES)
    ]
    for index in range(people):
        team = teams[index % len(teams)]
        login = f"{NAMES[index % len(NAMES)].lower()}{index // len(NAMES) or ''}"
        record = UserRecord(provider="github", login=login, external_id=str(900_000 + index), name=login.title())
        person = person_from_account(connection=github, account=record)
        if person is None:
            raise RuntimeError(f"person {login} did not resolve")
        lead = not team.people
        membership_set(team=team.model, person=person, role=Membership.Role.LEAD if lead else Membership.Role.MEMBER)
        team.people.append(person.pk)
        team.logins[person.pk] = login
    _policies(teams)
    repositories = []
    weights = [len(team.people) for team in teams] + [len(teams[0].people) + len(teams[1].people)]
    total = sum(weights)
    for team in teams:
        repositories.append(_repository(github, f"acme/{team.slug}", [team], DIRECTORIES[:6], 0))
    monorepo_dirs = (f"services/{teams[0].slug}/", f"services/{teams[1].slug}/", "shared/", "deploy/")
    repositories.append(_repository(github, "acme/monorepo", teams[:2], monorepo_dirs, 0))
    assigned = 0
    for repo, weight in zip(repositories, weights, strict=True):
        repo.pulls = pulls * weight // total
        assigned += repo.pulls
    repositories[0].pulls += pulls - assigned
    for repo in repositories:
        repo.model.codeowners = "".join(
            f"{directory} @{repo.teams[0].logins[repo.teams[0].people[0]]} "
            f"@{repo.teams[0].logins[rng.choice(repo.teams[0].people)]}\n"
            for directory in repo.directories
        )
        repo.model.save(update_fields=["codeowners"])
    return teams, repositories


def _repository(
    github: Connection, full_path: str, teams: list[_Team], directories: tuple[str, ...], pulls: int
) -> _Repo:
    external_id = str(int(_sha(full_path)[:7], 16))
    record = RepositoryRecord(
        provider="github", external_id=external_id, full_path=full_path, web_url=f"https://github.example/{full_path}"
    )
    repository = repository_upsert(connection=github, record=record)
    repository.team = teams[0].model
    repository.save(update_fields=["team"])
    return _Repo(repository, teams, directories, pulls)


POLICY = """\
rules:
  - name: one reviewer
    require: {approvals: 1}
risk:
  incident_window_days: 14
  extra_approvals: 1
override:
  allowed: [team-leads]
  followup_review_hours: 48
"""


def _policies(teams: list[_Team]) -> None:
    from reviews.services.policies import policy_save

    for team in teams:
        policy_save(team=team.model, document=POLICY)


# --- pull requests ------------------------------------------------------------------------------------------------


def _drift(drifts: Sequence[Drift], team: str, figure: str, at: dt.datetime) -> float:
    factor = 1.0
    for drift in drifts:
        if drift.team == team and drift.figure == figure and at >= drift.starts_at:
            factor *= drift.factor
    return factor


def _pull_requests(  # noqa: PLR0913
    repo: _Repo, anchor: dt.datetime, rng: random.Random, drifts: Sequence[Drift], rows: _Rows, later: _Rows
) -> list[_Merged]:
    """Every pull request of the repository with its commits, files, reviews, comments, pairing and exceptions;
    then the main line: merge commits in merge order, each branch forked from the main line of its time."""
    repository = repo.model
    start = anchor - dt.timedelta(days=DAYS)
    initial_id = IDS.next(Commit)
    initial_sha = _sha(repository.full_path, "initial")
    initial_at = start - dt.timedelta(days=30)
    rows.add(
        Commit,
        id=initial_id,
        repository_id=repository.pk,
        sha=initial_sha,
        message="Initial commit",
        authored_at=initial_at,
        committed_at=initial_at,
        parents=[],
        parents_known=True,
    )
    branches = [
        _one_pull_request(repo, repo.teams[number % len(repo.teams)], number, anchor, start, rng, drifts, rows, later)
        for number in range(1, repo.pulls + 1)
    ]
    return _main_line(repo, branches, initial_sha, initial_at, rows)


def _one_pull_request(  # noqa: PLR0913, PLR0915 - one story per pull request, told in order
    repo: _Repo,
    team: _Team,
    number: int,
    anchor: dt.datetime,
    start: dt.datetime,
    rng: random.Random,
    drifts: Sequence[Drift],
    rows: _Rows,
    later: _Rows,
) -> _Branch:
    """One pull request's rows, into `rows`; an open one's into `later` (written once nothing re-evaluates it on the
    way)."""
    repository = repo.model
    habits = team.habits
    pull_request_id = IDS.next(PullRequest)
    author = rng.choice(team.people)
    created = start + dt.timedelta(days=DAYS * number / (repo.pulls + 1), minutes=rng.randint(0, 600))
    created = min(created, anchor - dt.timedelta(minutes=30))
    if created.weekday() >= 5 and rng.random() < 0.8:
        created += dt.timedelta(days=7 - created.weekday())  # most work happens on weekdays
        created = min(created, anchor - dt.timedelta(minutes=30))
    first_commit_at = created - dt.timedelta(hours=rng.uniform(0.5, 48))
    size = int(rng.lognormvariate(4.0, 1.1)) + 1
    additions = max(1, int(size * rng.uniform(0.5, 0.9)))
    deletions = size - additions
    head_ref = f"{team.logins[author]}/change-{number}"

    # Branch commits, chained; the first one's parent is set on the main line later.
    commit_rows = []
    branch_count = rng.choice((1, 1, 2, 2, 3, 4))
    at = first_commit_at
    parent: str | None = None
    for index in range(branch_count):
        sha = _sha(repository.full_path, number, "commit", index)
        commit_rows.append(
            {
                "id": IDS.next(Commit),
                "repository_id": repository.pk,
                "sha": sha,
                "message": f"Change {number}, part {index + 1}",
                "author_id": author,
                "authored_at": at,
                "committed_at": at,
                "parents": [parent] if parent else [],
                "parents_known": True,
            }
        )
        parent = sha
        at = min(at + dt.timedelta(hours=rng.uniform(0.2, 6)), created)
    last_push = max(created, commit_rows[-1]["authored_at"])

    # Files under the repository's directories (a few directories, a few files each).
    directories = rng.sample(repo.directories, k=min(len(repo.directories), rng.choice((1, 1, 1, 2, 2, 3))))
    files = sorted({f"{rng.choice(directories)}{_module(rng)}" for _ in range(rng.choice((1, 2, 3, 3, 4, 6)))})

    # Reviews.
    reviews: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    cursor = created + dt.timedelta(
        hours=rng.uniform(*habits.pickup_hours) * _drift(drifts, team.slug, "pickup", created)
    )
    paired_with = None
    if rng.random() < habits.pairing:
        paired_with = rng.choice([p for p in team.people if p != author])
    unreviewed_p = habits.unreviewed * _drift(drifts, team.slug, "unreviewed", created)
    unreviewed = rng.random() < unreviewed_p or (paired_with is not None and rng.random() < 0.5)
    reviewers = [p for p in team.people if p != author]
    if not unreviewed and reviewers:
        stamp_p = habits.rubber_stamp * _drift(drifts, team.slug, "rubber_stamp", created)
        stamp = size > 60 and rng.random() < stamp_p
        chosen = rng.sample(reviewers, k=min(len(reviewers), rng.choice(habits.approvals)))
        for offset, reviewer in enumerate(chosen):
            if stamp:
                cursor = max(cursor, last_push) + dt.timedelta(minutes=rng.uniform(0.5, 2))
                body = ""
            else:
                cursor += dt.timedelta(minutes=rng.uniform(10, 120))
                body = "Looks good: checked the edge cases." if rng.random() < habits.comments else ""
                if rng.random() < habits.comments:
                    comments.append(
                        {
                            "id": IDS.next(Comment),
                            "pull_request_id": pull_request_id,
                            "external_id": f"{pull_request_id}-c{offset}",
                            "author_id": reviewer,
                            "kind": Comment.Kind.DIFF,
                            "body": "Could this fail when the list is empty?",
                            "path": files[0],
                            "created_at": cursor - dt.timedelta(minutes=5),
                        }
                    )
            reviews.append(
                {
                    "id": IDS.next(Review),
                    "pull_request_id": pull_request_id,
                    "external_id": f"{pull_request_id}-r{offset}",
                    "reviewer_id": reviewer,
                    "state": Review.State.APPROVED,
                    "commit_sha": commit_rows[-1]["sha"],
                    "body": body,
                    "comment_count": 0,
                    "submitted_at": cursor,
                }
            )
    merged_at: dt.datetime | None = max(cursor, last_push) + dt.timedelta(hours=rng.uniform(0.1, 8))
    state = PullRequest.State.MERGED
    if anchor - created < dt.timedelta(days=5) and rng.random() < 0.5:
        state, merged_at = PullRequest.State.OPEN, None
        reviews = [r for r in reviews if r["submitted_at"] < anchor]
        comments = [c for c in comments if c["created_at"] < anchor]
    elif rng.random() < 0.05:
        state, merged_at = PullRequest.State.CLOSED, None
    if merged_at is not None and merged_at >= anchor:
        merged_at = anchor - dt.timedelta(minutes=rng.randint(5, 60))
        merged_at = max(merged_at, last_push + dt.timedelta(minutes=1))
    merge_sha = _sha(repository.full_path, number, "merge") if merged_at else ""
    if state == PullRequest.State.OPEN:
        rows = later
    updated = max([created, last_push, merged_at or created, *(r["submitted_at"] for r in reviews)])
    head_sha = commit_rows[-1]["sha"]
    pull_request = {
        "id": pull_request_id,
        "repository_id": repository.pk,
        "number": number,
        "external_id": str(pull_request_id),
        "title": f"{files[0].split('/')[0].title()}: change {number}",
        "author_id": author,
        "state": state,
        "base_ref": repository.default_branch,
        "head_ref": head_ref,
        "head_sha": head_sha,
        "merge_commit_sha": merge_sha,
        "additions": additions,
        "deletions": deletions,
        "changed_files": len(files),
        "web_url": f"{repository.web_url}/pull/{number}",
        "created_at": created,
        "updated_at": updated,
        "ready_at": created,
        "last_pushed_at": last_push,
        "first_commit_at": first_commit_at,
        "details_head_sha": head_sha,
        "details_synced_at": updated,
        "merged_at": merged_at,
        "closed_at": merged_at if merged_at else (updated if state == PullRequest.State.CLOSED else None),
        "merged_by_id": author if merged_at else None,
    }
    rows.add(PullRequest, **pull_request)
    for commit in commit_rows:
        rows.by_model[Commit].append(commit)
        rows.add(PullRequest.commits.through, pullrequest_id=pull_request_id, commit_id=commit["id"])
    per_file = max(1, size // len(files))
    for path in files:
        rows.add(
            ChangedFile,
            pull_request_id=pull_request_id,
            path=path,
            status="modified",
            additions=per_file * additions // size,
            deletions=per_file * deletions // size,
        )
    for review in reviews:
        rows.add(Review, **review)
    for comment in comments:
        rows.add(Comment, **comment)
    if state == PullRequest.State.OPEN and not reviews:
        for reviewer in rng.sample(reviewers, k=min(len(reviewers), 2)):
            rows.add(PullRequest.requested_reviewers.through, pullrequest_id=pull_request_id, person_id=reviewer)
    if paired_with is not None:
        _pairing(rows, repository, head_ref, author, paired_with, first_commit_at, created, pull_request_id)
    if merged_at is not None and not reviews:
        _exception(rows, team, pull_request_id, author, head_sha, merged_at, anchor, rng)
    commit_ids = [commit["id"] for commit in commit_rows]
    return _Branch(merged_at, pull_request_id, number, merge_sha, head_sha, commit_rows[0], commit_ids, files)


def _module(rng: random.Random) -> str:
    return f"{rng.choice(('orders', 'billing', 'users', 'search', 'auth', 'ledger', 'export'))}/{rng.randint(1, 40)}.py"


def _pairing(  # noqa: PLR0913
    rows: _Rows,
    repository: Repository,
    branch: str,
    driver: int,
    navigator: int,
    started: dt.datetime,
    created: dt.datetime,
    pull_request_id: int,
) -> None:
    session_id = IDS.next(PairingSession)
    ended = max(started + dt.timedelta(minutes=30), min(created, started + dt.timedelta(hours=3)))
    rows.add(
        PairingSession,
        id=session_id,
        source=PairingSession.Source.API,
        external_id=f"{SOURCE}-{pull_request_id}",
        repository_id=repository.pk,
        branch=branch,
        started_at=started,
        ended_at=ended,
        created_at=started,
    )
    for person, role in ((driver, PairingParticipant.Role.DRIVER), (navigator, PairingParticipant.Role.NAVIGATOR)):
        rows.add(
            PairingParticipant, session_id=session_id, person_id=person, role=role, joined_at=started, left_at=ended
        )


def _exception(  # noqa: PLR0913
    rows: _Rows,
    team: _Team,
    pull_request_id: int,
    author: int,
    head_sha: str,
    merged_at: dt.datetime,
    anchor: dt.datetime,
    rng: random.Random,
) -> None:
    """A change merged without review: overridden by the lead (most followed up later), or a violation."""
    lead = team.people[0]
    if rng.random() < 0.4 and lead != author:
        override_id = IDS.next(Override)
        due = merged_at + dt.timedelta(hours=48)
        done = due - dt.timedelta(hours=rng.uniform(1, 40)) if due < anchor and rng.random() < 0.7 else None
        reviewer = next((p for p in team.people if p not in (author, lead)), None)
        rows.add(
            Override,
            id=override_id,
            pull_request_id=pull_request_id,
            head_sha=head_sha,
            overridden_by_id=lead,
            reason="Hotfix for a customer-facing bug",
            created_at=merged_at - dt.timedelta(minutes=2),
            followup_due_at=due,
            followup_done_at=done if reviewer else None,
            followup_by_id=reviewer if done else None,
        )
        if done and reviewer:
            rows.add(
                FollowUpReview, override_id=override_id, reviewer_id=reviewer, note="Read it after.", completed_at=done
            )
    else:
        rows.add(PolicyViolation, pull_request_id=pull_request_id, outcome="pending", recorded_at=merged_at)


def _main_line(
    repo: _Repo, branches: list[_Branch], initial_sha: str, initial_at: dt.datetime, rows: _Rows
) -> list[_Merged]:
    """Merge commits in merge order, each on the previous one and the branch's tip; each branch's first commit
    forks from the main line as it stood when it was written (its row is still unwritten: its parent is set here)."""
    line_times = [initial_at]
    line_shas = [initial_sha]
    merged = []
    unmerged = [branch for branch in branches if branch.merged_at is None]
    for branch in sorted(
        (branch for branch in branches if branch.merged_at is not None),
        key=lambda branch: (branch.merged_at, branch.pull_request_id),
    ):
        assert branch.merged_at is not None
        _fork(branch, line_times, line_shas)
        merge_id = IDS.next(Commit)
        rows.add(
            Commit,
            id=merge_id,
            repository_id=repo.model.pk,
            sha=branch.merge_sha,
            message=f"Merge pull request #{branch.number}",
            authored_at=branch.merged_at,
            committed_at=branch.merged_at,
            parents=[line_shas[-1], branch.head_sha],
            parents_known=True,
        )
        line_times.append(branch.merged_at)
        line_shas.append(branch.merge_sha)
        merged.append(
            _Merged(
                branch.pull_request_id, branch.merged_at, branch.merge_sha, [merge_id, *branch.commit_ids], branch.files
            )
        )
    for branch in unmerged:
        _fork(branch, line_times, line_shas)
    return merged


def _fork(branch: _Branch, line_times: list[dt.datetime], line_shas: list[str]) -> None:
    fork = bisect.bisect_right(line_times, branch.first_commit["authored_at"]) - 1
    branch.first_commit["parents"] = [line_shas[max(fork, 0)]]


# --- services and deployments -------------------------------------------------------------------------------------


@dataclass
class _Service:
    model: Service
    repo: _Repo
    habits: Habits
    team: str
    pattern: re.Pattern[str] | None  # its path filters; None: the whole repository


def _services(teams: list[_Team], repositories: list[_Repo]) -> list[_Service]:
    services = []
    for team, repo in zip(teams, repositories, strict=False):
        for suffix, filters in (("web", ()), ("jobs", ("jobs/**", "lib/**"))):
            services.append(_service(f"{team.slug}-{suffix}", team, repo, filters))
    monorepo = repositories[-1]
    for team in monorepo.teams:
        services.append(_service(f"{team.slug}-core", team, monorepo, (f"services/{team.slug}/**", "shared/**")))
    return services


def _service(slug: str, team: _Team, repo: _Repo, filters: tuple[str, ...]) -> _Service:
    model = service_upsert(
        slug=slug, name=slug.replace("-", " ").title(), team=team.model, repositories=[(repo.model, filters)]
    )
    pattern = re.compile("|".join(f"(?:{glob_to_regex(f)})" for f in filters)) if filters else None
    return _Service(model, repo, team.habits, team.slug, pattern)


def _deployments(  # noqa: PLR0913
    services: list[_Service],
    merged: dict[int, list[_Merged]],
    total: int,
    anchor: dt.datetime,
    rng: random.Random,
    drifts: Sequence[Drift],
    rows: _Rows,
) -> int:
    """Weekday production deployments of each service (a staging one half an hour before each) of its
    repository's main line as it stood, with the changes the commit-graph link would find."""
    start = anchor - dt.timedelta(days=DAYS)
    weekdays = sum(1 for day in range(DAYS) if (start + dt.timedelta(days=day)).weekday() < 5)
    scale = total / (2 * weekdays * sum(service.habits.deploys_per_weekday for service in services))
    written = 0
    for service in services:
        history = merged[service.repo.model.pk]
        times = [item.merged_at for item in history]
        keeps = [service.pattern is None or any(service.pattern.match(path) for path in item.files) for item in history]
        chains: dict[str, tuple[int, dt.datetime] | None] = {"staging": None, "production": None}
        for day in range(DAYS):
            date = start + dt.timedelta(days=day)
            if date.weekday() >= 5:
                continue
            rate = service.habits.deploys_per_weekday * scale * _drift(drifts, service.team, "deployments", date)
            for slot in range(int(rate) + (1 if rng.random() < rate - int(rate) else 0)):
                started = date + dt.timedelta(hours=9 + slot * 2.5, minutes=rng.randint(0, 50))
                tip = bisect.bisect_right(times, started) - 1
                if tip < 0:
                    continue
                failed = rng.random() < 0.04
                for environment in ("staging", "production"):
                    offset = dt.timedelta(minutes=30) if environment == "staging" else dt.timedelta(0)
                    begun = started - offset
                    finished = begun + dt.timedelta(minutes=rng.randint(4, 20))
                    success = not (failed and environment == "production")
                    previous = chains[environment] if success else None
                    deployment_id = IDS.next(Deployment)
                    note = ""
                    shipped: list[int] = []
                    if not success:
                        note = "Not a finished successful deployment (failure): it shipped nothing."
                    else:
                        low = (
                            previous[0] if previous else bisect.bisect_left(times, finished - dt.timedelta(days=14)) - 1
                        )
                        shipped = [i for i in range(low + 1, tip + 1) if keeps[i]]
                        chains[environment] = (tip, finished)
                        if not shipped:
                            note = "No pull request: none of the commits since the previous deployment touched it."
                    rows.add(
                        Deployment,
                        id=deployment_id,
                        service_id=service.model.pk,
                        environment=environment,
                        repository_id=service.repo.model.pk,
                        sha=history[tip].merge_sha,
                        ref="main",
                        status=Deployment.Status.SUCCESS if success else Deployment.Status.FAILURE,
                        source=SOURCE,
                        external_id=str(deployment_id),
                        started_at=begun,
                        finished_at=finished,
                        source_updated_at=finished,
                        changes_linked_at=finished + dt.timedelta(minutes=1),
                        link_method="graph" if success else "none",
                        link_error=note,
                        created_at=begun,
                    )
                    written += 1
                    for index in shipped:
                        for commit_id in history[index].commit_ids:
                            rows.add(
                                DeploymentChange,
                                deployment_id=deployment_id,
                                commit_id=commit_id,
                                pull_request_id=history[index].pull_request_id,
                            )
    return written


# --- incidents ----------------------------------------------------------------------------------------------------

TITLES = (
    "Elevated 5xx",
    "Latency above the objective",
    "Jobs stuck in the queue",
    "Wrong totals on invoices",
    "Login failures",
    "Search results empty",
)


def _incidents(services: list[_Service], anchor: dt.datetime, rng: random.Random) -> tuple[int, int]:
    """About one production deployment in 35 is followed by an incident; the real correlation ranks its suspects
    and the top one is confirmed seven times in ten. The first service has an incident still open at the end."""
    created = []
    for service in services:
        shipped_deployments = list(
            Deployment.objects.filter(
                service=service.model, environment="production", status=Deployment.Status.SUCCESS, changes__isnull=False
            )
            .distinct()
            .order_by("finished_at")
            .values_list("finished_at", flat=True)
        )
        for index, finished in enumerate(shipped_deployments):
            if rng.random() >= 1 / 35 or finished > anchor - dt.timedelta(days=1):
                continue
            started = finished + dt.timedelta(hours=rng.uniform(0.3, 20))
            incident, _ = incident_upsert(
                source=SOURCE,
                external_id=f"{service.model.slug}-{index}",
                title=rng.choice(TITLES),
                severity=rng.choice([Incident.Severity.SEV1, Incident.Severity.SEV2, Incident.Severity.SEV3]),
                status=Incident.Status.RESOLVED,
                started_at=started,
                detected_at=started + dt.timedelta(minutes=rng.randint(2, 20)),
                resolved_at=started + dt.timedelta(hours=rng.uniform(0.5, 6)),
                services=[service.model],
            )
            created.append(incident)
    open_started = anchor - dt.timedelta(hours=2)
    incident, _ = incident_upsert(
        source=SOURCE,
        external_id=f"{services[0].model.slug}-open",
        title="Elevated 5xx (still open)",
        severity=Incident.Severity.SEV2,
        status=Incident.Status.TRIGGERED,
        started_at=open_started,
        detected_at=open_started,
        services=[services[0].model],
    )
    created.append(incident)
    confirmed = 0
    for incident in created:
        incident_correlate(incident_id=incident.pk)
        top = SuspectChange.objects.filter(incident=incident).order_by("rank", "pk").first()
        if top is not None and incident.status == Incident.Status.RESOLVED and rng.random() < 0.7:
            suspect_confirm(suspect=top, decided_by=None)
            confirmed += 1
    return len(created), confirmed


# --- command line -------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pulls", type=int, default=100_000)
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wipe", action="store_true", help="empty the reviews and telemetry tables first")
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    counts = build_org_year(
        pulls=args.pulls,
        deployments=args.deployments,
        people=args.people,
        seed=args.seed,
        wipe=args.wipe,
        progress=lambda message: print(message, flush=True),
    )
    print(" ".join(f"{name}={value}" for name, value in counts.items()))


if __name__ == "__main__":
    main()
