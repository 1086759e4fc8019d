"""One pool of HTTP connections per process for the VCS clients.

A verdict pass opens a client for its few calls and closes it. With a connection pool per client, every pass
opened a new TCP connection and, over HTTPS, loaded the CA bundle and made a TLS handshake: about 33 ms of CPU
before the first byte of a call that then costs 2 (bench/README.md, issue 15's fourth pass). The clients' sessions
stay their own (headers, auth, hooks, cookies); only the connections underneath are the process's, reused while
the server keeps them alive. A connection the server closed is noticed when it is taken from the pool, and a new
one is opened; a call that fails anyway fails as before (the callers' retries and backoffs are unchanged).

PyGithub's calls go one step further (`_Direct`): sent over the pool by urllib3 as `requests` would send them, without
the session's per-call preparation; whatever that does not cover still goes through the session.
"""

from __future__ import annotations

import functools
import os
import threading
import types
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from github.Requester import Requester
from requests.adapters import DEFAULT_RETRIES, HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.models import CONTENT_CHUNK_SIZE, PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    check_header_validity,
    get_encoding_from_headers,
    get_environ_proxies,
    select_proxy,
    super_len,
)
from urllib3 import HTTPConnectionPool, HTTPHeaderDict
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout as TimeoutSauce

# Connections kept per host: a worker process makes its calls one at a time; a sync's threads, if any, share these.
POOL_MAXSIZE = 10


class _ProcessAdapter(HTTPAdapter):
    """The process's adapter: a client closing its session leaves the pool to the next client."""

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Sent over the connections of the process sending it: a session mounted before a fork still holds the
        parent's adapter, whose idle sockets the parent goes on using (two processes on one socket read each
        other's answers)."""
        adapter = process_adapter()
        if adapter is not self:
            return adapter.send(request, *args, **kwargs)
        return super().send(request, *args, **kwargs)

    def close(self) -> None:
        """Kept open: the connections live as long as the process (or until the server closes them)."""


_lock = threading.Lock()
_adapter: _ProcessAdapter | None = None
_owner_pid = 0


def _new_lock_in_child() -> None:
    """A child forked while another thread held the lock (every call takes it) would wait for it forever: no
    thread of the child's will release it."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


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


@functools.lru_cache(maxsize=64)
def _environ_proxy_for(origin: str) -> str | None:
    """The proxy requests would pick from the environment for a call to `origin` (None: none applies, e.g. NO_PROXY
    names the host, or only another scheme has one)."""
    return select_proxy(origin, _environ_proxies(origin, None))


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
            self._direct = _Direct.for_connection(self)

        def getresponse(self) -> Any:
            direct = self._direct
            if direct is not None:
                response = direct.send(self)
                if response is not None:
                    return response
            return super().getresponse()

    OnProcessPool.__name__ = OnProcessPool.__qualname__ = f"{connection_class.__name__}OnProcessPool"
    return OnProcessPool


class DirectResponse:
    """What PyGithub's `RequestsResponse` gives its Requester (status, `getheaders()`, `read()`), from urllib3's
    response as `requests` would have made it: headers repeated in the response joined by ", " under their first
    spelling, the body decoded (gzip, deflate) and read as text in the charset the headers name."""

    __slots__ = ("status", "_headers", "_text")

    def __init__(self, status: int, headers: HTTPHeaderDict, text: str) -> None:
        self.status = status
        self._headers = headers
        self._text = text

    @property
    def headers(self) -> CaseInsensitiveDict[str]:
        return CaseInsensitiveDict(self._headers)

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers.itermerged())

    def read(self) -> str:
        return self._text


class _Direct:
    """The calls of one PyGithub connection sent over the process's urllib3 pool without `requests.Session` above it.

    `requests` spends ~20% of a GitHub call's CPU preparing the request (merging settings, cookies, hooks, parsing
    the URL twice) for a call whose every setting is fixed when the connection is made (issue 15). This sends what
    `Session.request` would send with the settings PyGithub gives it (`allow_redirects=False`, its timeout, its
    `verify`, its `retry` as `HTTPAdapter(max_retries=retry)` reads it) and raises the exceptions requests' adapter
    raises, over the same pool the session would use. Anything this does not cover goes through the session as
    before: a proxy the environment names for the host, a streamed call, a body that is not text or bytes, a session
    someone gave cookies, proxies, a client certificate, hooks, parameters or another auth; a response that sets a
    cookie is stored in the session's jar, so that the next calls carry it through the session.
    """

    __slots__ = ("origin", "scheme", "host", "port", "timeout", "retries", "_pool", "_pool_adapter", "_pool_verify")

    def __init__(self, scheme: str, host: str, port: int, timeout: Any, retry: Any) -> None:
        self.origin = f"{scheme}://{host}:{port}"
        self.scheme, self.host, self.port = scheme, urlsplit(self.origin).hostname, port
        self.timeout = TimeoutSauce(connect=timeout, read=timeout)
        # What HTTPAdapter(max_retries=retry) makes of it, as PyGithub's own connection classes mount.
        self.retries = Retry(0, read=False) if retry == DEFAULT_RETRIES else Retry.from_int(retry)
        self._pool: HTTPConnectionPool | None = None
        self._pool_adapter: HTTPAdapter | None = None
        self._pool_verify: Any = None

    @classmethod
    def for_connection(cls, connection: Any) -> _Direct | None:
        """None for a connection not shaped like PyGithub's two (a PyGithub that changed them keeps `requests`)."""
        try:
            scheme, host, port = connection.protocol, connection.host, connection.port
            timeout, retry = connection.timeout, connection.retry
            connection.verify, connection.session  # noqa: B018 (read at each call)
        except AttributeError:
            return None
        if scheme not in ("http", "https") or not isinstance(host, str) or not isinstance(port, int):
            return None
        return cls(scheme, host, port, timeout, retry)

    def send(self, connection: Any) -> DirectResponse | None:
        """The response to the call PyGithub put on `connection`, or None if the session must make it."""
        session = connection.session
        body = connection.input
        if (
            connection.stream
            or not (body is None or isinstance(body, (str, bytes)))
            or session.cookies
            or session.proxies
            or session.cert is not None
            or session.params
            or any(session.hooks.values())
            or session.auth is not Requester.noopAuth
        ):
            return None
        verify = connection.verify
        if session.trust_env:
            if _environ_proxy_for(self.origin):
                return None
            if verify is True or verify is None:
                verify = _environ_ca_bundle() or verify
        if verify is None:
            verify = session.verify
        method = connection.verb.upper()
        target = _request_target(self.origin, connection.url)
        headers = _headers(session.headers, connection.headers)
        if body is not None and not body:
            body = None  # requests sends no body for an empty one
        if body is not None:
            length = super_len(body)
            if length:
                headers["Content-Length"] = str(length)
        elif method not in ("GET", "HEAD") and headers.get("Content-Length") is None:
            headers["Content-Length"] = "0"
        pool = self._pool_for(verify)
        try:
            response = pool.urlopen(
                method=method,
                url=target,
                body=body,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=self.retries,
                timeout=self.timeout,
                chunked=False,
            )
        except (ProtocolError, OSError) as err:
            raise requests.ConnectionError(err) from err
        except MaxRetryError as e:
            if isinstance(e.reason, ConnectTimeoutError) and not isinstance(e.reason, NewConnectionError):
                raise requests.ConnectTimeout(e) from e
            if isinstance(e.reason, ResponseError):
                raise requests.exceptions.RetryError(e) from e
            if isinstance(e.reason, urllib3_exceptions.ProxyError):
                raise requests.exceptions.ProxyError(e) from e
            if isinstance(e.reason, urllib3_exceptions.SSLError):
                raise requests.exceptions.SSLError(e) from e
            raise requests.ConnectionError(e) from e
        except ClosedPoolError as e:
            raise requests.ConnectionError(e) from e
        except urllib3_exceptions.ProxyError as e:
            raise requests.exceptions.ProxyError(e) from e
        except urllib3_exceptions.SSLError as e:
            raise requests.exceptions.SSLError(e) from e
        except ReadTimeoutError as e:
            raise requests.ReadTimeout(e) from e
        except urllib3_exceptions.InvalidHeader as e:
            raise requests.exceptions.InvalidHeader(e) from e
        try:
            content = b"".join(response.stream(CONTENT_CHUNK_SIZE, decode_content=True))
        except ProtocolError as e:
            raise requests.exceptions.ChunkedEncodingError(e) from e
        except DecodeError as e:
            raise requests.exceptions.ContentDecodingError(e) from e
        except ReadTimeoutError as e:
            raise requests.ConnectionError(e) from e
        except urllib3_exceptions.SSLError as e:
            raise requests.exceptions.SSLError(e) from e
        response_headers = response.headers
        if "set-cookie" in response_headers:
            _keep_cookies(session, f"{self.origin}{target}", headers, response)
        return DirectResponse(response.status, response_headers, _text(content, response_headers))

    def _pool_for(self, verify: Any) -> HTTPConnectionPool:
        """The pool requests' adapter would pick for this origin and `verify`, set up as its `cert_verify` sets it.
        Looked up again after a fork (the process's adapter is new) or when the pool was closed (evicted)."""
        adapter = process_adapter()
        pool = self._pool
        if pool is None or pool.pool is None or self._pool_adapter is not adapter or self._pool_verify != verify:
            pool_kwargs = _pool_kwargs(verify)
            pool = adapter.poolmanager.connection_from_host(self.host, self.port, self.scheme, pool_kwargs=pool_kwargs)
            adapter.cert_verify(pool, self.origin, verify, None)
            self._pool, self._pool_adapter, self._pool_verify = pool, adapter, verify
        return pool


def _pool_kwargs(verify: Any) -> dict[str, Any]:
    """requests.adapters._urllib3_request_context's pool key for `verify` (no client certificate)."""
    pool_kwargs: dict[str, Any] = {}
    cert_reqs = "CERT_REQUIRED"
    if verify is False:
        cert_reqs = "CERT_NONE"
    elif isinstance(verify, str):
        if not os.path.isdir(verify):
            pool_kwargs["ca_certs"] = verify
        else:
            pool_kwargs["ca_cert_dir"] = verify
    pool_kwargs["cert_reqs"] = cert_reqs
    return pool_kwargs


@functools.lru_cache(maxsize=512)
def _request_target(origin: str, url: str) -> str:
    """The request target `requests` sends for PyGithub's `url` (a path and query): its URL parsed, normalised and
    re-quoted by `PreparedRequest.prepare_url`, then `path_url`. Pure in its arguments, so remembered."""
    prepared = PreparedRequest()
    prepared.prepare_url(f"{origin}{url}", None)
    return prepared.path_url


def _headers(
    session_headers: Mapping[str, str | None], request_headers: Mapping[str, str | None]
) -> CaseInsensitiveDict[str]:
    """`merge_setting(request.headers, session.headers)` then `prepare_headers`: the session's headers first, a
    request's header replacing one of the same name (case aside) in its place and under its own spelling, None
    dropping it; every header checked as requests checks it (a line break in a value is refused, InvalidHeader)."""
    merged: dict[str, tuple[str, str | None]] = {name.lower(): (name, value) for name, value in session_headers.items()}
    for name, value in request_headers.items():
        merged[name.lower()] = (name, value)
    headers = CaseInsensitiveDict[str]()
    for name, value in merged.values():
        if value is not None:
            check_header_validity((name, value))
            headers[name] = value
    return headers


def _text(content: bytes, headers: HTTPHeaderDict) -> str:
    """`Response.text or ""`, as PyGithub's RequestsResponse.read returns it."""
    if not content:
        return ""
    encoding = get_encoding_from_headers(headers)  # type: ignore[arg-type]
    if encoding is None:  # no charset named: requests guesses it
        guessed = requests.Response()
        guessed._content = content
        guessed.encoding = None
        return guessed.text or ""
    try:
        return str(content, encoding, errors="replace")
    except (LookupError, TypeError):
        return str(content, errors="replace")


def _keep_cookies(session: requests.Session, url: str, headers: Mapping[str, str], response: Any) -> None:
    """Store a response's cookies in the session's jar as `Session.send` does; the jar no longer empty, the
    connection's next calls go through the session, which sends them."""
    prepared = PreparedRequest()
    prepared.url = url
    prepared.headers = CaseInsensitiveDict(headers)
    extract_cookies_to_jar(session.cookies, prepared, response)
