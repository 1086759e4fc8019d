"""Time and query count of knowledge per area (the bus factor, issue 18) on the org_year history.

    DEBUG=true DATABASE_URL=postgres://.../tandem_bench .venv/bin/python bench/knowledge.py [--days 30 90] [--rounds 3]

For every team: `team_knowledge` over the last `--days` days (directories at depth 2, CODEOWNERS, services), as the
team page (30 days) and the API (90 days by default) ask it; prints p50/max of the time, the query counts, and how
many areas there are and how many are known by one person.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from org_year import build_org_year  # noqa: E402, F401 - sets Django up

from reviews.models import PullRequest, Team  # noqa: E402
from reviews.selectors.knowledge import team_knowledge  # noqa: E402
from reviews.selectors.scope import Scope, parse_period  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, nargs="+", default=[30, 90])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"history: {PullRequest.objects.count()} pull requests")
    teams = list(Team.objects.order_by("slug"))
    for days in args.days:
        period = parse_period(_Params(days=str(days)))
        times: list[float] = []
        queries: set[int] = set()
        areas: list[int] = []
        lonely: list[int] = []
        for _ in range(args.rounds):
            for team in teams:
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    knowledge = team_knowledge(scope=Scope(team, period))
                    times.append(time.perf_counter() - started)
                queries.add(len(captured.captured_queries))
                areas.append(len(knowledge.areas))
                lonely.append(len(knowledge.lonely))
        times.sort()
        print(
            f"{days} days, {len(times)} runs over {len(teams)} teams: p50 {statistics.median(times) * 1000:.0f} ms"
            f"  max {times[-1] * 1000:.0f} ms  queries {sorted(queries)}  areas median {statistics.median(areas):.0f}"
            f" (known by one: median {statistics.median(lonely):.0f}, max {max(lonely)})"
        )


class _Params(dict[str, str]):
    def getlist(self, key: str) -> list[str]:
        return [self[key]] if key in self else []


if __name__ == "__main__":
    main()
