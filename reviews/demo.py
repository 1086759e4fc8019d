"""A realistic, deterministic demo organisation, written through the same services real ingestion uses.

Three teams, fifteen people with GitHub, GitLab and e-mail identities, five repositories on both providers,
about 1,600 pull requests over the last 90 days with reviews, comments, commits (some co-authored), pairing
sessions, services, deployments and incidents. Habits differ per team so the team pages have something to
say: payments reviews carefully, platform pairs a lot, mobile rubber-stamps and merges some changes unreviewed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from reviews.demo_writer import DemoPeople, DemoWriter, Story
from reviews.integrations.records import (
    ChangedFileRecord,
    CommentRecord,
    CommitRecord,
    GitUserRecord,
    PullRequestRecord,
    RepositoryRecord,
    ReviewRecord,
    UserRecord,
)
from reviews.integrations.trailers import co_authors
from reviews.models import (
    Connection,
    Membership,
    PairingParticipant,
    PairingSession,
    Policy,
    PullRequest,
    Repository,
    Team,
)
from reviews.services.pairing import pairing_session_record
from reviews.services.people import person_from_account
from reviews.services.pull_requests import (
    repository_upsert,
)
from reviews.services.teams import connection_upsert, membership_set, team_upsert

DAYS = 90
EVALUATION_BATCH = 100


@dataclass(frozen=True)
class DemoPerson:
    login: str
    name: str
    team: str
    lead: bool = False

    @property
    def email(self) -> str:
        return f"{self.login}@acme.example"


PEOPLE = [
    DemoPerson("ada", "Ada Okafor", "payments", lead=True),
    DemoPerson("bruno", "Bruno Silva", "payments"),
    DemoPerson("chen", "Chen Wei", "payments"),
    DemoPerson("dana", "Dana Kowalski", "payments"),
    DemoPerson("emeka", "Emeka Eze", "payments"),
    DemoPerson("farah", "Farah Haddad", "platform", lead=True),
    DemoPerson("gus", "Gus Lindqvist", "platform"),
    DemoPerson("hana", "Hana Sato", "platform"),
    DemoPerson("ivan", "Ivan Petrov", "platform"),
    DemoPerson("jo", "Jo Mbeki", "platform"),
    DemoPerson("kai", "Kai Nakamura", "mobile", lead=True),
    DemoPerson("lena", "Lena Fischer", "mobile"),
    DemoPerson("mo", "Mo Rahman", "mobile"),
    DemoPerson("nina", "Nina Rossi", "mobile"),
    DemoPerson("omar", "Omar Haddad", "mobile"),
]
BOT = UserRecord(provider="github", login="dependabot[bot]", external_id="49699333", name="dependabot", is_bot=True)

TEAMS = {
    "payments": ("Payments", 8, 300),
    "platform": ("Platform", 24, 400),
    "mobile": ("Mobile", 24, 500),
}


@dataclass(frozen=True)
class DemoRepository:
    provider: str
    external_id: str
    full_path: str
    team: str
    pulls: int
    dirs: tuple[str, ...]


REPOSITORIES = [
    DemoRepository("github", "710001", "acme/payments-api", "payments", 420, ("payments/", "ledger/", "api/", "docs/")),
    DemoRepository(
        "github", "710002", "acme/platform", "platform", 380, ("services/auth/", "services/billing/", "deploy/")
    ),
    DemoRepository("github", "710003", "acme/web", "platform", 300, ("src/components/", "src/pages/", "tests/")),
    DemoRepository("gitlab", "4200101", "acme/mobile-app", "mobile", 320, ("ios/", "android/", "shared/")),
    DemoRepository("gitlab", "4200102", "acme/infra", "platform", 180, ("terraform/", "helm/", "scripts/")),
]


@dataclass(frozen=True)
class TeamHabits:
    """How a team works, as probabilities and hours, so the figures differ from team to team."""

    pickup_hours: tuple[float, float]
    approvals: tuple[int, ...]
    rubber_stamp: float
    unreviewed: float
    pairing: float
    changes_requested: float


HABITS = {
    "payments": TeamHabits((0.5, 10), (2, 2, 1), 0.05, 0.01, 0.10, 0.30),
    "platform": TeamHabits((1, 20), (1, 1, 2), 0.15, 0.04, 0.35, 0.15),
    "mobile": TeamHabits((2, 40), (1,), 0.40, 0.10, 0.05, 0.10),
}


def _sha(*parts: object) -> str:
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()  # noqa: S324 - ids, not security


def demo_anchor() -> dt.datetime:
    """Today at midnight UTC: the demo's history ends here, so two runs on one day write identical rows."""
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)


def seed_review_demo(
    *, anchor: dt.datetime, rng: random.Random, progress: Callable[[str], None], scale: float = 1.0
) -> int:
    """Write (or rewrite, idempotently) the review side of the demo. Returns how many pull requests it wrote.

    `scale` shrinks the number of pull requests per repository (tests use a small demo).
    """
    github = connection_upsert(
        provider="github", name="GitHub (demo)", base_url="https://api.github.com", web_url="https://github.com"
    )
    gitlab = connection_upsert(
        provider="gitlab", name="GitLab (demo)", base_url="https://gitlab.com", web_url="https://gitlab.com"
    )
    connections = {"github": github, "gitlab": gitlab}
    people = DemoPeople(connections)
    teams = _seed_teams(people)
    written = 0
    for full_size in REPOSITORIES:
        demo_repo = DemoRepository(**{**full_size.__dict__, "pulls": max(5, round(full_size.pulls * scale))})
        progress(f"{demo_repo.full_path}: {demo_repo.pulls} pull requests")
        with transaction.atomic():
            repository = _seed_repository(connections[demo_repo.provider], demo_repo, teams)
            written += _seed_pull_requests(repository, demo_repo, anchor, random.Random(rng.random()), people)
    with transaction.atomic():
        _seed_pairing(anchor, random.Random(rng.random()))
    progress("review policies and their verdicts over the last 30 days")
    _seed_policies(teams)
    _seed_evaluations(anchor)
    return written


def account(person: DemoPerson, provider: str) -> UserRecord:
    # Logins differ a little between providers, as they do in real organisations.
    login = person.login if provider == "github" else f"{person.login}.{person.name.split()[-1].lower()}"
    external = int(hashlib.sha1(f"{provider}{person.login}".encode()).hexdigest()[:7], 16)  # noqa: S324
    return UserRecord(provider=provider, login=login, external_id=str(external), name=person.name, email=person.email)  # type: ignore[arg-type]


def _seed_teams(people: DemoPeople) -> dict[str, Team]:
    teams = {
        slug: team_upsert(slug=slug, name=name, review_within_hours=hours, max_pr_size=size)
        for slug, (name, hours, size) in TEAMS.items()
    }
    for demo_person in PEOPLE:
        person = people.person("github", account(demo_person, "github"))
        if person is None:
            raise RuntimeError(f"demo person {demo_person.login} did not resolve")
        people.person("gitlab", account(demo_person, "gitlab"))
        role = Membership.Role.LEAD if demo_person.lead else Membership.Role.MEMBER
        membership_set(team=teams[demo_person.team], person=person, role=role)
    return teams


def _seed_repository(connection: Connection, demo_repo: DemoRepository, teams: dict[str, Team]) -> Repository:
    web = "https://github.com" if demo_repo.provider == "github" else "https://gitlab.com"
    repository = repository_upsert(
        connection=connection,
        record=RepositoryRecord(
            provider=demo_repo.provider,  # type: ignore[arg-type]
            external_id=demo_repo.external_id,
            full_path=demo_repo.full_path,
            default_branch="main",
            web_url=f"{web}/{demo_repo.full_path}",
        ),
    )
    if repository.team_id != teams[demo_repo.team].pk:
        repository.team = teams[demo_repo.team]
        repository.save(update_fields=["team"])
    return repository


def _seed_pull_requests(
    repository: Repository, demo_repo: DemoRepository, anchor: dt.datetime, rng: random.Random, people: DemoPeople
) -> int:
    members = [p for p in PEOPLE if p.team == demo_repo.team]
    others = [p for p in PEOPLE if p.team != demo_repo.team]
    habits = HABITS[demo_repo.team]
    stories = [
        _story(repository, demo_repo, number, anchor, rng, members, others, habits)
        for number in range(1, demo_repo.pulls + 1)
    ]
    initial = CommitRecord(
        sha=_sha(demo_repo.full_path, "initial"),
        message="Initial commit",
        author=GitUserRecord(name="Demo", email="demo@example.com"),
        authored_at=anchor - dt.timedelta(days=DAYS + 30),
        committed_at=anchor - dt.timedelta(days=DAYS + 30),
        parents=(),
    )
    DemoWriter(repository, people).write(stories, initial, _main_line_parents(stories, initial))
    return demo_repo.pulls


def _main_line_parents(stories: list[Story], initial: CommitRecord) -> dict[str, list[str]]:
    """The graph a clone would show: the merge commits on one main line in merge order, from an initial commit,
    and each pull request's first commit branched from the main line as it stood when it was written. Returns the
    parents of the commits this places."""
    parents: dict[str, list[str]] = {initial.sha: []}
    main_line = [(initial.authored_at, initial.sha)]
    merged = [story for story in stories if story.merge is not None]
    for story in sorted(merged, key=lambda story: (story.record.merged_at, story.record.number)):
        first, merge = story.commits[0], story.merge
        assert merge is not None and merge.authored_at is not None  # noqa: S101 - filtered above
        parents[first.sha] = [[sha for at, sha in main_line if at <= first.authored_at][-1]]
        parents[merge.sha] = [main_line[-1][1], story.commits[-1].sha]
        main_line.append((merge.authored_at, merge.sha))
    return parents


def _story(  # noqa: PLR0913 - one story per pull request, told in order
    repository: Repository,
    demo_repo: DemoRepository,
    number: int,
    anchor: dt.datetime,
    rng: random.Random,
    members: list[DemoPerson],
    others: list[DemoPerson],
    habits: TeamHabits,
) -> Story:
    """One pull request as the VCS would list it, with its files, commits, reviews and comments (no writes)."""
    provider = demo_repo.provider
    is_bot = provider == "github" and rng.random() < 0.06
    author = rng.choice(members)
    author_account = BOT if is_bot else account(author, provider)
    # Spread creation over the period, newer numbers later; the last few are still open.
    created = anchor - dt.timedelta(days=DAYS) + dt.timedelta(days=DAYS * number / (demo_repo.pulls + 1))
    created += dt.timedelta(minutes=rng.randint(0, 600))
    first_commit = created - dt.timedelta(hours=rng.uniform(0.5, 72))
    size = int(rng.lognormvariate(4.2, 1.1)) + 1
    additions = max(1, int(size * rng.uniform(0.5, 0.9)))
    deletions = size - additions
    is_draft_first = rng.random() < 0.2
    ready = created + dt.timedelta(hours=rng.uniform(1, 30)) if is_draft_first else created
    head_ref = f"{author.login}/change-{number}"
    head_sha = _sha(demo_repo.full_path, number, "head")

    partner = rng.choice([m for m in members if m != author]) if rng.random() < habits.pairing else None
    commits = _commits(demo_repo, number, author, partner, first_commit, ready, rng, provider)

    reviews: list[ReviewRecord] = []
    comments: list[CommentRecord] = []
    cursor = ready + dt.timedelta(hours=rng.uniform(*habits.pickup_hours))
    unreviewed = rng.random() < habits.unreviewed or (partner is not None and rng.random() < 0.5)
    if not unreviewed and not is_bot:
        reviewers = rng.sample([m for m in members if m != author] + others[:1], k=min(3, len(members)))
        needed = rng.choice(habits.approvals)
        if rng.random() < habits.changes_requested:
            reviewer = reviewers[0]
            reviews.append(
                _review(provider, number, len(reviews), reviewer, "changes_requested", cursor, head_sha, rng)
            )
            comments += _comments(provider, number, reviewer, cursor, rng, at_least=1)
            cursor += dt.timedelta(hours=rng.uniform(1, 20))
        stamp = rng.random() < habits.rubber_stamp
        if stamp:
            # A last push, approved within minutes and without a word: what a rubber stamp looks like.
            commits.append(_fixup_commit(demo_repo, number, author, cursor, provider, parent=commits[-1].sha))
        for reviewer in reviewers[:needed]:
            if not stamp:
                comments += _comments(provider, number, reviewer, cursor, rng)
                cursor += dt.timedelta(minutes=rng.uniform(10, 180))
            else:
                cursor += dt.timedelta(minutes=rng.uniform(1, 4))
            review = _review(provider, number, len(reviews), reviewer, "approved", cursor, head_sha, rng)
            reviews.append(ReviewRecord(**{**review.__dict__, "body": ""}) if stamp else review)
    elif is_bot:
        reviewer = rng.choice(members)
        cursor = ready + dt.timedelta(hours=rng.uniform(1, 48))
        reviews.append(_review(provider, number, 0, reviewer, "approved", cursor, head_sha, rng))

    age_days = (anchor - created).total_seconds() / 86400
    state = "merged"
    merged_at: dt.datetime | None = cursor + dt.timedelta(hours=rng.uniform(0.1, 12))
    closed_at: dt.datetime | None = None
    requested: tuple[UserRecord, ...] | None = None
    if age_days < 6 and rng.random() < 0.6:
        state, merged_at = "open", None
        reviews = [r for r in reviews if r.submitted_at < anchor]
        comments = [c for c in comments if c.created_at < anchor]
        if not reviews:
            waiting_on = rng.sample([m for m in members if m != author], k=rng.randint(1, 2))
            requested = tuple(account(person, provider) for person in waiting_on)
    elif rng.random() < 0.07:
        state, merged_at, closed_at = "closed", None, cursor + dt.timedelta(hours=rng.uniform(1, 48))
    if merged_at and merged_at > anchor:
        merged_at = anchor - dt.timedelta(minutes=rng.randint(5, 120))
    closed_at = merged_at or closed_at
    merge_sha = _sha(demo_repo.full_path, number, "merge") if state == "merged" else ""
    updated = max([created, ready, *(r.submitted_at for r in reviews), *(c.created_at for c in comments)])
    updated = max(updated, closed_at) if closed_at else updated

    record = PullRequestRecord(
        repository=RepositoryRecord(
            provider=provider,  # type: ignore[arg-type]
            external_id=demo_repo.external_id,
            full_path=demo_repo.full_path,
        ),
        number=number,
        external_id=str(int(demo_repo.external_id) * 10000 + number),
        title=_title(rng, demo_repo, is_bot),
        body="Demo change generated by seed_demo.",
        author=author_account,
        state=state,  # type: ignore[arg-type]
        draft=False,
        base_ref="main",
        head_ref=head_ref,
        head_sha=head_sha,
        merge_commit_sha=merge_sha,
        additions=additions,
        deletions=deletions,
        changed_files=0,
        labels=("dependencies",) if is_bot else tuple(rng.sample(["bug", "feature", "refactor", "chore"], k=1)),
        web_url=f"{repository.web_url}/{'pull' if provider == 'github' else '-/merge_requests'}/{number}",
        created_at=created,
        updated_at=updated,
        ready_at=ready,
        pushed_at=commits[-1].authored_at,
        merged_at=merged_at,
        closed_at=closed_at,
        merged_by=author_account if state == "merged" and rng.random() < 0.7 else None,
        requested_reviewers=requested,
    )
    files = _files(demo_repo, number, additions, deletions, rng)
    record = PullRequestRecord(**{**record.__dict__, "changed_files": len(files)})
    merge = None
    if merge_sha:
        merge = CommitRecord(
            sha=merge_sha,
            message=f"Merge pull request #{number} from {head_ref}",
            author=GitUserRecord(name=author.name, email=author.email),
            authored_at=merged_at,  # type: ignore[arg-type]
            committed_at=merged_at,
            parents=(_sha(demo_repo.full_path, number - 1, "merge"), commits[-1].sha),
        )
    return Story(record, files, commits, merge, reviews, comments)


def _commits(
    demo_repo: DemoRepository,
    number: int,
    author: DemoPerson,
    partner: DemoPerson | None,
    start: dt.datetime,
    end: dt.datetime,
    rng: random.Random,
    provider: str,
) -> list[CommitRecord]:
    count = rng.randint(1, 5)
    span = max((end - start).total_seconds(), 600)
    commits: list[CommitRecord] = []
    for index in range(count):
        message = (
            f"{rng.choice(['Add', 'Fix', 'Refactor', 'Test', 'Tidy'])} {rng.choice(demo_repo.dirs)} step {index + 1}"
        )
        if partner is not None:
            message += f"\n\nPaired on this.\n\nCo-authored-by: {partner.name} <{partner.email}>"
        authored = start + dt.timedelta(seconds=span * index / count)
        # Branched from the main line the merge commit follows, as the VCS would list them.
        parent = commits[-1].sha if commits else _sha(demo_repo.full_path, number - 1, "merge")
        commits.append(
            CommitRecord(
                sha=_sha(demo_repo.full_path, number, "commit", index),
                message=message,
                author=GitUserRecord(name=author.name, email=author.email),
                authored_at=authored,
                committed_at=authored,
                parents=(parent,),
                author_account=account(author, provider),
                co_authors=co_authors(message),
            )
        )
    return commits


def _fixup_commit(
    demo_repo: DemoRepository, number: int, author: DemoPerson, at: dt.datetime, provider: str, *, parent: str
) -> CommitRecord:
    return CommitRecord(
        sha=_sha(demo_repo.full_path, number, "fixup"),
        message="Address review comments",
        author=GitUserRecord(name=author.name, email=author.email),
        authored_at=at,
        committed_at=at,
        parents=(parent,),
        author_account=account(author, provider),
    )


def _review(
    provider: str,
    number: int,
    index: int,
    reviewer: DemoPerson,
    state: str,
    at: dt.datetime,
    sha: str,
    rng: random.Random,
) -> ReviewRecord:
    external = f"approval:{account(reviewer, provider).external_id}" if provider == "gitlab" else f"{number}{index:03d}"
    return ReviewRecord(
        external_id=external,
        reviewer=account(reviewer, provider),
        state=state,  # type: ignore[arg-type]
        submitted_at=at,
        commit_sha=sha,
        body="" if state == "approved" and rng.random() < 0.6 else "Left a few notes.",
    )


def _comments(
    provider: str, number: int, reviewer: DemoPerson, at: dt.datetime, rng: random.Random, at_least: int = 0
) -> list[CommentRecord]:
    count = max(at_least, rng.choice([0, 0, 1, 2, 3]))
    return [
        CommentRecord(
            external_id=f"{number}-{reviewer.login}-{at.timestamp():.0f}-{index}",
            author=account(reviewer, provider),
            body=rng.choice(["Could this be simpler?", "Nit: naming.", "What happens on retry?", "Nice."]),
            created_at=at + dt.timedelta(minutes=index),
            kind="diff" if index % 2 == 0 else "conversation",
        )
        for index in range(count)
    ]


def _files(
    demo_repo: DemoRepository, number: int, additions: int, deletions: int, rng: random.Random
) -> list[ChangedFileRecord]:
    count = max(1, min(12, (additions + deletions) // 40 + 1))
    files = []
    for index in range(count):
        directory = rng.choice(demo_repo.dirs)
        files.append(
            ChangedFileRecord(
                path=f"{directory}module_{(number * 7 + index) % 23}.py",
                additions=additions // count + (additions % count if index == 0 else 0),
                deletions=deletions // count + (deletions % count if index == 0 else 0),
            )
        )
    unique = {f.path: f for f in files}
    return list(unique.values())


def _title(rng: random.Random, demo_repo: DemoRepository, is_bot: bool) -> str:
    if is_bot:
        package = rng.choice(["requests", "django", "lodash", "react"])
        return f"Bump {package} from 1.{rng.randint(0, 9)} to 1.{rng.randint(10, 20)}"
    verb = rng.choice(["Add", "Fix", "Speed up", "Simplify", "Document", "Harden", "Remove"])
    what = rng.choice(["retry logic", "currency rounding", "login flow", "cache keys", "error pages", "metrics"])
    return f"{verb} {what} in {rng.choice(demo_repo.dirs).rstrip('/')}"


def _seed_pairing(anchor: dt.datetime, rng: random.Random) -> None:
    """A few pairing sessions started from the API (the rest of the pairing shows in co-author trailers)."""
    github = Connection.objects.get(provider="github", base_url="https://api.github.com")
    for index in range(24):
        team = rng.choice(list(TEAMS))
        pair = rng.sample([p for p in PEOPLE if p.team == team], k=2)
        start = anchor - dt.timedelta(days=rng.uniform(1, DAYS - 1), hours=rng.uniform(0, 6))
        people = [person_from_account(connection=github, account=account(p, "github")) for p in pair]
        pairing_session_record(
            source=PairingSession.Source.API,
            external_id=f"demo-session-{index}",
            participants=[(people[0], PairingParticipant.Role.DRIVER), (people[1], PairingParticipant.Role.NAVIGATOR)],  # type: ignore[list-item]
            started_at=start,
            ended_at=start + dt.timedelta(minutes=rng.randint(45, 240)),
            branch=f"{pair[0].login}/pairing-{index}",
        )


PAYMENTS_POLICY = """\
# Payments: money moves here, so two reviewers, one of them a code owner.
rules:
  - name: payments and ledger need two reviewers, one a code owner
    if: {paths: ["payments/**", "ledger/**"]}
    require: {approvals: 2, code_owners: true}
  - name: everything else needs one reviewer
    if: {not_paths: ["payments/**", "ledger/**"]}
    require: {approvals: 1}
risk:
  incident_window_days: 14
  extra_approvals: 1
override:
  allowed: [team-leads]
  followup_review_hours: 48
"""
PLATFORM_POLICY = """\
# Platform pairs a lot: a pairing partner counts as a reviewer, except on authentication code.
rules:
  - name: one reviewer, or a pairing partner
    require: {approvals: 1}
    options: {pairing_credit: 1}
  - name: auth needs a fresh pair of eyes
    if: {paths: ["services/auth/**"]}
    require: {approvals: 1}
    options: {pairing_credit: 1, require_independent_review: true}
"""
CODEOWNERS = {
    "acme/payments-api": "payments/ @ada @bruno\nledger/ @chen @ada\ndocs/ @dana\n",
    "acme/platform": "services/auth/ @farah @gus\n",
}


def _seed_policies(teams: dict[str, Team]) -> None:
    from reviews.services.policies import policy_save

    for path, codeowners in CODEOWNERS.items():
        Repository.objects.filter(full_path=path, connection__name__endswith="(demo)").update(codeowners=codeowners)
    for slug, document in (("payments", PAYMENTS_POLICY), ("platform", PLATFORM_POLICY)):
        existing = Policy.objects.filter(team=teams[slug]).first()
        if existing is None or existing.document != document:
            policy_save(team=teams[slug], document=document)


def _seed_evaluations(anchor: dt.datetime) -> None:
    """Verdicts as if Tandem had been watching for the last 30 days: each pull request judged just before its
    merge (so unsatisfied merges become violations) and as it stands now. A pull request judged before is left
    alone, so running the demo twice adds nothing."""
    from reviews.selectors.policy import effective_policy
    from reviews.services.policies import pull_request_evaluate

    recent = list(
        PullRequest.objects.filter(
            repository__connection__name__endswith="(demo)",
            created_at__gte=anchor - dt.timedelta(days=30),
            evaluations__isnull=True,
        )
        .exclude(author__is_bot=True)
        .exclude(state=PullRequest.State.CLOSED)
        .values_list("pk", "repository_id", "merged_at")
    )
    # Each repository's policy is read once, not once per evaluation: nothing changes it while the seed evaluates.
    repositories = Repository.objects.filter(pk__in={repository_id for _, repository_id, _ in recent})
    policies = {repository.pk: effective_policy(repository=repository) for repository in repositories}
    # A transaction per batch, not per pull request: each evaluation still runs whole through the service.
    for start in range(0, len(recent), EVALUATION_BATCH):
        with transaction.atomic():
            for pk, repository_id, merged_at in recent[start : start + EVALUATION_BATCH]:
                policy = policies[repository_id]
                if merged_at is not None:
                    pull_request_evaluate(pull_request_id=pk, now=merged_at - dt.timedelta(minutes=1), policy=policy)
                pull_request_evaluate(pull_request_id=pk, now=merged_at or anchor, policy=policy)


def demo_pull_requests_count() -> int:
    return PullRequest.objects.filter(repository__external_id__in=[r.external_id for r in REPOSITORIES]).count()


def demo_figures_store(batch: int = 500) -> int:
    """Compute and store the stored review figures of every merged pull request of the demo, once the seed's writes
    (telemetry's too) are committed, so that no page computes them on its first read.

    Each write of the seed stamped its pull requests' inputs as changed, as every write does: for `SETTLE` after a
    stamp, stored figures are not trusted (a computation that began before the write committed may have missed it),
    and every read would compute them again. Here every write has committed, so the stamps are cleared and the
    figures of all the demo's merged pull requests computed (again, if a page read some during the seed), by the
    function the reconciler and `compute_pull_request_figures` use."""
    from reviews.selectors.health import bot_ids
    from reviews.services.figures import figures_input_version, pull_request_figures_store

    demo = PullRequest.objects.filter(repository__external_id__in=[r.external_id for r in REPOSITORIES])
    demo.exclude(figures_inputs_changed_at=None).update(figures_inputs_changed_at=None)
    bots = bot_ids()
    version = figures_input_version(bots=bots)
    merged = demo.filter(state=PullRequest.State.MERGED, merged_at__isnull=False).select_related(
        "repository__connection"
    )
    ids = list(merged.order_by("pk").values_list("pk", flat=True))
    stored = 0
    for start in range(0, len(ids), batch):
        chunk = list(merged.filter(pk__in=ids[start : start + batch]).order_by("pk"))
        stored += pull_request_figures_store(pull_requests=chunk, bots=bots, version=version)
    return stored
