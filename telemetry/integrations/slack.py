"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): one JSON POST with a `text`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from reviews.integrations import outbound

TIMEOUT_SECONDS = 10


class ChatError(Exception):
    """The chat refused the message (a 4xx): sending it again will not help."""


class ChatUnavailable(ChatError):
    """The chat did not take the message (a 5xx, a 429, no connection made): sending it again is safe."""


class ChatOutcomeUnknown(ChatError):
    """The message went out but no answer came back (a timeout or a reset after sending): the chat may have shown
    it, so sending it again could show it twice."""


def post_message(
    url: str, *, text: str, blocks: list[dict[str, Any]] | None = None, allowed_networks: Sequence[str] = ()
) -> None:
    """POST the message. `allowed_networks`: non-public networks the operator lets Tandem reach (outbound.py)."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ChatError(f"not an http(s) webhook URL: {url[:80]!r}")
    payload: dict[str, object] = {"text": text}
    if blocks:
        payload["blocks"] = blocks
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with outbound.opener(allowed=outbound.networks(allowed_networks)).open(
            request, timeout=TIMEOUT_SECONDS
        ) as response:
            response.read()
    except outbound.UnsafeDestination as error:
        raise ChatError(f"chat webhook refused: {error}") from error
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            raise ChatUnavailable(f"chat webhook answered {error.code}") from error
        raise ChatError(f"chat webhook refused the message: {error.code}") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, outbound.NotConnected):
            raise ChatUnavailable(f"chat webhook unreachable: {error.reason}") from error
        raise ChatOutcomeUnknown(f"chat webhook did not answer: {error.reason}") from error
    except (TimeoutError, OSError) as error:
        raise ChatOutcomeUnknown(f"chat webhook did not answer: {error}") from error
