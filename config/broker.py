"""The Redis broker transport, and how a worker runs on it, so that a Redis restart does not stop the worker.

Every worker runs with WORKER_OPTIONS, and with remote control off (settings): nothing in it subscribes to Redis
pub/sub. redis-py 8 reads a subscription with no timeout at all, and after a Redis restart it re-subscribed on a new
connection and waited there, inside the worker's event loop, for a message that never came: the worker neither took
tasks nor enforced time limits any more (py-spy: the MainProcess in PubSub.parse_response, from kombu's LISTEN
handler). The worker uses none of what needs pub/sub (remote control, gossip, mingle, heartbeats).

The transport is kombu's, with two defects fixed that stopped the worker after a Redis restart.

Both need tasks running when Redis goes away, as there nearly always are: a task's message is acknowledged when the
task ends (acks_late), so until then the worker holds it as "delivered, not acknowledged".

1. An acknowledgement that fails (Redis is down) left the message counted as unacknowledged. Once as many failed as
   the worker may hold (the prefetch limit: 2 with `-c 2`), it never asked Redis for another message, so it never
   noticed that its connection was gone: it waited, idle, for good. Here a failed acknowledgement (or rejection)
   still frees its place, and the next BRPOP finds the connection lost and the worker reconnects. The message
   itself stays in Redis' unacknowledged set, which redelivers it after the visibility timeout.
2. On the connection error, the worker (celery 5.7) collects the old connection, which detaches its transport, and
   then closes it. A channel with messages not acknowledged then rebuilt its Redis client from the detached
   transport: `AttributeError: 'NoneType' object has no attribute 'hostname'`, which is not an error the worker
   recovers from: it logged "Unrecoverable error" and exited. Here that channel raises redis' ConnectionError.

bench/redis_restart.py reproduces both; tests/test_broker.py shows each on kombu's own transport.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

WORKER_OPTIONS = ("--without-gossip", "--without-mingle", "--without-heartbeat")


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except BaseException:
            virtual.QoS.ack(self, delivery_tag)  # frees its place; Redis still holds it as unacknowledged
            raise

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]
        except BaseException:
            virtual.QoS.ack(self, delivery_tag)
            raise


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
