"""The generation of who may do what: one value in Redis, changed on every change to users,
API tokens, teams, memberships, roles and role bindings (issue 15).

Token lookups and grants are cached per process only together with the generation read at the
start of the request, before the database: an entry is used only while Redis still holds that
generation. A change sets a new generation when it is saved and again when its transaction
commits, so the request after a revocation (or a removed binding, a deactivated user) reads the
database again: no revocation delay. Reading it is one GET on a kept connection per request
(about a tenth of a millisecond), against a token query and a grants query (about 1.5 ms each).

When Redis cannot be reached nothing is cached (every request reads the database), this
process's entries are dropped, and a change that could not be announced is announced again at
the next request that reaches Redis. Entries also expire after MAX_AGE seconds: a backstop for a
change made behind the ORM's back (raw SQL), which no signal reports.
"""

import logging
import os
import secrets
import threading
import time

import redis
from django.db import transaction

log = logging.getLogger(__name__)

KEY = "berth:authz:generation"
MAX_AGE = 30.0
# After Redis failed, this long without trying again (nothing is cached meanwhile).
RETRY_AFTER = 1.0
TIMEOUT = 1.0

_clients: dict[tuple, redis.Redis] = {}
_down_until: dict[tuple, float] = {}  # per client: the Redis that failed, not a new one
_unannounced = [False]
_caches: list["GenerationCache"] = []


def _key() -> tuple:
    # Per process: a forked worker must not share its parent's sockets. The broker's Redis is
    # the one every web, agent and control process of an installation already shares.
    from config.celery import app as celery_app

    return (os.getpid(), celery_app.conf.broker_url)


def _down(key: tuple | None = None) -> bool:
    return time.monotonic() < _down_until.get(key or _key(), 0.0)


def _client(key: tuple | None = None) -> redis.Redis:
    from config.celery import app as celery_app

    key = key or _key()
    url = key[1]
    if key not in _clients:
        tls = celery_app.conf.broker_use_ssl or {}
        _clients[key] = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, **tls
        )
    return _clients[key]


def _failed(err: Exception, key: tuple | None = None) -> None:
    key = key or _key()
    was_up = key not in _down_until
    _down_until[key] = time.monotonic() + RETRY_AFTER
    for cache in _caches:
        cache.clear()
    if was_up:
        log.warning("authorization cache off while Redis is unreachable (%s)", err)


def current() -> bytes | None:
    """The generation now; None when Redis cannot be reached (then cache nothing)."""
    # The key once per request: reading the broker's URL from Celery's configuration costs
    # about 70 microseconds each time (issue 15).
    key = _key()
    if _down(key):
        return None
    try:
        client = _client(key)
        if _unannounced[0]:
            _announce()
        value = client.get(KEY)
        if value is None:  # a new (or emptied) Redis: start a generation nobody cached under
            client.set(KEY, secrets.token_hex(8), nx=True)
            value = client.get(KEY)
        _down_until.pop(key, None)
        return value
    except redis.RedisError as err:
        _failed(err, key)
        return None


def _announce() -> None:
    _client().set(KEY, secrets.token_hex(8))
    _unannounced[0] = False


def _announce_safely() -> None:
    if _down():
        _unannounced[0] = True
        return
    try:
        _announce()
    except redis.RedisError as err:
        _unannounced[0] = True
        _failed(err)


def bump(**_signal_kwargs) -> None:
    """A change to who may do what: every cached token and grant is stale from now on, and
    again once the current transaction (if any) commits."""
    for cache in _caches:
        cache.clear()
    _announce_safely()
    if transaction.get_connection().in_atomic_block:
        # Readers between now and the commit still see the old rows: whatever they cache
        # under the generation set above is dropped by this second one.
        transaction.on_commit(_announce_safely)


class GenerationCache:
    """A per-process map whose entries hold only while the generation they were read under
    is current (and for at most MAX_AGE seconds)."""

    def __init__(self, size: int = 10000):
        self._data: dict = {}
        self._size = size
        self._lock = threading.Lock()
        _caches.append(self)

    def get(self, key, generation):
        """The value cached for `key` under `generation`, or None."""
        if generation is None:
            return None
        entry = self._data.get(key)
        if entry is None or entry[0] != generation or time.monotonic() - entry[1] > MAX_AGE:
            return None
        return entry[2]

    def put(self, key, generation, value) -> None:
        """Remember `value`, read from the database after `generation` was read."""
        if generation is None:
            return
        with self._lock:
            if len(self._data) >= self._size:
                self._data.clear()
            self._data[key] = (generation, time.monotonic(), value)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()
