"""`make test` runs the suite in two xdist workers: each has Redis databases of its own (tests/conftest.py)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from tests.conftest import CONFIGURED_REDIS_URLS, worker_redis_urls


def _databases(urls: tuple[str, str]) -> set[int]:
    return {int(url.rsplit("/", 1)[1]) for url in urls}


@pytest.mark.parametrize(("broker", "cache"), [(15, 14), (4, 5), (0, 1), (13, 14), (7, 8)])
def test_no_two_workers_share_a_redis_database(broker, cache):
    urls = [worker_redis_urls(f"redis://r:6379/{broker}", f"redis://r:6379/{cache}", n) for n in range(7)]
    assert urls[0] == (f"redis://r:6379/{broker}", f"redis://r:6379/{cache}")  # the first keeps what was configured
    databases = [_databases(pair) for pair in urls]
    assert all(len(pair) == 2 for pair in databases)
    assert len(set().union(*databases)) == 2 * len(databases)
    assert all(0 <= number < 16 for number in set().union(*databases))


def test_the_cache_of_each_other_worker_is_the_next_database_as_settings_derive_it():
    broker, cache = worker_redis_urls("redis://r:6379/15", "redis://r:6379/14", 1)
    assert int(cache.rsplit("/", 1)[1]) == int(broker.rsplit("/", 1)[1]) + 1


def test_more_workers_than_redis_databases_is_refused():
    with pytest.raises(pytest.UsageError):
        worker_redis_urls("redis://r:6379/15", "redis://r:6379/14", 8)


def test_this_process_uses_the_redis_databases_of_its_worker():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    from django.core.cache import cache

    from config.celery import app

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        broker, cache_url = worker_redis_urls(*CONFIGURED_REDIS_URLS, int(worker.removeprefix("gw")))
    else:
        broker, cache_url = settings.REDIS_URL, settings.REDIS_CACHE_URL
    assert os.environ["REDIS_URL"] == settings.REDIS_URL == settings.CELERY_BROKER_URL == app.conf.broker_url == broker
    assert cache_url == settings.REDIS_CACHE_URL
    assert cache._servers == [cache_url]  # the connection the code under test uses
