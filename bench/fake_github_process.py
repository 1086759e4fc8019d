"""The project's fake GitHub served by a process of its own, for benchmarks that time Tandem against it.

In the bench's process, the fake shared one GIL with the senders that time the webhooks and with the code reading
the statuses' arrival times; a backfill's GraphQL pages, rendered by the fake, then delayed the fast path's status
posts as seen by the bench (bench/README.md, `backfill_latency.py`). Here the fake (tests/fakes/github.py, unchanged)
runs in a `multiprocessing` manager's server process on 127.0.0.1, and the bench drives it through a proxy: the same
seeding calls, and the statuses posted with their arrival times (`time.monotonic()`, one clock for every process of
the machine) read back as lists.

    fake = FakeGitHubProcess(rate_limit=10**9).start()
    fake.seed_repository("acme/monolith", n_pulls=10_000)
    ...  # fake.url, fake.token, fake.statuses_posted, fake.status_arrivals as on FakeGitHub
    fake.stop()
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.github import JSON, FakeGitHub  # noqa: E402


class ServedFakeGitHub(FakeGitHub):
    """The fake with what a proxy cannot read otherwise (attributes): its addresses and its recorded statuses."""

    def serve(self) -> None:
        self.start()  # which answers the fake itself: not for sending back

    def addresses(self) -> tuple[str, str, str]:
        return self.url, self.web_url, self.token

    def statuses(self) -> list[JSON]:
        return list(self.statuses_posted)

    def arrivals(self) -> list[float]:
        return list(self.status_arrivals)


class _Manager(BaseManager):
    pass


_Manager.register("FakeGitHub", ServedFakeGitHub)


class FakeGitHubProcess:
    """FakeGitHub's interface for a bench, the fake itself in another process (`pid`: for its CPU time)."""

    def __init__(self, **options: Any) -> None:
        # spawn: a fresh interpreter, nothing of the bench's threads or connections inherited.
        self._manager = _Manager(ctx=multiprocessing.get_context("spawn"))
        self._manager.start()
        self._remote: Any = self._manager.FakeGitHub(**options)  # type: ignore[attr-defined]
        self.url, self.web_url, self.token = self._remote.addresses()
        self.pid = int(self._manager._process.pid)  # type: ignore[attr-defined]

    def start(self) -> FakeGitHubProcess:
        self._remote.serve()
        return self

    def stop(self) -> None:
        try:
            self._remote.stop()
        finally:
            self._manager.shutdown()

    @property
    def statuses_posted(self) -> list[JSON]:
        return list(self._remote.statuses())

    @property
    def status_arrivals(self) -> list[float]:
        return list(self._remote.arrivals())

    def __getattr__(self, name: str) -> Any:
        """Every other call (add_repo, add_pull, seed_repository, …) is the fake's own, made through the proxy."""
        return getattr(self._remote, name)
