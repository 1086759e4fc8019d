"""Whether the web process hands a webhook delivery to a worker itself is read without Celery's namespaced lookup on
every request (`reviews.services.enqueue.tasks_run_inline`), and answers what `app.conf.task_always_eager` answers
however the setting changes at run time: on `app.conf` (as the test session and the worker test flip it), or in
Django's settings (override_settings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.celery import app as celery_app
from reviews.services.enqueue import deliveries_handed_over_by_request, tasks_run_inline

_SPELLINGS = ("task_always_eager", "CELERY_TASK_ALWAYS_EAGER", "CELERY_ALWAYS_EAGER")


@pytest.fixture
def no_run_time_value() -> Iterator[None]:
    """The production state: nothing set on app.conf at run time, so Celery reads Django's setting."""
    changes = celery_app.conf.changes
    kept = {key: changes.pop(key) for key in _SPELLINGS if key in changes}
    yield
    for key in _SPELLINGS:
        changes.pop(key, None)
    changes.update(kept)


@pytest.mark.parametrize("eager", [True, False])
def test_a_value_set_on_the_celery_app_at_run_time_is_read_at_once(settings, eager):
    settings.WEBHOOK_HAND_OVER = "dispatcher"
    settings.CELERY_TASK_ALWAYS_EAGER = not eager
    previous = celery_app.conf.task_always_eager
    try:
        for value in (eager, not eager, eager):
            celery_app.conf.task_always_eager = value
            assert tasks_run_inline() is value is bool(celery_app.conf.task_always_eager)
            assert deliveries_handed_over_by_request() is value
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.mark.parametrize("spelling", _SPELLINGS)
def test_every_spelling_celery_reads_on_the_app_wins_over_djangos_setting(settings, no_run_time_value, spelling):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.changes[spelling] = True
    assert celery_app.conf.task_always_eager is True
    assert tasks_run_inline() is True


def test_without_a_run_time_value_djangos_setting_is_read_as_it_changes(settings, no_run_time_value):
    settings.WEBHOOK_HAND_OVER = "dispatcher"
    for eager in (True, False, True, False):
        settings.CELERY_TASK_ALWAYS_EAGER = eager
        assert bool(celery_app.conf.task_always_eager) is eager
        assert tasks_run_inline() is eager
        assert deliveries_handed_over_by_request() is eager


def test_without_djangos_setting_celerys_default_is_read(settings, no_run_time_value):
    del settings.CELERY_TASK_ALWAYS_EAGER
    assert tasks_run_inline() is bool(celery_app.conf.task_always_eager) is False


def test_the_hand_over_in_the_request_is_chosen_whatever_celery_says(settings, no_run_time_value):
    settings.WEBHOOK_HAND_OVER = "request"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert deliveries_handed_over_by_request() is True
    settings.WEBHOOK_HAND_OVER = "dispatcher"
    assert deliveries_handed_over_by_request() is False


@pytest.mark.parametrize("spelling", ["task_always_eager", "CELERY_TASK_ALWAYS_EAGER"])
def test_defaults_added_to_the_celery_app_before_djangos_settings_are_read_as_celery_reads_them(
    settings, no_run_time_value, spelling
):
    """`app.conf.add_defaults` puts its mapping in front of Django's settings: Celery answers from it, so must this."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf = celery_app.conf
    conf.add_defaults({spelling: True})
    try:
        assert conf.task_always_eager is True
        assert tasks_run_inline() is True
    finally:
        conf.maps.pop(1)
        conf.defaults.pop(0)
    assert tasks_run_inline() is bool(conf.task_always_eager) is False
