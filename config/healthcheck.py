"""The container's health check: GET /healthz on this container's web process; exit 0 when it answers 200.

Run as a script (`python config/healthcheck.py`), so that it imports nothing of Tandem's. The request names a host
from ALLOWED_HOSTS, since Django refuses any other (400) once DEBUG is off.
"""

from __future__ import annotations

import os
import sys
import urllib.request

PORT = os.environ.get("PORT", "8000")


def allowed_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        host = host.strip()
        if host and host != "*" and not host.startswith("."):
            return host
    return "localhost"


def main() -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}/healthz", headers={"Host": allowed_host()})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 - a fixed loopback URL
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
