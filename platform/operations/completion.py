"""Operation completions pushed over Redis: the agent publishes, a request waiting on ?wait= wakes.

A message only says "read the row again now"; the Operation row stays the truth. A lost,
late or forged message costs at most one slow poll (a waiter re-reads the row at least every
SLOW_POLL_SECONDS) and can never make a request report a state the row does not hold.
"""

import contextlib
import logging
import os
import threading
import time

from config.celery import app as celery_app

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "berth:op:"
# How often a waiter re-reads the row with no message: bounds what a lost publish costs.
SLOW_POLL_SECONDS = 0.5
# How long a waiter waits for Redis to confirm its subscription before polling instead.
SUBSCRIBE_TIMEOUT_SECONDS = 2.0

_clients: dict[tuple, object] = {}
# Subscriptions kept between waits (per process and broker URL): redis-py's PubSub.close()
# drops its connection, so a new one per wait opened a TCP connection, AUTH and HELLO every
# time (a third of a wait's own CPU, twice per `docker run -d`). One waiter uses one at a time.
MAX_IDLE_SUBSCRIPTIONS = 16
_idle: list[tuple[tuple, object]] = []
_idle_lock = threading.Lock()


def broker_client():
    """The broker's Redis client, one per process and broker URL (completions, fair turns).

    The broker's own connection settings (password, TLS) serve these messages too, as for the
    agent's nonces (agent/admission.py). redis-py's pool is thread-safe, and a forked pool
    process must not share its parent's sockets: the key holds the pid."""
    key = (os.getpid(), celery_app.conf.broker_url)
    if key not in _clients:
        connection = celery_app.connection_for_write()
        # One attempt, no back-off: without Redis a waiter polls the row and a publisher logs;
        # kombu's default retries would hold either for about 6 s per call.
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        _clients[key] = connection.default_channel.client
    return _clients[key]


def channel(op_id) -> str:
    """The Redis channel on which operation `op_id`'s completion is announced."""
    return f"{CHANNEL_PREFIX}{op_id}"


def publish(op_id, state: str) -> None:
    """Announce that operation `op_id` reached `state` (after its row was committed)."""
    try:
        broker_client().publish(channel(op_id), state)
    except Exception as err:  # waiters fall back to reading the row; the outcome is recorded
        log.info("could not announce the end of operation %s: %s", op_id, err)


class Listener:
    """A subscription to one operation's channel, made before the waiter reads the row.

    Subscribing first closes the race with the agent: a completion committed before the
    subscription is seen by the read that follows it, one committed after wakes `wait()`.
    Without Redis it degrades to sleeping: the caller's loop then polls the row.
    """

    def __init__(self, op_id):
        self.op_id = op_id
        self.pubsub = None
        self.pause = 0.005  # without a subscription: the short, backing-off polls of old

    def __enter__(self):
        kept = _take_kept()
        # A kept connection may have died with a restarted Redis: then once more on a new one.
        for pubsub in ([kept] if kept is not None else []) + [None]:
            if self._subscribe(pubsub):
                return self
        return self

    def _subscribe(self, pubsub) -> bool:
        try:
            pubsub = pubsub or broker_client().pubsub()
            pubsub.subscribe(channel(self.op_id))
            # Wait for the server's confirmation: only then is no later publish missed. A kept
            # subscription may first hand over what its last waiter left (its unsubscribe
            # confirmation, a late announcement): not ours, skipped.
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                msg = pubsub.get_message(timeout=deadline - time.monotonic())
                if msg and msg.get("type") == "subscribe" and self._ours(msg):
                    self.pubsub = pubsub
                    return True
            log.info("no subscription confirmed for operation %s; polling", self.op_id)
        except Exception as err:
            log.info("cannot subscribe to operation %s (%s); polling its row", self.op_id, err)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()
        return False

    def _ours(self, msg) -> bool:
        name = msg.get("channel")
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        return name == channel(self.op_id)

    def wait(self, seconds: float) -> bool:
        """Return when a message arrives for the operation (True), or after `seconds` (False)."""
        if seconds <= 0:
            return False
        if self.pubsub is None:
            # Most operations finish within tens of milliseconds: poll soon, then back off.
            time.sleep(min(seconds, self.pause))
            self.pause = min(self.pause * 1.5, 0.1)
            return False
        deadline = time.monotonic() + seconds
        try:
            while True:
                msg = self.pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if msg and msg.get("type") == "message" and self._ours(msg):
                    return True
                if msg is None or time.monotonic() >= deadline:
                    return False
        except Exception as err:  # Redis went away mid-wait: poll from here on
            log.info("lost the subscription to operation %s: %s", self.op_id, err)
            self._close()
            return False

    def _close(self) -> None:
        if self.pubsub is not None:
            # Closing a broken connection may fail; it is dropped either way.
            with contextlib.suppress(Exception):
                self.pubsub.close()
            self.pubsub = None

    def __exit__(self, *exc):
        if self.pubsub is not None:
            pubsub, self.pubsub = self.pubsub, None
            _give_back(pubsub, channel(self.op_id))
        return False


def _key() -> tuple:
    return (os.getpid(), celery_app.conf.broker_url)


def _take_kept():
    """A kept subscription of this process and broker, or None."""
    key = _key()
    with _idle_lock:
        for i in range(len(_idle) - 1, -1, -1):
            if _idle[i][0] == key:
                return _idle.pop(i)[1]
    return None


def _give_back(pubsub, name: str) -> None:
    """Unsubscribe and keep the subscription's connection for the next waiter (or close it)."""
    try:
        pubsub.unsubscribe(name)
    except Exception:  # a broken connection is not kept
        with contextlib.suppress(Exception):
            pubsub.close()
        return
    with _idle_lock:
        if len(_idle) < MAX_IDLE_SUBSCRIPTIONS:
            _idle.append((_key(), pubsub))
            return
    with contextlib.suppress(Exception):
        pubsub.close()
