"""Requests to URLs people typed in (a team's chat webhook) may reach only the public internet.

A lead could otherwise point Tandem at 127.0.0.1, the cloud metadata service or the private network, and the
worker would POST there. The check is made on the address actually connected to, so neither DNS rebinding nor a
redirect gets around it: every connection, the first and each redirect's, is refused unless its peer address is
global, or inside a network an operator allow-listed (settings.OUTBOUND_ALLOWED_NETWORKS; tests allow 127.0.0.1).
Nothing here imports Django: callers pass the allow-list.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeDestination(ValueError):
    """The URL leads somewhere Tandem must not send requests: not http(s), or a non-public address."""


class NotConnected(ConnectionError):
    """No connection was made (name not resolved, refused, unreachable, timed out connecting): nothing was sent, so
    sending again cannot deliver twice. urllib wraps it in a URLError as its `reason`."""


def networks(allowed: Sequence[str]) -> tuple[Network, ...]:
    """The operator's allow-list ("127.0.0.1", "10.0.0.0/8", "::1") as networks."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in allowed if entry.strip())


# IPv6 prefixes whose last 32 bits are an IPv4 address that a gateway or the host's own stack reaches: NAT64
# (RFC 6052), IPv4-translated (RFC 2765) and IPv4-compatible (deprecated, RFC 4291).
_LAST_32_BITS_IPV4 = tuple(ipaddress.IPv6Network(prefix) for prefix in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# Not global, whatever this Python's `is_global` says: IETF protocol assignments (Oracle Cloud's metadata service
# is 192.0.0.192) and local-use NAT64, whose embedding is the network's own.
_NEVER_PUBLIC = (ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def address_check(address: str, *, allowed: Sequence[Network] = ()) -> None:
    ip = _unwrapped(ipaddress.ip_address(address.split("%", 1)[0]))
    if any(ip in network for network in allowed):
        return
    # is_global is False for loopback, private (RFC 1918, ULA), link-local (169.254.169.254, the metadata
    # service), shared (100.64/10), reserved, unspecified and documentation ranges.
    if not ip.is_global or ip.is_multicast or any(ip in network for network in _NEVER_PUBLIC):
        raise UnsafeDestination(f"{ip} is not a public address; Tandem does not send requests there")


def _unwrapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, translated, compatible), or the address."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if int(ip) > 1 and any(ip in network for network in _LAST_32_BITS_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def url_check(url: str, *, allowed: Sequence[Network] = ()) -> None:
    """Raise UnsafeDestination unless `url` is http(s) and every address its host resolves to may be reached."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeDestination(f"not an http(s) URL: {url[:80]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError) as error:
        raise UnsafeDestination(f"{parts.hostname} does not resolve: {error}") from None
    for *_, sockaddr in found:
        address_check(str(sockaddr[0]), allowed=allowed)


def opener(*, allowed: Sequence[Network] = ()) -> urllib.request.OpenerDirector:
    """A urllib opener that connects only to allowed addresses, follows http(s) redirects only, and ignores
    proxy settings from the environment (a proxy would hide the address actually reached)."""
    director = urllib.request.OpenerDirector()
    for handler in (
        _CheckedHTTPHandler(allowed),
        _CheckedHTTPSHandler(allowed),
        urllib.request.HTTPDefaultErrorHandler(),
        _HttpOnlyRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        director.add_handler(handler)
    return director


def _checked_connect(allowed: Sequence[Network]) -> Callable[..., socket.socket]:
    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        try:
            sock = socket.create_connection(address, *args, **kwargs)
        except OSError as error:
            raise NotConnected(f"could not connect to {address[0]}: {error}") from error
        try:
            address_check(str(sock.getpeername()[0]), allowed=allowed)
        except UnsafeDestination:
            sock.close()
            raise
        return sock

    return connect


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allowed: Sequence[Network]) -> None:
        super().__init__()
        self._allowed = allowed

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        allowed = self._allowed

        class Connection(http.client.HTTPConnection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._create_connection = _checked_connect(allowed)

        return self.do_open(Connection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allowed: Sequence[Network]) -> None:
        super().__init__()
        self._allowed = allowed

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        allowed = self._allowed

        class Connection(http.client.HTTPSConnection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._create_connection = _checked_connect(allowed)

        return self.do_open(Connection, req)


class _HttpOnlyRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme not in {"http", "https"}:
            raise UnsafeDestination(f"redirected to a non-http(s) URL: {newurl[:80]!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)
