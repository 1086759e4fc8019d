"""Beat's periodic jobs become rows a superuser edits in the admin: the defaults in CELERY_BEAT_SCHEDULE are created
(only those missing; an edited one is left alone). Beat's scheduler does the same at every start."""

from django.conf import settings
from django.db import migrations

from reviews.services.schedules import periodic_task_defaults_create


def create_defaults(apps, schema_editor):
    periodic_task_defaults_create(
        schedule=settings.CELERY_BEAT_SCHEDULE,
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0021_pairing_participant_stays"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
