"""A team's chat webhook URL is a secret (whoever has it posts to the channel): the admin shows whether it is set,
never the URL, with a field to replace it and a box to remove it; the audit trail and the API never carry it."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from reviews.models import AuditEvent, Team
from tests.reviews.admin_world import page_data, team_rows

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/services/T000/B000/s3cretPartOfTheUrl"  # loopback: the tests allow it
NEW_HOOK = "http://127.0.0.1:9/services/T000/B000/aN0therSecretPart"


@pytest.fixture
def shop() -> dict[str, Any]:
    rows = team_rows("shop")
    Team.objects.filter(pk=rows["team"].pk).update(slack_webhook_url=HOOK)
    return rows


def _save(client: Any, url: str, **changes: str) -> Any:
    data = page_data(client.get(url), Team)
    data.update({name: [value] for name, value in changes.items()})
    return client.post(url, data)


def test_the_team_page_of_the_admin_shows_whether_the_chat_webhook_is_set_never_the_url(client, shop):
    client.force_login(shop["lead_user"])
    page = client.get(f"/admin/reviews/team/{shop['team'].pk}/change/").content.decode()
    assert "s3cretPartOfTheUrl" not in page
    assert "Currently set." in page
    assert 'name="clear_slack_webhook_url"' in page


def test_the_url_is_kept_when_left_empty_replaced_when_typed_and_removed_on_request(client, shop):
    team = shop["team"]
    url = f"/admin/reviews/team/{team.pk}/change/"
    client.force_login(shop["lead_user"])
    assert _save(client, url, review_within_hours="8").status_code == 302
    team.refresh_from_db()
    assert (team.slack_webhook_url, team.review_within_hours) == (HOOK, 8)
    assert _save(client, url, slack_webhook_url=NEW_HOOK).status_code == 302
    team.refresh_from_db()
    assert team.slack_webhook_url == NEW_HOOK
    assert _save(client, url, clear_slack_webhook_url="on").status_code == 302
    team.refresh_from_db()
    assert team.slack_webhook_url == ""


def test_a_url_to_a_private_address_is_still_refused(client, shop):
    client.force_login(shop["lead_user"])
    response = _save(client, f"/admin/reviews/team/{shop['team'].pk}/change/", slack_webhook_url="http://10.1.2.3/x")
    assert response.status_code == 200  # the form again, with the error
    assert Team.objects.get(pk=shop["team"].pk).slack_webhook_url == HOOK


def test_the_audit_trail_records_that_it_changed_never_the_url(client, shop, django_user_model):
    team = shop["team"]
    client.force_login(shop["lead_user"])
    _save(client, f"/admin/reviews/team/{team.pk}/change/", slack_webhook_url=NEW_HOOK)
    event = AuditEvent.objects.filter(action="agreement.change").latest("pk")
    assert event.changes == {"slack_webhook_url": {"before": "set (…eUrl)", "after": "set (…Part)"}}
    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_superuser(username="root", password="x"))  # noqa: S106
    for path in ["/api/v1/audit-events", f"/api/v1/teams/{team.slug}", "/api/v1/teams"]:
        body = api.get(path).content.decode()
        assert "s3cret" not in body and "aN0ther" not in body, path
    audit_pages = client.get("/admin/reviews/auditevent/").content.decode()
    assert "aN0ther" not in audit_pages
