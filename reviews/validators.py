"""Field validators that need more than the field's type."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from reviews.integrations import outbound


def outbound_url_validate(value: str) -> None:
    """A URL Tandem will POST to (a team's chat webhook) must lead to a public address, or to a network the
    operator allow-listed (OUTBOUND_ALLOWED_NETWORKS). Checked again on every request, redirects included."""
    if not value:
        return
    try:
        outbound.url_check(value, allowed=outbound.networks(settings.OUTBOUND_ALLOWED_NETWORKS))
    except outbound.UnsafeDestination as error:
        raise ValidationError(f"Tandem does not send requests to this URL: {error}.", code="unsafe_url") from None
