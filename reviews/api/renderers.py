"""The REST API's JSON renderer."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer


class SafeJSONRenderer(JSONRenderer):
    """DRF's JSON, except that an answer echoing a lone surrogate from the request (a valid JSON escape, but not
    text: "'high\\ud800' is not a valid choice") is written with escapes instead of failing with a 500."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _EscapedJSONRenderer().render(data, accepted_media_type, renderer_context)


class _EscapedJSONRenderer(JSONRenderer):
    ensure_ascii = True
