"""The REST API's JSON parser: the same decoder and limits as every webhook (reviews.integrations.payloads)."""

from __future__ import annotations

from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers, status

from reviews.integrations.payloads import JsonRefused, decode_json


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


class SafeJSONParser(parsers.JSONParser):
    """JSON within JSON_MAX_BODY_BYTES and JSON_MAX_DEPTH, UTF-8 only, no NaN or Infinity: a 400 (413) otherwise."""

    def parse(self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.JSON_MAX_BODY_BYTES
        # Read one byte past the limit: enough to know the body is too large without reading all of it.
        body = stream.read(limit + 1) if stream is not None else b""
        try:
            return decode_json(body, max_bytes=limit, max_depth=settings.JSON_MAX_DEPTH)
        except JsonRefused as error:
            if error.status == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE:
                raise BodyTooLarge(f"Request body is larger than {limit} bytes.") from None
            raise exceptions.ParseError(str(error)) from None
