"""Fixtures the HTTP pool's tests share (test_http_pool.py, test_http_direct.py). The fake GitHub here is
`github_with_repo`, not `github`: several modules under tests/reviews define a `github` fixture of their own (a
bare fake, an App's, a Connection row), which would shadow a shared one of that name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from urllib3.util import connection as urllib3_connection

from tests.fakes.github import FakeGitHub


@pytest.fixture
def github_with_repo() -> Iterator[FakeGitHub]:
    """The fake GitHub on 127.0.0.1, holding the repository octocat/Hello-World."""
    with FakeGitHub() as fake:
        fake.add_repo("octocat/Hello-World")
        yield fake


@pytest.fixture
def connections_opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection the HTTP clients open, by address."""
    opened: list[tuple[str, int]] = []
    create: Callable[..., Any] = urllib3_connection.create_connection

    def counted(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        opened.append(address)
        return create(address, *args, **kwargs)

    monkeypatch.setattr(urllib3_connection, "create_connection", counted)
    return opened
