"""The WSGI app `bench/ingest.py` serves: Tandem itself, plus `/bench/bare/`, the least a webhook receiver can do
(check the HMAC, insert the raw body in one statement), in the same Django, gunicorn and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    body = request.body
    expected = "sha256=" + hmac.new(settings.GITHUB_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), request.headers.get("X-Hub-Signature-256", "").encode()):
        return JsonResponse({"error": "bad signature"}, status=401)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_raw_delivery (delivery_id, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [request.headers.get("X-GitHub-Delivery", ""), body.decode("utf-8", "replace")],
        )
    return JsonResponse({"status": "accepted"}, status=202)


urlpatterns = [path("bench/bare/", bare), path("", include("config.urls"))]
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()
