"""PyGithub's calls sent over the process's urllib3 pool without `requests.Session` (reviews.integrations.http_pool,
`_Direct`): the same bytes on the wire as PyGithub's own requests-based connection, one reused connection, a closed
keep-alive connection reopened, PyGithub's `retry` honoured, TLS verified against the environment's CA bundle,
proxies and cookies left to the session, and a forked child on its own connections. Real servers on 127.0.0.1; PyGithub
is not mocked. No database."""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests
from github import Auth, Github
from urllib3 import Retry

from reviews.integrations import http_pool
from reviews.integrations.github_api import GitHubClient, GitHubUnavailable
from tests.fakes.github import FakeGitHub
from tests.fakes.raw_http import request_read
from tests.fakes.tls import serve_over_tls

REPO = "octocat/Hello-World"


@pytest.fixture(autouse=True)
def _fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test on a pool of its own, and the environment read afresh (the process remembers it)."""
    monkeypatch.setattr(http_pool, "_adapter", None)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    _forget_environment()
    yield
    _forget_environment()


def _forget_environment() -> None:
    http_pool._environ_proxies.cache_clear()
    http_pool._environ_proxy_for.cache_clear()
    http_pool._environ_ca_bundle.cache_clear()


@pytest.fixture
def session_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs `requests.Session.send` was asked for."""
    sent: list[str] = []
    send = requests.Session.send

    def counted(self: requests.Session, request: Any, **kwargs: Any) -> Any:
        sent.append(request.url)
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counted)
    return sent


class RawServer:
    """An HTTP/1.1 server that records each request's bytes and answers `respond(request_bytes)`; with
    `close_after_each`, it closes the connection after every response without saying so (as a server whose
    keep-alive timeout ran out)."""

    def __init__(self, respond: Callable[[bytes], bytes], *, close_after_each: bool = False) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released as each connection is closed after its response
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                reader = self.request.makefile("rb")
                while (received := request_read(reader)) is not None:
                    outer.requests.append(received)
                    self.request.sendall(respond(received))
                    if close_after_each:
                        self.request.shutdown(socket.SHUT_RDWR)
                        outer.closed.release()
                        return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json_response(body: bytes = b'{"ok": true}', extra: bytes = b"") -> Callable[[bytes], bytes]:
    def respond(_: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Twice: a\r\nX-Twice: b\r\n"
            + extra
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    return respond


def _calls(requester: Any) -> list[tuple[int, dict[str, Any], str]]:
    answers = []
    answers.append(requester.requestJson("GET", "/repos/o/r/pulls", parameters={"state": "all", "per_page": 100}))
    answers.append(requester.requestJson("GET", "/repos/o/r/issues/1", headers={"If-None-Match": '"abc"'}))
    answers.append(requester.requestJson("POST", "/repos/o/r/statuses/0123", input={"state": "success", "é": "ü"}))
    answers.append(requester.requestJson("PATCH", "/repos/o/r/pulls/3", input={}))
    answers.append(requester.requestJson("DELETE", "/repos/o/r/labels/a%20b"))
    answers.append(requester.requestJson("GET", "/search/issues?q=a+b&sort=updated"))
    return answers


def test_the_wire_and_the_answers_are_pygithubs_own(session_sends):
    """Every byte sent and every answer PyGithub's Requester reads are what its own requests-based connection
    gives (headers in the same order, bodies and lengths, queries, the response's repeated header joined)."""
    server = RawServer(_json_response())
    try:
        theirs = Github(base_url=server.url, auth=Auth.Token("t0ken"), user_agent="Tandem", retry=None).requester
        their_answers = _calls(theirs)
        their_requests = list(server.requests)
        server.requests.clear()
        client = GitHubClient(server.url, "t0ken", seconds_between_writes=None)
        sent_before = len(session_sends)
        our_answers = _calls(client._requester)
        assert len(session_sends) == sent_before  # not through requests.Session
        assert server.requests == their_requests
        assert our_answers == their_answers
        assert our_answers[0][1]["x-twice"] == "a, b"
    finally:
        server.close()


def test_calls_go_over_one_reused_connection_not_through_a_session(github_with_repo, connections_opened, session_sends):
    for _ in range(3):
        client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
        try:
            assert client.repository(REPO).full_path == REPO
            assert client.repository(REPO).full_path == REPO
        finally:
            client.close()
    assert len(connections_opened) == 1
    assert len(github_with_repo.requests) == 6
    assert session_sends == []


def test_a_connection_the_server_closed_is_replaced_by_a_new_one(session_sends):
    server = RawServer(_json_response(), close_after_each=True)
    try:
        client = GitHubClient(server.url, "t0ken", seconds_between_writes=None)
        for number in range(3):
            assert client._request("GET", f"/repos/o/r/pulls/{number}").data == {"ok": True}
            # The connection idle and closed by the server before the next call, as at its keep-alive timeout.
            assert server.closed.acquire(timeout=5)
            time.sleep(0.05)  # for the FIN to reach the client's socket
        assert server.connections == 3
        assert len(server.requests) == 3
        assert session_sends == []
    finally:
        server.close()


def test_the_retry_pygithub_passes_answers_a_502_once(github_with_repo, session_sends):
    """A Requester given a urllib3 Retry retries a 502 as PyGithub's own connection's adapter does (on main the
    process's pool, mounted with no retries, answered the 502)."""
    requester = Github(
        base_url=github_with_repo.url,
        auth=Auth.Token(github_with_repo.token),
        retry=Retry(total=2, status_forcelist=[502], backoff_factor=0, allowed_methods=None),
    ).requester
    http_pool.pygithub_on_process_pool(requester)
    github_with_repo.fail_next("/repos/octocat/Hello-World", status=502)
    status, _, _ = requester.requestJson("GET", f"/repos/{REPO}")
    assert status == 200
    assert [request.status for request in github_with_repo.requests] == [502, 200]
    assert session_sends == []


def test_tandems_client_still_answers_a_502_with_unavailable_once(github_with_repo):
    """Tandem's clients pass no retry: a 502 is one request and GitHubUnavailable, for the task to retry."""
    client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    github_with_repo.fail_next("/repos/octocat/Hello-World", status=502)
    with pytest.raises(GitHubUnavailable):
        client.repository(REPO)
    assert [request.status for request in github_with_repo.requests] == [502]
    assert client.repository(REPO).full_path == REPO


@pytest.fixture
def tls_github(tmp_path: Path) -> Iterator[tuple[FakeGitHub, Path]]:
    fake = FakeGitHub()
    bundle = serve_over_tls(fake, tmp_path)
    fake.add_repo(REPO)
    with fake:
        yield fake, bundle


def test_tls_is_verified_against_the_environments_ca_bundle(tls_github, monkeypatch, session_sends):
    fake, bundle = tls_github
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    client = GitHubClient(fake.url, fake.token, seconds_between_writes=None)
    assert client.repository(REPO).full_path == REPO
    assert session_sends == []


def test_curl_ca_bundle_is_read_when_requests_ca_bundle_is_not_set(tls_github, monkeypatch):
    fake, bundle = tls_github
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    client = GitHubClient(fake.url, fake.token, seconds_between_writes=None)
    assert client.repository(REPO).full_path == REPO


def test_an_untrusted_certificate_is_refused(tls_github, monkeypatch, session_sends):
    fake, _ = tls_github
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    client = GitHubClient(fake.url, fake.token, seconds_between_writes=None)
    with pytest.raises(GitHubUnavailable) as refused:
        client.repository(REPO)
    assert isinstance(refused.value.__cause__, requests.exceptions.SSLError)
    assert session_sends == []
    assert fake.requests == []


class _RecordingProxy(RawServer):
    def __init__(self) -> None:
        super().__init__(_json_response(b'{"proxied": true}'))


def test_a_proxy_the_environment_names_is_used_through_the_session(github_with_repo, monkeypatch, session_sends):
    proxy = _RecordingProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
        assert client._request("GET", f"/repos/{REPO}").data == {"proxied": True}
        assert proxy.requests[0].startswith(f"GET {github_with_repo.url}/repos/{REPO} HTTP/1.1".encode())
        assert github_with_repo.requests == []
        assert len(session_sends) == 1
    finally:
        proxy.close()


def test_no_proxy_sends_directly(github_with_repo, monkeypatch, session_sends):
    proxy = _RecordingProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
        assert client.repository(REPO).full_path == REPO
        assert proxy.requests == []
        assert session_sends == []
    finally:
        proxy.close()


@pytest.mark.parametrize(
    "environment", [{"NO_PROXY": "elsewhere.example"}, {"HTTPS_PROXY": "http://127.0.0.1:9"}], ids=["no_proxy", "other"]
)
def test_an_environment_naming_no_proxy_for_the_host_sends_directly(
    github_with_repo, monkeypatch, session_sends, environment
):
    """NO_PROXY alone, or a proxy for another scheme only: requests would use no proxy, so the call goes directly."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    assert client.repository(REPO).full_path == REPO
    assert session_sends == []


def test_a_cookie_set_by_the_server_is_sent_back_as_the_session_would(session_sends):
    server = RawServer(_json_response(extra=b"Set-Cookie: seen=1; Path=/\r\n"))
    try:
        theirs = Github(base_url=server.url, auth=Auth.Token("t0ken"), user_agent="Tandem", retry=None).requester
        for _ in range(2):
            theirs.requestJson("GET", "/repos/o/r")
        their_requests = list(server.requests)
        server.requests.clear()
        client = GitHubClient(server.url, "t0ken", seconds_between_writes=None)
        for _ in range(2):
            client._request("GET", "/repos/o/r")
        assert b"Cookie: seen=1" in server.requests[1]
        assert server.requests == their_requests
    finally:
        server.close()


def test_a_forked_child_opens_its_own_connection(github_with_repo, connections_opened):
    """A client made before a fork: the child's calls must not go over the parent's socket."""
    client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    assert client.repository(REPO).full_path == REPO
    assert len(connections_opened) == 1
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            ok = client.repository(REPO).full_path == REPO
            code = 0 if ok and len(connections_opened) == 2 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert client.repository(REPO).full_path == REPO  # the parent's connection still serves the parent
    assert len(connections_opened) == 1


def test_a_forked_child_opens_its_own_connection_for_a_call_through_the_session(connections_opened, session_sends):
    """A connection whose calls go through the session (the server set a cookie), made before a fork: the child's
    call must open its own connection, not take the parent's idle socket from the adapter the session had mounted
    (two processes on one socket read each other's answers)."""
    server = RawServer(_json_response(extra=b"Set-Cookie: seen=1; Path=/\r\n"))
    try:
        client = GitHubClient(server.url, "t0ken", seconds_between_writes=None)
        client._request("GET", "/repos/o/r")
        client._request("GET", "/repos/o/r")  # the cookie now sends it through the session
        assert len(session_sends) == 1
        assert len(connections_opened) == 1
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                ok = client._request("GET", "/repos/o/r").data == {"ok": True}
                code = 0 if ok and len(connections_opened) == 2 else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert client._request("GET", "/repos/o/r").data == {"ok": True}
        assert len(connections_opened) == 1
    finally:
        server.close()


def test_a_child_forked_while_another_thread_holds_the_pools_lock_does_not_hang(github_with_repo):
    """Every call reads the process's pool under a lock; a fork while another thread holds it must not leave the
    child waiting forever for a lock no thread of its own will release (it answers, or the alarm kills it)."""
    client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    assert client.repository(REPO).full_path == REPO
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with http_pool._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                signal.alarm(5)
                code = 0 if client.repository(REPO).full_path == REPO else 3
            finally:
                os._exit(code)
    finally:
        release.set()
        holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0


def test_the_apps_own_calls_take_the_same_path(github_with_repo, connections_opened, session_sends):
    """The App's JWT calls (which installation, a new installation token) go over the same connection, signed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from reviews.integrations.github_app import GitHubApp

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    github_with_repo.register_app(app_id=4242, public_key_pem=public.decode())
    installation_id = github_with_repo.install_app("octocat", [REPO])
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    with GitHubApp(github_with_repo.url, "4242", pem) as app:
        assert app.repository_installation(REPO).installation_id == installation_id
        assert app.access_token(installation_id).token
    assert len(connections_opened) == 1
    assert session_sends == []
