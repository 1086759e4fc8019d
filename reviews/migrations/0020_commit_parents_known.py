from django.db import migrations, models


def mark_known(apps, schema_editor):
    """Commits stored with parents had them from the VCS; an empty list may be a root or a push: not known."""
    Commit = apps.get_model("reviews", "Commit")
    known = [pk for pk, parents in Commit.objects.values_list("pk", "parents").iterator() if parents]
    for start in range(0, len(known), 500):
        Commit.objects.filter(pk__in=known[start : start + 500]).update(parents_known=True)


class Migration(migrations.Migration):

    dependencies = [
        ("reviews", "0019_pull_request_evaluation_owed"),
    ]

    operations = [
        migrations.AddField(
            model_name="commit",
            name="parents_known",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_known, migrations.RunPython.noop),
    ]
