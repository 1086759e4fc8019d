"""Connection secrets encrypted at rest: widen the columns, encrypt what is stored, then read them through the
encrypting field. Empty values stay empty."""

from django.db import migrations, models

import reviews.fields
from reviews.crypto import secret_decrypt, secret_encrypt

SECRET_FIELDS = ("api_token", "webhook_secret")


def _convert(apps, convert):
    Connection = apps.get_model("reviews", "Connection")
    for row in Connection.objects.values("pk", *SECRET_FIELDS):
        changed = {name: convert(row[name]) for name in SECRET_FIELDS if row[name]}
        if changed:
            Connection.objects.filter(pk=row["pk"]).update(**changed)


def encrypt(apps, schema_editor):
    _convert(apps, secret_encrypt)


def decrypt(apps, schema_editor):
    _convert(apps, secret_decrypt)


def _plain(help_text=""):
    return models.TextField(blank=True, help_text=help_text)


def _encrypted(help_text=""):
    return reviews.fields.EncryptedTextField(blank=True, help_text=help_text)


WEBHOOK_HELP = "Overrides GITHUB_WEBHOOK_SECRET / GITLAB_WEBHOOK_TOKEN."


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0011_team_chat_webhook_public_only"),
    ]

    operations = [
        migrations.AlterField(model_name="connection", name="api_token", field=_plain()),
        migrations.AlterField(model_name="connection", name="webhook_secret", field=_plain(WEBHOOK_HELP)),
        migrations.RunPython(encrypt, decrypt),
        migrations.AlterField(model_name="connection", name="api_token", field=_encrypted()),
        migrations.AlterField(model_name="connection", name="webhook_secret", field=_encrypted(WEBHOOK_HELP)),
    ]
