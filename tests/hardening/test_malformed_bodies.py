"""An authenticated body that is not acceptable JSON is a clear 400 (413 when too large) that stores nothing,
on every webhook and in the REST API alike: one decoder, one set of limits."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from reviews.integrations.payloads import JsonRefused, _decoded_by_json, decode_json
from reviews.models import Team, WebhookDelivery
from reviews.services.tokens import api_token_create
from tests.conftest import FIXTURES_DIR

pytestmark = pytest.mark.django_db

MALFORMED = {
    "deep arrays": (b"[" * 20_000 + b"]" * 20_000, "nests"),
    "deep objects": (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "nests"),
    "utf-16": ('{"action": "opened"}'.encode("utf-16"), "UTF-8"),
    "utf-16 without a mark": ('{"action": "opened"}'.encode("utf-16-le"), "UTF-8"),
    "latin-1": ('{"action": "ouvert é"}'.encode("latin-1"), "UTF-8"),
    "NaN": (b'{"action": NaN}', "NaN"),
    "Infinity": (b'{"number": -Infinity}', "Infinity"),
    "overflowing float": (b'{"number": 1e999}', "1e999"),
    "endless integer": (b'{"number": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "truncated": (b'{"action": "op', "not valid JSON"),
    "not an object": (b"[1, 2]", "object"),
}


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.GITHUB_WEBHOOK_SECRET = "gh-secret"
    settings.GITLAB_WEBHOOK_TOKEN = "gl-token"
    settings.PAGERDUTY_WEBHOOK_SECRET = "pd-secret"
    settings.OPSGENIE_WEBHOOK_TOKEN = "og-token"


def _hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(client, provider: str, body: bytes):
    headers = {
        "github": lambda: {
            "HTTP_X_HUB_SIGNATURE_256": "sha256=" + _hmac("gh-secret", body),
            "HTTP_X_GITHUB_EVENT": "pull_request",
            "HTTP_X_GITHUB_DELIVERY": "d-1",
        },
        "gitlab": lambda: {"HTTP_X_GITLAB_TOKEN": "gl-token", "HTTP_X_GITLAB_EVENT": "Merge Request Hook"},
        "pagerduty": lambda: {"HTTP_X_PAGERDUTY_SIGNATURE": "v1=" + _hmac("pd-secret", body)},
        "opsgenie": lambda: {"HTTP_X_TANDEM_TOKEN": "og-token"},
    }[provider]()
    return client.post(f"/webhooks/{provider}/", data=body, content_type="application/json", **headers)


@pytest.mark.parametrize("provider", ["github", "gitlab", "pagerduty", "opsgenie"])
@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_webhook_body_is_a_clear_400_and_stores_nothing(client, provider, case):
    body, reason = MALFORMED[case]
    response = _post(client, provider, body)
    assert response.status_code == 400, response.content[:200]
    assert reason in response.json()["error"]
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("provider", ["github", "gitlab", "pagerduty", "opsgenie"])
def test_a_webhook_body_over_the_limit_is_a_413(client, settings, provider):
    settings.JSON_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = _post(client, provider, b'{"pad": "' + b"x" * 1100 + b'"}')
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert not WebhookDelivery.objects.exists()


@pytest.fixture
def api():
    team = Team.objects.create(slug="payments", name="Payments")
    _, secret = api_token_create(name="ci", teams=[team])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.parametrize("case", [name for name in MALFORMED if name != "not an object"])
def test_a_malformed_api_body_is_a_clear_400(api, case):
    body, reason = MALFORMED[case]
    response = api.post("/api/v1/deployments", data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert reason in response.json()["error"]


def test_an_api_body_over_the_limit_is_a_413(api, settings):
    settings.JSON_MAX_BODY_BYTES = 1000
    response = api.post("/api/v1/deployments", data=b'{"pad": "' + b"x" * 2000 + b'"}', content_type="application/json")
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["error"]


def _nested(levels: int) -> bytes:
    """A webhook body whose arrays and objects nest `levels` deep."""
    return (
        b'{"action": "opened", "object_kind": "merge_request", "x": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"
    )


@pytest.mark.parametrize("provider", ["github", "gitlab", "pagerduty", "opsgenie"])
def test_a_webhook_one_level_deeper_than_the_limit_is_a_clear_400(client, settings, provider):
    settings.JSON_MAX_DEPTH = 100
    response = _post(client, provider, _nested(101))
    assert response.status_code == 400
    assert response.json()["error"] == "Body nests 101 levels deep; the limit is 100."
    assert not WebhookDelivery.objects.exists()


def test_a_webhook_nested_to_the_limit_is_stored(client, settings):
    settings.JSON_MAX_DEPTH = 100
    response = _post(client, "github", _nested(100))
    assert response.status_code == 202, response.content[:200]
    assert WebhookDelivery.objects.get().body.endswith("]" * 99 + "}")


@pytest.mark.parametrize(
    "body",
    [
        b"18446744073709551615",  # the largest integer orjson keeps
        b'{"id": 18446744073709551616}',  # orjson would round it to a float
        b"[-9223372036854775808, -9223372036854775809]",
        b'{"n": 123456789012345678901234567890, "f": 1.8e19}',
        b'{"title": "\\ud800 alone"}',  # a lone surrogate: orjson refuses it, `json` keeps it (the adapter decides)
        b'{"a": 1, "a": 2, "f": [0.1, 5e-324, -0.0, 1.7976931348623157e308]}',
    ],
)
def test_the_fast_decoder_answers_exactly_what_json_answers(body):
    decoded = decode_json(body)
    assert decoded == json.loads(body)
    assert repr(decoded) == repr(json.loads(body))  # the same types: an integer stays an integer


# What a sender may put in a body: every integer size around orjson's 64 bits, any float, any text (lone
# surrogates too), and numbers spelled as JSON allows (1.0, 1e2, -0, 1e400), nested up to past the limit.
_EDGES = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30)]
_SPELLED = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(_EDGES)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=()), max_size=8)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)


def _answer(decode, body: bytes) -> tuple[str, ...]:
    try:
        return ("decoded", repr(decode(body)))  # repr: the same types too (1 and 1.0, 0.0 and -0.0)
    except JsonRefused as refused:
        return ("refused", str(refused), str(refused.status))


def _with_json_only(body: bytes) -> object:
    return _decoded_by_json(body, max_depth=8)


@settings(max_examples=400, deadline=None)
@given(
    value=_VALUES,
    spelled=st.lists(_SPELLED, max_size=3),
    depth=st.integers(0, 10),
    ascii_only=st.booleans(),
)
def test_the_fast_decoder_answers_what_json_alone_answers_for_any_body(value, spelled, depth, ascii_only):
    items = ", ".join([json.dumps(value, ensure_ascii=ascii_only), *spelled])
    text = "[" * depth + f"[{items}]" + "]" * depth
    body = text.encode("utf-8", errors="surrogatepass")  # a lone surrogate unescaped: not UTF-8, refused by both
    assert _answer(lambda b: decode_json(b, max_depth=8), body) == _answer(_with_json_only, body)


def test_every_provider_fixture_decodes_as_json_decodes_it():
    for path in sorted(FIXTURES_DIR.rglob("*.json")):
        body = path.read_bytes()
        try:
            expected = json.loads(body)
        except ValueError:
            continue
        assert decode_json(body, max_depth=1000) == expected, path


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert decode_json(b'{"title": "' + b"[" * 500 + b'"}', max_depth=2) == {"title": "[" * 500}
    with pytest.raises(JsonRefused):
        decode_json(b"[[[1]]]", max_depth=2)


@pytest.mark.parametrize(
    ("provider", "headers", "reason"),
    [
        ("github", {"HTTP_X_GITHUB_EVENT": "e" * 101}, "event header is 101 characters; at most 100"),
        ("github", {"HTTP_X_GITHUB_DELIVERY": "d" * 201}, "delivery id header is 201 characters; at most 200"),
        ("gitlab", {"HTTP_X_GITLAB_EVENT": "Hook" * 30}, "event header is 120 characters"),
        ("gitlab", {"HTTP_X_GITLAB_EVENT_UUID": "u" * 300}, "delivery id header is 300 characters"),
    ],
)
def test_an_over_long_event_or_delivery_header_is_a_clear_400(client, provider, headers, reason):
    body = b'{"action": "opened", "object_kind": "merge_request"}'
    extra = {
        "github": {
            "HTTP_X_HUB_SIGNATURE_256": "sha256=" + _hmac("gh-secret", body),
            "HTTP_X_GITHUB_EVENT": "pull_request",
            "HTTP_X_GITHUB_DELIVERY": "d-1",
        },
        "gitlab": {"HTTP_X_GITLAB_TOKEN": "gl-token", "HTTP_X_GITLAB_EVENT": "Merge Request Hook"},
    }[provider]
    response = client.post(f"/webhooks/{provider}/", data=body, content_type="application/json", **{**extra, **headers})
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not WebhookDelivery.objects.exists()


def test_an_over_long_action_is_stored_cut_to_its_column(client):
    body = b'{"action": "' + b"a" * 500 + b'"}'
    response = client.post(
        "/webhooks/github/",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256="sha256=" + _hmac("gh-secret", body),
        HTTP_X_GITHUB_EVENT="star",
        HTTP_X_GITHUB_DELIVERY="d-2",
    )
    assert response.status_code == 202
    assert WebhookDelivery.objects.get().action == "a" * 100


# What names a delivery in its record (GitHub's action, GitLab's object_attributes.action or object_kind,
# PagerDuty's event_type, Opsgenie's action) comes from the body: a value no text column stores must not turn the
# insert of the delivery itself into a 500.
UNSTORABLE_NAMES = {
    "github": lambda text: {"action": text},
    "gitlab": lambda text: {"object_kind": "merge_request", "object_attributes": {"action": text}},
    "gitlab kind": lambda text: {"object_kind": text},
    "pagerduty": lambda text: {"event": {"event_type": text}},
    "opsgenie": lambda text: {"action": text},
}


@pytest.mark.parametrize("text", ["open\x00ed", "open\ud800ed"], ids=["NUL", "lone surrogate"])
@pytest.mark.parametrize("shape", sorted(UNSTORABLE_NAMES))
def test_an_unstorable_action_or_event_type_in_the_body_is_no_500(shape, text):
    import json

    from django.test import Client

    client = Client(raise_request_exception=False)
    body = json.dumps(UNSTORABLE_NAMES[shape](text)).encode()  # escaped: valid UTF-8 JSON, as a sender would send
    response = _post(client, shape.split()[0], body)
    assert response.status_code < 500, response.content[:300]
    for delivery in WebhookDelivery.objects.all():
        assert "\x00" not in delivery.action + delivery.event
