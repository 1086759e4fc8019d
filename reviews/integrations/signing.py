"""Comparing secrets and signatures from request headers, in constant time, as bytes.

`hmac.compare_digest` raises TypeError for a `str` holding anything but ASCII, so a garbage header would be a 500;
every verifier compares the UTF-8 bytes instead, and a header that is not what was expected is simply no match.
"""

from __future__ import annotations

import hashlib
import hmac


def secret_matches(expected: str, offered: str | None) -> bool:
    """Whether `offered` is exactly `expected`. An empty expected secret matches nothing (fail closed)."""
    if not expected or offered is None:
        return False
    return hmac.compare_digest(_bytes(expected), _bytes(offered))


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()


def _bytes(value: str) -> bytes:
    # "surrogatepass": a lone surrogate (possible from ASGI or a test client) must not raise either.
    return value.encode("utf-8", "surrogatepass")
