"""The VCS clients share the process's HTTP connections (reviews.integrations.http_pool): a verdict pass opens a
client for its few calls, and opening a connection (over HTTPS: the CA bundle and a TLS handshake) cost more than
the calls. Against the fake GitHub over real HTTP; no database."""

from __future__ import annotations

import pytest

from reviews.integrations import http_pool
from reviews.integrations.github_api import GitHubClient

REPO = "octocat/Hello-World"


def test_clients_one_after_another_reuse_one_connection(github_with_repo, connections_opened):
    for _ in range(3):
        client = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
        try:
            assert client.repository(REPO).full_path == REPO
        finally:
            client.close()
    assert len(connections_opened) == 1
    assert len(github_with_repo.requests) == 3


def test_a_client_closing_leaves_the_pool_open_for_the_next(github_with_repo, connections_opened):
    first = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    first.repository(REPO)
    first.close()
    second = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    second.repository(REPO)
    second.close()
    assert len(connections_opened) == 1


def test_each_client_keeps_its_own_token(github_with_repo):
    """Connections are shared; credentials are not: each client's calls carry its own token."""
    right = GitHubClient(github_with_repo.url, github_with_repo.token, seconds_between_writes=None)
    wrong = GitHubClient(github_with_repo.url, "not-the-token", seconds_between_writes=None)
    try:
        assert right.repository(REPO).full_path == REPO
        with pytest.raises(Exception, match="401|[Bb]ad credentials|[Uu]nauthori"):
            wrong.repository(REPO)
        assert right.repository(REPO).full_path == REPO
    finally:
        right.close()
        wrong.close()


def test_a_forked_process_opens_its_own_pool(monkeypatch):
    parent = http_pool.process_adapter()
    assert http_pool.process_adapter() is parent
    monkeypatch.setattr(http_pool.os, "getpid", lambda: -1)
    assert http_pool.process_adapter() is not parent


def test_the_environments_proxies_apply_as_requests_reads_them_though_read_once(monkeypatch: pytest.MonkeyPatch):
    """The proxies the environment names are read once per process and host (requests scans the environment at every
    call); what a call gets is what requests would give it, NO_PROXY included."""
    import requests

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    http_pool._environ_proxies.cache_clear()
    ours = http_pool.session_on_process_pool(requests.Session())
    theirs = requests.Session()
    for url in ("https://api.github.com/repos/x/y", "https://internal.example/api/v4/projects/1"):
        assert ours.merge_environment_settings(url, {}, None, None, None) == theirs.merge_environment_settings(
            url, {}, None, None, None
        )

    def proxy(url: str) -> str | None:
        return ours.merge_environment_settings(url, {}, None, None, None)["proxies"].get("https")

    assert proxy("https://api.github.com/a") == "http://proxy.example:3128"
    assert proxy("https://internal.example/a") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.example:3128")
    assert proxy("https://api.github.com/b") == "http://proxy.example:3128"  # read once per process
    http_pool._environ_proxies.cache_clear()


def test_a_session_that_stops_trusting_the_environment_reads_no_proxy_from_it(monkeypatch: pytest.MonkeyPatch):
    """`trust_env = False` is requests' switch for ignoring the environment's proxies and CA bundle; a client may set
    it after its session is put on the pool, and the remembered environment must not bring them back."""
    import requests

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    http_pool._environ_proxies.cache_clear()
    ours = http_pool.session_on_process_pool(requests.Session())
    ours.trust_env = False
    theirs = requests.Session()
    theirs.trust_env = False
    url = "https://api.github.com/repos/x/y"
    assert ours.merge_environment_settings(url, {}, None, None, None) == theirs.merge_environment_settings(
        url, {}, None, None, None
    )
    assert not ours.merge_environment_settings(url, {}, None, None, None)["proxies"]
    http_pool._environ_proxies.cache_clear()
