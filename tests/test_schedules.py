"""Beat's periodic jobs are rows a superuser edits in the admin (django-celery-beat). CELERY_BEAT_SCHEDULE is the one
source of the defaults: a migration creates them, beat creates the ones missing at start, and neither ever
overwrites what an admin changed."""

from __future__ import annotations

import json
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.beat import DefaultsOnceScheduler
from config.celery import app
from reviews.services.schedules import periodic_task_defaults_create

pytestmark = pytest.mark.django_db


def create_defaults() -> list[str]:
    return periodic_task_defaults_create(
        schedule=settings.CELERY_BEAT_SCHEDULE, periodic_task_model=PeriodicTask, interval_model=IntervalSchedule
    )


@pytest.fixture(autouse=True)
def defaults() -> None:
    """What the migration made (a transactional test elsewhere may have emptied the tables since)."""
    create_defaults()


def test_the_migration_creates_every_default_as_in_the_settings():
    PeriodicTask.objects.all().delete()
    migration = import_module("reviews.migrations.0022_periodic_task_defaults")
    migration.create_defaults(django_apps, None)
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == set(settings.CELERY_BEAT_SCHEDULE)
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        row = PeriodicTask.objects.get(name=name)
        assert row.task == entry["task"]
        assert row.enabled
        assert (row.interval.every, row.interval.period) == (max(1, round(float(entry["schedule"]))), "seconds")
        assert json.loads(row.args) == list(entry.get("args", []))
        assert row.expire_seconds == entry.get("options", {}).get("expires")


def test_creating_the_defaults_again_changes_nothing_an_admin_edited():
    reconcile = PeriodicTask.objects.get(name="reconcile-verdicts")
    reconcile.interval = IntervalSchedule.objects.create(every=300, period="seconds")
    reconcile.save()
    PeriodicTask.objects.filter(name="sync-gitlab").update(enabled=False)
    PeriodicTask.objects.filter(name="refresh-codeowners").delete()

    assert create_defaults() == ["refresh-codeowners"]  # a deleted default comes back; switch it off instead
    assert create_defaults() == []
    assert PeriodicTask.objects.get(name="reconcile-verdicts").interval.every == 300
    assert not PeriodicTask.objects.get(name="sync-gitlab").enabled


def test_beat_schedules_what_the_database_says_not_the_settings(monkeypatch):
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)  # the test's own
    reconcile = PeriodicTask.objects.get(name="reconcile-verdicts")
    reconcile.interval = IntervalSchedule.objects.create(every=300, period="seconds")
    reconcile.save()
    PeriodicTask.objects.filter(name="fetch-missing-facts").delete()

    scheduler = DefaultsOnceScheduler(app=app)
    entries = scheduler.schedule
    assert entries["reconcile-verdicts"].schedule.run_every.total_seconds() == 300
    assert "fetch-missing-facts" in entries  # created again from the settings at start
    assert "celery.backend_cleanup" not in entries  # no result backend, nothing to clean


def test_an_interval_beat_cannot_express_is_refused_by_name():
    with pytest.raises(ValueError, match="nightly: only interval schedules"):
        periodic_task_defaults_create(
            schedule={"nightly": {"task": "x", "schedule": "0 4 * * *"}},
            periodic_task_model=PeriodicTask,
            interval_model=IntervalSchedule,
        )


def test_only_superusers_see_or_edit_schedules(client):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="django_celery_beat"))
    client.force_login(staff)
    task = PeriodicTask.objects.get(name="reconcile-verdicts")
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 403
    assert client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/").status_code == 403
    assert client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/delete/", {"post": "yes"}).status_code == 403
    assert PeriodicTask.objects.filter(pk=task.pk).exists()

    superuser = User.objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/").status_code == 200
    assert b"Periodic tasks" in client.get("/admin/").content
