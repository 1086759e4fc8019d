"""`POST /webhooks/github/` and `POST /webhooks/gitlab/`: the version control providers' adapters over the inbox
(reviews/webhooks.py). Each verifies its sender against the Connections' secrets and the settings' one, finds the
Connection the delivery belongs to, and names the delivery; the inbox stores it and a worker applies it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from reviews.integrations.github import verify_signature
from reviews.integrations.gitlab import verify_token
from reviews.models import Connection, Provider
from reviews.services.connections import connection_for_instance, connections_with_webhook_secret, instance_host
from reviews.webhooks import Named, Sender, WebhookInvalid, WebhookRejected, WebhookSource, header, webhook_view

_KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Enterprise-Host",
    "X-GitHub-Enterprise-Version",
    "X-GitHub-Hook-Installation-Target-Type",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-Gitlab-Event",
    "X-Gitlab-Event-UUID",
    "X-Gitlab-Webhook-UUID",
    "X-Gitlab-Instance",
    "Idempotency-Key",
)


class GitHubSource(WebhookSource):
    provider = "github"
    event_header = "X-GitHub-Event"
    kept_headers = _KEPT_HEADERS
    # GitHub's hello on creating the hook: stored like any delivery, answered 200.
    ignored_on_receipt: ClassVar[dict[str, str]] = {"ping": "pong"}

    def verify(self, request: HttpRequest, body: bytes) -> Sender:
        signature = header(request, "X-Hub-Signature-256")
        if not signature:
            raise WebhookRejected("Missing X-Hub-Signature-256 header.")
        host = instance_host(header(request, "X-GitHub-Enterprise-Host"))
        connection = _signed_by(
            Provider.GITHUB,
            lambda secret: verify_signature(secret, body, signature),
            instance_secret=settings.GITHUB_WEBHOOK_SECRET,
            refused="Signature does not match the webhook secret.",
        )
        return Sender(connection or connection_for_instance(provider=Provider.GITHUB, host=host), host)

    def name(self, request: HttpRequest, body: bytes) -> Named:
        event, delivery_id = header(request, "X-GitHub-Event"), header(request, "X-GitHub-Delivery")
        if not event:
            raise WebhookInvalid("Missing X-GitHub-Event header.")
        if not delivery_id:
            raise WebhookInvalid("Missing X-GitHub-Delivery header.")
        return Named(event=event, delivery_id=delivery_id)

    def describe(self, named: Named, payload: dict[str, Any]) -> Named:
        action = payload.get("action")
        return replace(named, action=action if isinstance(action, str) else "")


class GitLabSource(WebhookSource):
    provider = "gitlab"
    event_header = "X-Gitlab-Event"
    kept_headers = _KEPT_HEADERS

    def verify(self, request: HttpRequest, body: bytes) -> Sender:
        token = header(request, "X-Gitlab-Token")
        if not token:
            raise WebhookRejected("Missing X-Gitlab-Token header.")
        connection = _signed_by(
            Provider.GITLAB,
            lambda secret: verify_token(secret, token),
            instance_secret=settings.GITLAB_WEBHOOK_TOKEN,
            refused="X-Gitlab-Token does not match the webhook token.",
        )
        # Parsed only once the token is verified: an unauthenticated caller gets nothing out of a crafted header.
        host = _instance_host(header(request, "X-Gitlab-Instance"))
        if host is None:
            raise WebhookInvalid("X-Gitlab-Instance is not a URL.")
        return Sender(connection or connection_for_instance(provider=Provider.GITLAB, host=host), host)

    def name(self, request: HttpRequest, body: bytes) -> Named:
        event = header(request, "X-Gitlab-Event")
        if not event:
            raise WebhookInvalid("Missing X-Gitlab-Event header.")
        # GitLab sends a UUID per delivery (retries keep it); very old versions send none, so the body stands in.
        delivery_id = (
            header(request, "X-Gitlab-Event-UUID")
            or header(request, "Idempotency-Key")
            or "sha256:" + hashlib.sha256(body).hexdigest()
        )
        return Named(event=event, delivery_id=delivery_id)

    def describe(self, named: Named, payload: dict[str, Any]) -> Named:
        attributes = payload.get("object_attributes")
        action = ""
        if isinstance(attributes, dict) and isinstance(attributes.get("action"), str):
            action = attributes["action"]
        return replace(named, action=action or str(payload.get("object_kind", ""))[:100])


def _signed_by(
    provider: str, verifies: Callable[[str], bool], *, instance_secret: str, refused: str
) -> Connection | None:
    """Whose secret a webhook is signed with: the oldest Connection with a secret of its own that `verifies` it, or
    None for the settings' instance-wide secret. Before refusing, the connections are read again (unless read within
    REFRESH_ON_MISS_SECONDS): a secret set or rotated in another process is taken within that bound, not the cache's."""
    for candidate in connections_with_webhook_secret(provider=provider):
        if verifies(candidate.webhook_secret):
            return candidate
    if instance_secret and verifies(instance_secret):
        return None
    for candidate in connections_with_webhook_secret(provider=provider, fresh=True):
        if verifies(candidate.webhook_secret):
            return candidate
    raise WebhookRejected(refused)


def _instance_host(value: str) -> str | None:
    """The host an `X-Gitlab-Instance` header names ("" for none), or None when it is not a URL."""
    try:
        return (urlsplit(value).hostname or "").lower()
    except ValueError:
        return None


github_webhook = webhook_view(GitHubSource())
gitlab_webhook = webhook_view(GitLabSource())
