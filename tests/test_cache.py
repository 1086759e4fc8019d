"""The Redis cache (config.cache): one client per connection pool, not one per call, and the same behaviour."""

from __future__ import annotations

from config.cache import RedisCache
from tests.test_broker import PrivateRedis, needs_redis_server, private_redis  # noqa: F401  (a fixture)

pytestmark = needs_redis_server


def test_the_cache_works_with_one_client_per_pool(private_redis: PrivateRedis):  # noqa: F811
    cache = RedisCache(private_redis.url, {"OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5}})
    assert cache.add("mark", 1, timeout=30) is True
    assert cache.add("mark", 2, timeout=30) is False  # what the queued marks rely on
    assert cache.get("mark") == 1
    cache.delete("mark")
    assert cache.get("mark") is None
    assert cache._cache.get_client(write=True) is cache._cache.get_client(write=True)
