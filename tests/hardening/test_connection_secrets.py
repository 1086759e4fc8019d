"""Connection secrets are encrypted at rest, readable after a key rotation, encrypted by the migration for rows
stored before, and never shown back in the admin: set / not set, and a field to replace them."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.db.migrations.executor import MigrationExecutor

from reviews.crypto import SecretUnreadable
from reviews.models import Connection

TOKEN = "ghp_plaintext-token-0123456789"
SECRET = "webhook-secret-abcdef"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _stored(pk: int) -> tuple[str, str]:
    with db.cursor() as cursor:
        cursor.execute("SELECT api_token, webhook_secret FROM reviews_connection WHERE id = %s", [pk])
        return cursor.fetchone()


def _connection(**secrets: str) -> Connection:
    return Connection.objects.create(
        provider="github", name="GHE", base_url="https://ghe.example.com/api/v3", **secrets
    )


@pytest.mark.django_db
def test_secrets_are_stored_encrypted_and_read_back_plain():
    connection = _connection(api_token=TOKEN, webhook_secret=SECRET)
    api_token, webhook_secret = _stored(connection.pk)
    assert TOKEN not in api_token and SECRET not in webhook_secret
    assert api_token.startswith("gAAAAA")  # a Fernet token
    again = Connection.objects.get(pk=connection.pk)
    assert (again.api_token, again.webhook_secret) == (TOKEN, SECRET)


@pytest.mark.django_db
def test_an_unset_secret_stays_empty_so_set_or_not_is_a_plain_query():
    connection = _connection(api_token=TOKEN)
    assert _stored(connection.pk)[1] == ""
    assert list(Connection.objects.exclude(webhook_secret="")) == []
    assert list(Connection.objects.exclude(api_token="")) == [connection]


@pytest.mark.django_db
def test_a_key_is_rotated_by_putting_the_new_one_first_then_rotating(settings):
    settings.CONNECTION_SECRET_KEYS = [OLD_KEY]
    connection = _connection(api_token=TOKEN, webhook_secret=SECRET)
    settings.CONNECTION_SECRET_KEYS = [NEW_KEY, OLD_KEY]
    assert Connection.objects.get(pk=connection.pk).api_token == TOKEN  # the old key still decrypts
    call_command("connection_secrets_rotate")
    settings.CONNECTION_SECRET_KEYS = [NEW_KEY]
    again = Connection.objects.get(pk=connection.pk)
    assert (again.api_token, again.webhook_secret) == (TOKEN, SECRET)


@pytest.mark.django_db
def test_removing_a_key_before_rotating_fails_loudly(settings):
    settings.CONNECTION_SECRET_KEYS = [OLD_KEY]
    connection = _connection(api_token=TOKEN)
    settings.CONNECTION_SECRET_KEYS = [NEW_KEY]
    with pytest.raises(SecretUnreadable):
        Connection.objects.get(pk=connection.pk)


@pytest.mark.django_db
def test_a_connection_secret_still_verifies_webhooks(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    _connection(webhook_secret=SECRET)
    body = b'{"zen": "hi", "hook_id": 1}'
    response = client.post(
        "/webhooks/github/",
        data=body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT="ping",
        HTTP_X_GITHUB_DELIVERY="d-1",
        HTTP_X_HUB_SIGNATURE_256="sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    )
    assert response.status_code == 200


@pytest.mark.slow(25)
@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_secrets_stored_in_plain_text():
    executor = MigrationExecutor(db)
    executor.migrate([("reviews", "0011_team_chat_webhook_public_only")])
    old = executor.loader.project_state([("reviews", "0011_team_chat_webhook_public_only")]).apps
    pk = (
        old.get_model("reviews", "Connection")
        .objects.create(provider="github", name="old", base_url="https://ghe.example.com", api_token=TOKEN)
        .pk
    )
    assert _stored(pk) == (TOKEN, "")
    executor = MigrationExecutor(db)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert TOKEN not in _stored(pk)[0]
    assert _stored(pk)[1] == ""
    assert Connection.objects.get(pk=pk).api_token == TOKEN


@pytest.fixture
def superuser_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", password="x", email="root@example.com")  # noqa: S106
    client.force_login(admin)
    return client


def _form(connection: Connection, **changes: str) -> dict[str, str]:
    return {
        "provider": connection.provider,
        "name": connection.name,
        "base_url": connection.base_url,
        "web_url": "",
        "api_token": "",
        "webhook_secret": "",
        **changes,
    }


@pytest.mark.django_db
def test_the_admin_shows_whether_a_secret_is_set_never_the_secret(superuser_client):
    connection = _connection(api_token=TOKEN)
    page = superuser_client.get(f"/admin/reviews/connection/{connection.pk}/change/").content.decode()
    assert TOKEN not in page
    assert "Currently set." in page and "Currently not set." in page
    listing = superuser_client.get("/admin/reviews/connection/").content.decode()
    assert TOKEN not in listing and "not set" in listing


@pytest.mark.django_db
def test_the_admin_keeps_a_secret_left_empty_replaces_a_typed_one_and_clears_on_request(superuser_client):
    connection = _connection(api_token=TOKEN, webhook_secret=SECRET)
    url = f"/admin/reviews/connection/{connection.pk}/change/"
    assert superuser_client.post(url, _form(connection)).status_code == 302
    connection.refresh_from_db()
    assert (connection.api_token, connection.webhook_secret) == (TOKEN, SECRET)
    assert superuser_client.post(url, _form(connection, api_token="ghp_new")).status_code == 302
    connection.refresh_from_db()
    assert (connection.api_token, connection.webhook_secret) == ("ghp_new", SECRET)
    assert superuser_client.post(url, _form(connection, clear_webhook_secret="on")).status_code == 302
    connection.refresh_from_db()
    assert (connection.api_token, connection.webhook_secret) == ("ghp_new", "")
