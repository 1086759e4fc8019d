"""A team's chat webhook reaches only public addresses: loopback, private, link-local and metadata addresses are
refused when the URL is saved and on every request and redirect, unless the operator allow-lists them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from reviews.integrations import outbound
from reviews.models import Team
from telemetry.integrations.slack import ChatError, post_message

UNSAFE = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.5/hook",
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS's IPv6 metadata address
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",  # loopback, IPv4-mapped
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254, reached through a NAT64 gateway
    "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1 (cloud NAT gateways translate to the private network)
    "http://[64:ff9b:1::a00:1]/hook",  # local-use NAT64 (RFC 8215)
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "http://[::ffff:0:a9fe:a9fe]/hook",  # IPv4-translated 169.254.169.254
    "http://[::127.0.0.1]/hook",  # IPv4-compatible loopback
    "http://[::a9fe:a9fe]/hook",  # IPv4-compatible 169.254.169.254
    "http://192.0.0.192/opc/v2/instance/",  # Oracle Cloud's instance metadata address
    "ftp://example.com/hook",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", UNSAFE)
def test_an_internal_chat_webhook_is_refused_when_saved(settings, url):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    team = Team(slug="payments", name="Payments", slack_webhook_url=url)
    with pytest.raises(ValidationError) as raised:
        team.full_clean(exclude=["slug"])
    assert "slack_webhook_url" in raised.value.message_dict


def test_a_public_address_is_taken_and_an_allow_listed_network_too(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    outbound.url_check("https://93.184.216.34/services/T000/B000/XXXX")  # an address, so no DNS is needed
    outbound.url_check("https://[64:ff9b::5db8:d822]/hook")  # NAT64 of that public address
    outbound.url_check("https://[2002:5db8:d822::1]/hook")  # 6to4 of it
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    Team(slug="payments", name="Payments", slack_webhook_url="http://10.20.1.1/hooks/x").full_clean(exclude=["slug"])


class Recorder:
    """An HTTP server on a loopback address that records every request and answers with `status`/`location`."""

    def __init__(self, host: str, status: int = 200, location: str = "") -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.requests.append(f"{self.command} {self.path}")
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _answer  # noqa: N815 - the stdlib's names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[Recorder]:
    with Recorder("127.0.0.2") as server:
        yield server


def test_a_request_to_a_loopback_address_is_refused_before_anything_is_sent(internal):
    with pytest.raises(ChatError, match="not a public address"):
        post_message(internal.url, text="hello", allowed_networks=["127.0.0.1"])
    assert internal.requests == []


def test_a_redirect_to_an_internal_address_is_refused(internal):
    with Recorder("127.0.0.1", status=302, location=internal.url) as entry:
        with pytest.raises(ChatError, match="127.0.0.2 is not a public address"):
            post_message(entry.url, text="hello", allowed_networks=["127.0.0.1"])
        assert entry.requests == ["POST /hook"]
    assert internal.requests == []


def test_an_allow_listed_address_is_reached():
    with Recorder("127.0.0.1") as chat:
        post_message(chat.url, text="hello", allowed_networks=["127.0.0.1"])
    assert chat.requests == ["POST /hook"]


def test_a_name_that_resolves_to_loopback_is_refused():
    with Recorder("127.0.0.1") as chat:
        url = chat.url.replace("127.0.0.1", "localhost")
        with pytest.raises(ChatError, match="not a public address"):
            post_message(url, text="hello")
    assert chat.requests == []
