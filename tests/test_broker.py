"""A Redis restart with tasks running does not stop the worker (config/broker.py, bench/redis_restart.py): what the
worker does with the lost connection fails only as a lost connection, which it recovers from, and leaves it free to
ask for the next message, which is how it notices the loss. Each test fails on kombu's own transport."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue
from kombu.message import Message

from config.broker import WORKER_OPTIONS, Transport

REDIS_SERVER = shutil.which("redis-server")
REPOSITORY = Path(__file__).resolve().parent.parent

needs_redis_server = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")

QUEUE = Queue("broker-test", Exchange("broker-test", "direct"), "broker-test")


class PrivateRedis:
    """A redis-server of this test's own on a free port, keeping nothing: never the machine's shared one."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(  # noqa: S603
            [*command, "--appendonly", "no", "--dir", str(directory)], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.kill()


def _taken(channel: object) -> Message:
    message = QUEUE(channel).get(no_ack=False)
    assert message is not None
    return message


def _lost_with_tasks_running(server: PrivateRedis, transport: type[Transport]) -> tuple[Connection, Message]:
    """The worker's state when Redis dies: tasks running (messages taken, not yet acknowledged: acks_late) on more
    than one channel, and a BRPOP waiting for the next message. Then what celery 5.7 does on the connection error:
    collect the connection, which detaches its transport. Redis being gone, closing the channels fails, and the one
    waiting on BRPOP is left open, as in the worker's logs."""
    connection = Connection(server.url, transport=transport)
    with connection.Producer() as producer:
        for number in range(2):
            producer.publish({"n": number}, exchange=QUEUE.exchange, routing_key="broker-test", declare=[QUEUE])
    waiting = connection.default_channel
    running = _taken(waiting)
    _taken(connection.channel())
    connection.Consumer(QUEUE, callbacks=[lambda body, message: None]).consume()
    with pytest.raises(socket.timeout):
        connection.drain_events(timeout=0.2)
    server.kill()
    connection.collect()
    assert not waiting.closed
    return connection, running


@needs_redis_server
def test_a_task_acknowledged_while_redis_is_down_frees_its_place_for_the_next_message(
    private_redis: PrivateRedis,
) -> None:
    connection = Connection(private_redis.url, transport=Transport)
    recoverable = connection.connection_errors + connection.channel_errors
    with connection.Producer() as producer:
        producer.publish({"n": 1}, exchange=QUEUE.exchange, routing_key="broker-test", declare=[QUEUE])
    channel = connection.default_channel
    channel.basic_qos(prefetch_size=0, prefetch_count=1, apply_global=False)  # the worker's limit, here one message
    running = _taken(channel)
    assert not channel.qos.can_consume()
    private_redis.kill()

    with pytest.raises(recoverable):
        running.ack()
    # Free again: the worker asks for the next message, finds the connection lost and reconnects (kombu's own
    # transport kept the place taken, and the worker waited for good).
    assert channel.qos.can_consume()


@needs_redis_server
def test_closing_a_connection_lost_with_tasks_running_fails_only_as_a_lost_connection(
    private_redis: PrivateRedis,
) -> None:
    connection, running = _lost_with_tasks_running(private_redis, Transport)
    recoverable = connection.connection_errors + connection.channel_errors

    # What the worker does next: close the lost connection, ignoring connection errors (kombu's own transport
    # raised an AttributeError here, which the worker took for "Unrecoverable error" and exited), then acknowledge
    # the running task when it ends.
    connection.close()
    with pytest.raises(recoverable):
        running.ack()


def test_every_worker_command_of_the_makefile_and_the_readme_keeps_redis_pub_sub_out() -> None:
    commands = [
        line
        for name in ("Makefile", "README.md")
        for line in (REPOSITORY / name).read_text().splitlines()
        if "celery -A config worker" in line
    ]
    assert len(commands) >= 2  # make worker, worker-fast, worker-background; the README's production list
    for command in commands:
        assert set(WORKER_OPTIONS) <= set(command.split()), command
