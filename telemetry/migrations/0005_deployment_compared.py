from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("telemetry", "0004_append_only_base_manager"),
    ]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="compared",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="What the VCS compare said when it was last asked: base, head, ETag and the commits' shas.",
            ),
        ),
    ]
