"""The batch stream: a scan's results travel back on a queue of its own, through kombu.

The coordinator declares `ghostport.batches.<scan id>` (not durable, auto-deleted when its
consumer goes, so an abandoned stream vanishes with its coordinator on RabbitMQ) and consumes
it; a worker publishes its shard's batches to it through the default exchange, without
declaring it, so a shard that outlives its coordinator cannot bring the stream back (AMQP
drops what no queue takes). The same code runs on every kombu transport Celery brokers on:
redis://, rediss://, redis+socket://, amqp://, amqps://.

Before it scans, a worker asks whether the stream still exists (`stream_exists`): a shard of a
coordinator that was interrupted (Ctrl-C, a failure, a timeout) is dropped unscanned, on any
worker, also one started later. On AMQP that is a passive declare of the stream (RabbitMQ
deletes it with its consumer, even when the coordinator is killed); on Redis an empty queue
does not exist, so the coordinator keeps a marker key beside its stream while it runs (left
behind by a SIGKILL, as the stream is: that scan's queued shards still run).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from kombu import Connection, Consumer, Exchange, Queue

from scanner.cluster.urls import redact_text, redact_url
from scanner.errors import BrokerUnavailableError
from scanner.shards import Batch

CONNECT_TIMEOUT_S = 10.0
_MAX_PER_RECEIVE = 256
_RETRY_POLICY = {"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def stream_name(scan_id: str) -> str:
    """The queue a scan's shards publish their batches to."""
    return f"ghostport.batches.{scan_id}"


def _marker(scan_id: str) -> str:
    """The Redis key that says a scan's stream is open."""
    return f"ghostport.stream-open.{scan_id}"


def _on_redis(conn: Connection) -> bool:
    return str(conn.transport.driver_type) == "redis"


def _redis_call(conn: Connection, command: str, *args: str) -> Any:
    """One Redis command on a pooled connection: the channel's own client may be waiting in
    the consumer's BRPOP, whose reply would be mixed with this one's."""
    with conn.default_channel.conn_or_acquire() as client:
        return getattr(client, command)(*args)


def stream_exists(conn: Connection, scan_id: str) -> bool:
    """Whether the scan's coordinator still consumes its stream (else its shard is moot)."""
    if _on_redis(conn):
        return bool(_redis_call(conn, "exists", _marker(scan_id)))
    channel = conn.channel()  # a failed passive declare closes its channel: not the default
    try:
        channel.queue_declare(queue=stream_name(scan_id), passive=True)
    except conn.channel_errors:
        return False
    finally:
        with suppress(Exception):
            channel.close()
    return True


def _queue(scan_id: str) -> Queue:
    name = stream_name(scan_id)
    return Queue(name, Exchange(""), routing_key=name, durable=False, auto_delete=True)


def ping(url: str) -> None:
    """Reach the broker now, or raise BrokerUnavailableError (credentials redacted)."""
    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_S)
            # a round trip: the Redis transport connects lazily, on the first command
            conn.default_channel.queue_declare(queue="ghostport.ping", auto_delete=True)
            conn.default_channel.queue_delete(queue="ghostport.ping")
    except Exception as exc:
        raise BrokerUnavailableError(
            f"broker {redact_url(url)} cannot be reached: "
            f"{type(exc).__name__}: {redact_text(str(exc), url)}"
        ) from None


@contextmanager
def publisher(conn: Connection, scan_id: str) -> Iterator[Callable[[Batch], None]]:
    """The worker's side: `emit(batch)` onto the scan's stream, in order."""
    name = stream_name(scan_id)
    producer = conn.Producer(serializer="json")

    def emit(batch: Batch) -> None:
        producer.publish(
            batch,
            exchange="",
            routing_key=name,
            declare=[],
            retry=True,
            retry_policy=_RETRY_POLICY,
        )

    try:
        yield emit
    finally:
        producer.release()


class BatchReceiver:
    """The coordinator's side: declare and empty the stream, then take batches as they come.
    Not thread-safe: one thread at a time (the runner calls it through asyncio.to_thread)."""

    def __init__(self, url: str, scan_id: str) -> None:
        self.url = url
        self.scan_id = scan_id
        self.queue = _queue(scan_id)
        self._conn: Connection | None = None
        self._consumer: Consumer | None = None
        self._got: list[Batch] = []

    def open(self) -> None:
        """Declare the stream, drop anything left from an earlier run of this scan (a resumed
        scan starts afresh), start consuming."""
        conn = Connection(self.url, connect_timeout=CONNECT_TIMEOUT_S)
        self._conn = conn
        conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_S)
        channel = conn.default_channel
        queue = self.queue(channel)
        queue.declare()
        queue.purge()
        if _on_redis(conn):
            _redis_call(conn, "set", _marker(self.scan_id), "1")
        self._consumer = Consumer(
            channel, [queue], callbacks=[self._on_message], accept=["json"], no_ack=True
        )
        self._consumer.consume()

    def _on_message(self, body: Any, message: Any) -> None:
        self._got.append(json.loads(body) if isinstance(body, (str, bytes)) else body)

    def receive(self, timeout: float) -> list[Batch]:
        """The batches that arrive within `timeout` seconds (at least one, or none on time)."""
        assert self._conn is not None, "open() first"
        self._got = []
        try:
            self._conn.drain_events(timeout=timeout)
            while len(self._got) < _MAX_PER_RECEIVE:
                self._conn.drain_events(timeout=0.01)
        except TimeoutError:
            pass
        batches, self._got = self._got, []
        return batches

    def close(self) -> None:
        """Stop consuming and delete the stream (the Redis transport keeps empty queues)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._consumer is not None:
                self._consumer.cancel()
            if _on_redis(conn):
                _redis_call(conn, "delete", _marker(self.scan_id))
            self.queue(conn.default_channel).delete()
        except Exception:  # best effort: a lost broker takes the queue with it
            pass
        finally:
            conn.release()
