"""`/api/docs/`: Swagger UI from the installed drf-spectacular-sidecar (no CDN: it works without internet access).

A person who opens it in a browser without being signed in is sent to sign in and back; a machine (an
Authorization header, or a client that does not ask for HTML) still gets the API's JSON 401.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularSwaggerView


def wants_a_page(request: HttpRequest) -> bool:
    """A browser navigating here, not an API client: it asks for HTML and sends no credentials of its own."""
    return "text/html" in request.headers.get("Accept", "") and "Authorization" not in request.headers


def api_docs(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if not request.user.is_authenticated and wants_a_page(request):
        return redirect_to_login(request.get_full_path())
    return _swagger(request, *args, **kwargs)


_swagger = SpectacularSwaggerView.as_view(url_name="api-schema")
