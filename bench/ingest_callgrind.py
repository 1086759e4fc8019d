"""Instructions per webhook acknowledgement, Tandem's against the bare view's, counted by callgrind: no noise.

`ingest_cpu.py` times the same in-process requests in CPU seconds, which move by ±30% on a shared machine; the
instructions the Python process executes per request do not move with the load. Starts the private PostgreSQL and
Redis, then runs the WSGI app (`bench/ingest_wsgi.py`) under `valgrind --tool=callgrind` once per endpoint and count of
requests (after the same warm-up of both endpoints); a request's cost is the difference between two counts divided by
the difference of requests, so Django's start-up and the warm-up cancel out. PostgreSQL's own work is not counted
(`ingest.py` prints its CPU per acknowledgement).

    .venv/bin/python bench/ingest_callgrind.py [--requests 100,300] [--keep DIR]

With `--keep DIR` the callgrind files stay in DIR, for `callgrind_annotate` (the larger count's, per endpoint).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402
from ingest import stores_started  # noqa: E402

TANDEM, BARE = "/webhooks/github/", "/bench/bare/"
WARM = 50

_HARNESS = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
sys.path.insert(0, {str(faults.ROOT)!r})
import ingest_wsgi
from ingest_cpu import requester
post = requester(ingest_wsgi.application)
for path in ({TANDEM!r}, {BARE!r}):
    for _ in range({WARM}):
        status = post(path)
    assert status.startswith("202"), (path, status)
path, count = sys.argv[1], int(sys.argv[2])
for _ in range(count):
    status = post(path)
assert status.startswith("202"), (path, status)
"""


def instructions(out_file: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no totals in {out_file}")
    return int(found.group(1))


def counted(path: str, count: int, env: dict[str, str], out_file: Path) -> int:
    subprocess.run(  # noqa: S603
        ["/usr/bin/valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable, "-c", _HARNESS,
         path, str(count)],
        cwd=faults.ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return instructions(out_file)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", default="100,300", help="two counts of requests per endpoint")
    parser.add_argument("--keep", type=Path, help="a directory to keep the callgrind files in")
    args = parser.parse_args()
    low, high = (int(value) for value in args.requests.split(","))
    fake = faults.FakeGitHub(rate_limit=10**9).start()
    stack = faults.Stack(fake, keep=False)
    per_request: dict[str, float] = {}
    try:
        stores_started(stack)
        env = {**os.environ, **stack.env, "PYTHONHASHSEED": "0", "PYTHONPATH": str(faults.ROOT)}
        with tempfile.TemporaryDirectory() as scratch:
            where = args.keep or Path(scratch)
            where.mkdir(parents=True, exist_ok=True)
            for name, path in (("tandem", TANDEM), ("bare", BARE)):
                small = counted(path, low, env, where / f"callgrind.{name}.{low}")
                large = counted(path, high, env, where / f"callgrind.{name}.{high}")
                per_request[path] = (large - small) / (high - low)
                faults.log(f"{path}: {per_request[path]:,.0f} instructions per request")
    finally:
        stack.stop()
        fake.stop()
    tandem, bare = per_request[TANDEM], per_request[BARE]
    print()
    print(f"ingest instructions per request in-process (callgrind; {low} and {high} requests after {WARM} warm-up)")
    print(f"  Tandem {tandem / 1e6:8.3f} M")
    print(f"  bare   {bare / 1e6:8.3f} M")
    print(f"  bare / Tandem {bare / tandem:5.2f}; Tandem over bare {(tandem - bare) / 1e6:.3f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
