"""Reviewer suggestions measured on history (bench/org_year.py's year), and the cost of one suggestion.

    DEBUG=true DATABASE_URL=postgres://... .venv/bin/python bench/reviewers.py [--build 10000] [--replay-limit N]

1. One suggestion: the time and query count of `reviewer_suggestions_compute` for an open pull request of the
   biggest repository (run it on a 10k and a 100k history: the query count must not change).
2. Replay: the pull requests in time order; for each, the reviewers actually chosen against Tandem's suggestion
   (as many as were actually chosen, at least one), each world keeping its own history, so suggestions see the
   familiarity and load their own earlier choices made. The ranking is the service's own (`Candidate`, `_pick`);
   familiarity and load are counted in memory from that world's history (the same definitions: authored or
   reviewed in the area within 90 days, decaying with a half-life of 30 days; reviews in the last 7 days).
   Printed for both: the Gini coefficient of reviews per person (over the organisation, and within each team —
   the balance suggestions can change — averaged), the share of changes reviewed by someone familiar
   with their areas, and the number of files known by only one person at the end of the period.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections import defaultdict, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from reviews.models import ChangedFile, Membership, Person, PullRequest, Repository, Review, ReviewerSuggestion  # noqa: E402
from reviews.selectors.familiarity import FAMILIARITY_WINDOW, AreaWork, decay, directory_area  # noqa: E402
from reviews.services.reviewers import LOAD_WEEK, Candidate, _pick, reviewer_suggestions_compute  # noqa: E402


def one_suggestion() -> None:
    repository = max(Repository.objects.all(), key=lambda r: r.pull_requests.count())
    pull_request = (
        PullRequest.objects.select_related("repository__connection", "repository__team")
        .filter(repository=repository, state=PullRequest.State.OPEN, author__isnull=False)
        .order_by("-created_at")
        .first()
    ) or PullRequest.objects.select_related("repository__connection").filter(repository=repository).latest("created_at")
    history = PullRequest.objects.count()
    timings = []
    for _ in range(3):
        ReviewerSuggestion.objects.filter(pull_request=pull_request).delete()
        pull_request.state = PullRequest.State.OPEN  # measured as if open (no write)
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            row = reviewer_suggestions_compute(pull_request=pull_request)
        timings.append(time.perf_counter() - started)
    print(f"history: {history:,} pull requests; one suggestion for {pull_request} ({repository.full_path})")
    print(f"  time: best {min(timings) * 1000:.0f} ms of 3, queries: {len(captured)}")
    for item in (row.suggestions if row else [])[:3]:
        print(f"  - {item['name']} ({item['kind']}): {'; '.join(item['reasons'])}")


class World:
    """One history of who reviewed what: familiarity events per (repository, area, person), reviews per person."""

    def __init__(self) -> None:
        self.events: dict[tuple[int, str], dict[int, deque[dt.datetime]]] = defaultdict(lambda: defaultdict(deque))
        self.reviews: dict[int, deque[dt.datetime]] = defaultdict(deque)
        self.review_count: dict[int, int] = defaultdict(int)
        self.file_people: dict[tuple[int, str], set[int]] = defaultdict(set)
        self.familiar_reviews = 0
        self.changes = 0

    def work(self, repository_id: int, areas: list[str], person_id: int, now: dt.datetime) -> dict[str, AreaWork]:
        found = {}
        for area in areas:
            moments = self.events[(repository_id, area)].get(person_id)
            if not moments:
                continue
            while moments and moments[0] < now - FAMILIARITY_WINDOW:
                moments.popleft()
            if moments:
                work = AreaWork()
                work.changes["authored"] = len(moments)
                work.weight = sum(decay(now - moment) for moment in moments)
                found[area] = work
        return found

    def load(self, person_id: int, now: dt.datetime) -> int:
        moments = self.reviews[person_id]
        while moments and moments[0] < now - LOAD_WEEK:
            moments.popleft()
        return len(moments)

    def record(self, change: dict, reviewers: list[int]) -> None:
        now, repository_id = change["at"], change["repository"]
        self.changes += 1
        if any(self.work(repository_id, change["areas"], person, now) for person in reviewers):
            self.familiar_reviews += 1
        for person in [change["author"], *reviewers]:
            for area in change["areas"]:
                self.events[(repository_id, area)][person].append(now)
            for path in change["paths"]:
                self.file_people[(repository_id, path)].add(person)
        for person in reviewers:
            self.reviews[person].append(now)
            self.review_count[person] += 1


def gini(values: list[int]) -> float:
    ordered = sorted(values)
    total = sum(ordered)
    if not ordered or total == 0:
        return 0.0
    weighted = sum((index + 1) * value for index, value in enumerate(ordered))
    return (2 * weighted) / (len(ordered) * total) - (len(ordered) + 1) / len(ordered)


def replay(limit: int | None) -> None:
    bots = set(Person.objects.filter(is_bot=True).values_list("pk", flat=True))
    names = dict(Person.objects.values_list("pk", "display_name"))
    team_of = dict(Repository.objects.values_list("pk", "team_id"))
    members: dict[int, list[int]] = defaultdict(list)
    for team_id, person_id in Membership.objects.values_list("team_id", "person_id").order_by("person_id"):
        if person_id not in bots:
            members[team_id].append(person_id)
    pulls = PullRequest.objects.filter(author__isnull=False).order_by("created_at", "pk")
    if limit:
        pulls = pulls[:limit]
    changes = {
        pk: {"repository": repo, "author": author, "at": at, "paths": [], "areas": [], "reviewers": []}
        for pk, repo, author, at in pulls.values_list("pk", "repository_id", "author_id", "created_at")
    }
    files = ChangedFile.objects.filter(pull_request_id__in=list(changes))
    for pk, path in files.values_list("pull_request_id", "path"):
        changes[pk]["paths"].append(path)
    for pk, reviewer in (
        Review.objects.filter(pull_request_id__in=list(changes), reviewer__isnull=False)
        .order_by("submitted_at")
        .values_list("pull_request_id", "reviewer_id")
    ):
        change = changes[pk]
        if reviewer not in bots and reviewer != change["author"] and reviewer not in change["reviewers"]:
            change["reviewers"].append(reviewer)
    actual, suggested = World(), World()
    started = time.perf_counter()
    for change in changes.values():
        change["areas"] = sorted({directory_area(path) for path in change["paths"]})
        actual.record(change, change["reviewers"])
        wanted = max(len(change["reviewers"]), 1)
        candidates = []
        for person in members.get(team_of[change["repository"]], []):
            if person == change["author"]:
                continue
            candidate = Candidate(person, names[person])
            candidate.work = suggested.work(change["repository"], change["areas"], person, change["at"])
            candidate.reviews_this_week = suggested.load(person, change["at"])
            candidates.append(candidate)
        picks = [suggestion.person_id for suggestion in _pick(candidates, ())][:wanted]
        suggested.record(change, picks)
    elapsed = time.perf_counter() - started
    people = sorted({p for team in members.values() for p in team})
    print(f"replay: {len(changes):,} pull requests in time order ({elapsed:.1f} s in memory)")
    print(f"{'':38}{'actual':>10}{'suggested':>12}")
    print(
        f"{'Gini of reviews per person, org':38}{gini([actual.review_count[p] for p in people]):>10.3f}"
        f"{gini([suggested.review_count[p] for p in people]):>12.3f}"
    )
    # Suggestions choose within a team, so balance within each team is what they can change; the organisation's
    # figure also carries how busy each team is.
    within = [
        (gini([actual.review_count[p] for p in team]), gini([suggested.review_count[p] for p in team]))
        for team in members.values()
        if len(team) > 1
    ]
    print(
        f"{'Gini of reviews per person, per team':38}{sum(a for a, _ in within) / len(within):>10.3f}"
        f"{sum(b for _, b in within) / len(within):>12.3f}  (mean of {len(within)} teams)"
    )
    share = (actual.familiar_reviews / max(actual.changes, 1), suggested.familiar_reviews / max(suggested.changes, 1))
    print(f"{'reviewed by someone familiar':38}{share[0]:>10.1%}{share[1]:>12.1%}")
    lonely = (
        sum(1 for who in actual.file_people.values() if len(who) == 1),
        sum(1 for who in suggested.file_people.values() if len(who) == 1),
    )
    files_seen = len(actual.file_people)
    print(f"{'files known by one person at the end':38}{lonely[0]:>10,}{lonely[1]:>12,}  of {files_seen:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=int, default=0, help="build an org_year history of this many pull requests")
    parser.add_argument("--replay-limit", type=int, default=0, help="replay only the first N pull requests")
    parser.add_argument("--no-replay", action="store_true")
    args = parser.parse_args()
    if args.build:
        from org_year import build_org_year

        build_org_year(pulls=args.build, deployments=max(args.build // 10, 1))
    print(f"now: {timezone.now():%Y-%m-%d %H:%M} UTC")
    one_suggestion()
    if not args.no_replay:
        replay(args.replay_limit or None)


if __name__ == "__main__":
    main()
