"""One pool of HTTP connections per process for the VCS clients.

A verdict pass opens a client for its few calls and closes it. With a connection pool per client, every pass
opened a new TCP connection and, over HTTPS, loaded the CA bundle and made a TLS handshake: about 33 ms of CPU
before the first byte of a call that then costs 2 (bench/README.md, issue 15's fourth pass). The clients' sessions
stay their own (headers, auth, hooks, cookies); only the connections underneath are the process's, reused while
the server keeps them alive. A connection the server closed is noticed when it is taken from the pool, and a new
one is opened; a call that fails anyway fails as before (the callers' retries and backoffs are unchanged).
"""

from __future__ import annotations

import functools
import os
import threading
import types
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

# Connections kept per host: a worker process makes its calls one at a time; a sync's threads, if any, share these.
POOL_MAXSIZE = 10


class _ProcessAdapter(HTTPAdapter):
    """The process's adapter: a client closing its session leaves the pool to the next client."""

    def close(self) -> None:
        """Kept open: the connections live as long as the process (or until the server closes them)."""


_lock = threading.Lock()
_adapter: _ProcessAdapter | None = None
_owner_pid = 0


def process_adapter() -> HTTPAdapter:
    """The process's connection pool. A forked child makes its own: a socket is never shared between processes."""
    global _adapter, _owner_pid
    with _lock:
        if _adapter is None or _owner_pid != os.getpid():
            _adapter = _ProcessAdapter(pool_connections=POOL_MAXSIZE, pool_maxsize=POOL_MAXSIZE, max_retries=0)
            _owner_pid = os.getpid()
        return _adapter


def session_on_process_pool(session: requests.Session) -> requests.Session:
    """Have `session` make its calls over the process's connections (HTTP and HTTPS), reading the proxies the
    environment names once per process and host instead of at every call."""
    adapter = process_adapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.merge_environment_settings = types.MethodType(_merge_environment_settings, session)  # type: ignore[method-assign]
    return session


def _merge_environment_settings(
    session: requests.Session, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
) -> dict[str, Any]:
    """`Session.merge_environment_settings`, with what it reads of the environment remembered per process: requests
    scans every environment variable twice per call for proxy settings (~5% of a verdict pass's CPU, issue 15), and a
    process's environment does not change under it."""
    if not session.trust_env:  # read when called, as requests does: a client may turn it off after this was mounted
        return requests.Session.merge_environment_settings(session, url, proxies, stream, verify, cert)
    proxies = dict(proxies or {})
    parts = urlsplit(url)
    no_proxy = proxies.get("no_proxy")
    for scheme, proxy in _environ_proxies(f"{parts.scheme}://{parts.netloc}", no_proxy).items():
        proxies.setdefault(scheme, proxy)
    if verify is True or verify is None:
        verify = _environ_ca_bundle() or verify
    return {
        "proxies": requests.sessions.merge_setting(proxies, session.proxies),
        "stream": requests.sessions.merge_setting(stream, session.stream),
        "verify": requests.sessions.merge_setting(verify, session.verify),
        "cert": requests.sessions.merge_setting(cert, session.cert),
    }


@functools.lru_cache(maxsize=64)
def _environ_proxies(origin: str, no_proxy: str | None) -> dict[str, str]:
    return dict(get_environ_proxies(origin, no_proxy=no_proxy))


@functools.cache
def _environ_ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def pygithub_on_process_pool(requester: Any) -> None:
    """Have a PyGithub Requester open its connection on the process's pool. PyGithub makes that connection lazily
    from a class it picks when the Requester is made, and has no public hook for one client (its
    `injectConnectionClasses` is process-wide and turns keep-alive off); a PyGithub without that attribute keeps
    its own pool, as before."""
    attribute = "_Requester__connectionClass"
    connection_class = getattr(requester, attribute, None)
    if isinstance(connection_class, type):
        setattr(requester, attribute, _on_process_pool(connection_class))


@functools.cache
def _on_process_pool(connection_class: type[Any]) -> type[Any]:
    class OnProcessPool(connection_class):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            session_on_process_pool(self.session)

    OnProcessPool.__name__ = OnProcessPool.__qualname__ = f"{connection_class.__name__}OnProcessPool"
    return OnProcessPool
