"""Instructions per GitHub call in the worker's process, counted by callgrind: no noise.

The fake GitHub runs over TLS in a process of its own (so its work is not counted); a client process imports Tandem
from `--root` (a checkout: this one, or a base worktree for an A/B), and under `valgrind --tool=callgrind` makes
`count` rounds of a verdict pass's calls: a new `GitHubClient` (as each pass opens one), `GET` the repository and
`POST` a commit status, then closes it. A call's cost is the difference between two counts divided by the difference
of calls, so start-up, the TLS handshake and the warm-up cancel out.

    .venv/bin/python bench/github_call_callgrind.py [--root DIR] [--rounds 20,60]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WARM = 10

_SERVER = f"""
import sys
sys.path.insert(0, {str(HERE.parent)!r}); sys.path.insert(0, {str(HERE)!r})
import os
from faults import serve_over_tls
from tests.fakes.github import FakeGitHub
fake = FakeGitHub()
serve_over_tls(fake)
fake.add_repo("octocat/Hello-World")
fake.start()
print(fake.url, os.environ["REQUESTS_CA_BUNDLE"], fake.token, flush=True)
sys.stdin.read()
"""

_CLIENT = f"""
import os, sys
root, url, token, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, root)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from reviews.integrations.github_api import GitHubClient
def one_round():
    client = GitHubClient(url, token, seconds_between_writes=None)
    try:
        client.repository("octocat/Hello-World")
        client.post_status("octocat/Hello-World", "0" * 40, state="success", description="ok", target_url="")
    finally:
        client.close()
for _ in range({WARM}):
    one_round()
for _ in range(rounds):
    one_round()
"""

CALLS_PER_ROUND = 2


def counted(root: Path, url: str, token: str, rounds: int, env: dict[str, str], out_file: Path) -> int:
    subprocess.run(  # noqa: S603
        ["/usr/bin/valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable, "-c", _CLIENT,
         str(root), url, token, str(rounds)],
        check=True, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    found = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no totals in {out_file}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE.parent, help="the checkout whose Tandem is measured")
    parser.add_argument("--rounds", default="20,60", help="two round counts, e.g. 20,60")
    args = parser.parse_args()
    low, high = (int(value) for value in args.rounds.split(","))
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE.parent
    )
    try:
        assert server.stdout is not None
        url, bundle, token = server.stdout.readline().split()
        env = {**os.environ, "REQUESTS_CA_BUNDLE": bundle, "DEBUG": os.environ.get("DEBUG", "true")}
        with tempfile.TemporaryDirectory() as where:
            small = counted(args.root.resolve(), url, token, low, env, Path(where) / "low")
            large = counted(args.root.resolve(), url, token, high, env, Path(where) / "high")
    finally:
        server.kill()
        server.wait()
    per_call = (large - small) / ((high - low) * CALLS_PER_ROUND)
    print(f"{args.root.resolve()}: {per_call / 1e6:.3f} M instructions per GitHub call over TLS (callgrind; "
          f"{low} and {high} rounds of a new client, GET repository, POST status, after {WARM})")  # fmt: skip


if __name__ == "__main__":
    main()
