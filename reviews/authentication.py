"""REST API authentication: API tokens (machines) and sessions (people). What a caller may reach: `reviews.access`."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from reviews.models import ApiToken
from reviews.services.tokens import api_token_check


class TokenUser:
    """The request.user of a machine calling with an API token: authenticated, scoped to the token's teams."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.pk = None

    def __str__(self) -> str:
        return f"token {self.token}"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tdm_…` (or `Token tdm_…`)."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[TokenUser, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        token = api_token_check(secret=header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API token.")
        return TokenUser(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="tandem"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how API tokens are sent."""

    target_class = "reviews.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "An API token a lead created in the admin."}
