"""A failing network and a hostile server against PyGithub's calls sent directly over the process's pool
(reviews.integrations.http_pool, `_Direct`): each answer must give what PyGithub's own requests-based connection
gives against the same server, the same status and text or the same exception, and a body cut short must raise
(Tandem's client says unavailable, never a partial JSON that parses). Real servers on 127.0.0.1; PyGithub is not
mocked. No database."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from github import Auth, Github

from reviews.integrations import http_pool
from reviews.integrations.github_api import GitHubClient, GitHubUnavailable
from tests.fakes.raw_http import request_read

# What the server does with a request: the bytes it answers, then whether it closes the connection.
Script = Callable[[int], tuple[bytes, bool]]


@pytest.fixture(autouse=True)
def _fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(http_pool, "_adapter", None)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    http_pool._environ_proxies.cache_clear()
    http_pool._environ_proxy_for.cache_clear()
    yield
    http_pool._environ_proxies.cache_clear()
    http_pool._environ_proxy_for.cache_clear()


class ScriptedServer:
    """Reads each request (head and Content-Length body) and answers what `script(n)` says for the n-th request
    it received, counting from 0; `stall` seconds before answering, for a server that does not answer in time."""

    def __init__(self, script: Script, *, stall: float = 0.0) -> None:
        self.script, self.stall, self.received = script, stall, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as reader:
            while request_read(reader) is not None:
                number, self.received = self.received, self.received + 1
                time.sleep(self.stall)
                answer, close = self.script(number)
                connection.sendall(answer)
                if close:
                    connection.shutdown(socket.SHUT_RDWR)
                    return

    def close(self) -> None:
        self.listener.close()


def _answer(body: bytes, *, status: bytes = b"200 OK", headers: bytes = b"", length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json; charset=utf-8\r\n" + headers
        + b"Content-Length: " + str(length).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


OK = b'{"ok": true}'
CUT = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    + hex(len(OK))[2:].encode()
    + b"\r\n"
    + OK
    + b"\r\n"
)  # a whole JSON document in the first chunk, then no last chunk

CUT_SHORT: dict[str, Script] = {
    "content_length_longer_than_the_body": lambda _: (_answer(OK, length=len(OK) + 20), True),
    "chunked_without_its_last_chunk": lambda _: (CUT, True),
    "chunk_shorter_than_it_said": lambda _: (CUT.replace(b"\r\nc\r\n", b"\r\n20\r\n", 1), True),
    "gzip_body_cut_inside_its_chunk": lambda _: (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
        + gzip.compress(OK * 8)[:20],
        True,
    ),
    "garbage_for_a_status_line": lambda _: (b"HTTX/1.1 200 OK\r\n\r\n", True),
    "closed_without_an_answer": lambda _: (b"", True),
    "gzip_that_is_not": lambda _: (_answer(OK, headers=b"Content-Encoding: gzip\r\n"), False),
    "two_content_lengths": lambda _: (_answer(OK, headers=b"Content-Length: 5\r\n"), False),
}

ANSWERED: dict[str, Script] = {
    "gzip": lambda _: (_answer(gzip.compress(OK), headers=b"Content-Encoding: gzip\r\n"), False),
    "deflate": lambda _: (_answer(zlib.compress(OK), headers=b"Content-Encoding: deflate\r\n"), False),
    "not_modified": lambda _: (b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n', False),
    "moved_permanently_elsewhere": lambda _: (
        _answer(OK, status=b"301 Moved Permanently", headers=b"Location: http://127.0.0.1:9/elsewhere\r\n"),
        False,
    ),
    "found": lambda _: (_answer(OK, status=b"302 Found", headers=b"Location: /elsewhere\r\n"), False),
    "temporary_redirect": lambda _: (_answer(OK, status=b"307 Temporary Redirect", headers=b"Location: /x\r\n"), False),
    "bad_gateway_once": lambda number: (_answer(OK, status=b"502 Bad Gateway") if number == 0 else _answer(OK), False),
    "more_bytes_than_its_content_length": lambda _: (_answer(OK + b'{"smuggled": 1}', length=len(OK)), False),
    "close_delimited_http_1_0": lambda _: (b"HTTP/1.0 200 OK\r\n\r\n" + OK, True),
}


def _outcomes(requester: Any, calls: int) -> list[Any]:
    """Each call's status and text, or the exception's type."""
    outcomes: list[Any] = []
    for _ in range(calls):
        try:
            status, _, text = requester.requestJson("GET", "/repos/o/r", headers={"If-None-Match": '"a"'})
        except Exception as error:  # noqa: BLE001 (the exception's type is what is compared)
            outcomes.append(type(error))
        else:
            outcomes.append((status, text))
    return outcomes


def _theirs_and_ours(script: Script, calls: int, *, stall: float = 0.0, timeout: int = 5) -> tuple[list[Any], ...]:
    answers = []
    for ours in (False, True):
        server = ScriptedServer(script, stall=stall)
        try:
            if ours:
                requester = GitHubClient(server.url, "t0ken", seconds_between_writes=None, timeout=timeout)._requester
            else:
                requester = Github(
                    base_url=server.url, auth=Auth.Token("t0ken"), user_agent="Tandem", retry=None, timeout=timeout
                ).requester
            answers.append(_outcomes(requester, calls))
        finally:
            server.close()
    return tuple(answers)


@pytest.mark.parametrize("script", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_an_answer_cut_short_or_broken_raises_as_pygithubs_own(script):
    theirs, ours = _theirs_and_ours(script, 1)
    assert ours == theirs
    assert isinstance(ours[0], type)
    assert issubclass(ours[0], requests.RequestException)


@pytest.mark.parametrize("script", ANSWERED.values(), ids=ANSWERED.keys())
def test_an_answer_reads_as_pygithubs_own(script):
    theirs, ours = _theirs_and_ours(script, 2)
    assert ours == theirs


def test_a_body_cut_short_is_unavailable_not_a_json_that_parses():
    server = ScriptedServer(CUT_SHORT["chunked_without_its_last_chunk"])
    try:
        client = GitHubClient(server.url, "t0ken", seconds_between_writes=None)
        with pytest.raises(GitHubUnavailable) as unavailable:
            client._request("GET", "/repos/o/r")
        assert isinstance(unavailable.value.__cause__, requests.exceptions.ChunkedEncodingError)
    finally:
        server.close()


STALLED = {
    "before_the_answer": (lambda _: (_answer(OK), False), 2.5),
    "inside_the_body": (lambda _: (_answer(OK, length=len(OK) + 20), False), 0.0),
}


@pytest.mark.parametrize(("script", "stall"), STALLED.values(), ids=STALLED.keys())
def test_a_server_that_does_not_answer_in_time_times_out_as_pygithubs_own(script, stall):
    """Stalled before the answer (ReadTimeout) or inside its body (ConnectionError), as requests raises them."""
    theirs, ours = _theirs_and_ours(script, 1, stall=stall, timeout=1)
    assert ours == theirs
    assert issubclass(ours[0], requests.RequestException)
