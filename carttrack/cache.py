"""Django's Redis cache, but a Redis outage is a cache miss, never a failed page.

The cache holds only what can be computed again (the alert badge's counts and version tokens,
a snapshot's figure JSON, rule-review tables, import progress): with Redis down a read gives the
default and a write does nothing, each logged, so a clinician's pages keep working while the
task queue waits for Redis (SECURITY.md, faults). Only connection errors are forgiven; anything
else (a bad key, a pickling error) still raises.
"""

from __future__ import annotations

import logging

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
_OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError)


def _forgiving(name: str, fallback):
    original = getattr(RedisCache, name)

    def method(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except _OUTAGE:
            logger.warning("Cache unavailable: %s treated as a miss", name, exc_info=True)
            return fallback(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = original.__doc__
    return method


class ForgivingRedisCache(RedisCache):
    get = _forgiving("get", lambda key, default=None, version=None: default)
    get_many = _forgiving("get_many", lambda keys, version=None: {})
    has_key = _forgiving("has_key", lambda key, version=None: False)
    add = _forgiving("add", lambda *args, **kwargs: False)
    set = _forgiving("set", lambda *args, **kwargs: None)
    set_many = _forgiving("set_many", lambda data, *args, **kwargs: list(data))
    touch = _forgiving("touch", lambda *args, **kwargs: False)
    delete = _forgiving("delete", lambda *args, **kwargs: False)
    delete_many = _forgiving("delete_many", lambda *args, **kwargs: None)
