"""The Celery app, the shard task and the batch channel.

A shard is one Celery task on its vantage's queue (`ghostport.<vantage>`), acknowledged late
and rejected when its worker dies, so a killed worker's shard goes to another worker. The task
runs `run_slice` and pushes each batch (JSON) onto a Redis list keyed by scan id; the
coordinator pops them. Results are keyed (vantage, host, proto, port) by the coordinator, so a
redelivered shard never lists a port twice.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from scanner.errors import ScannerError, TargetSpecError
from scanner.scan import ScanConfig, execute
from scanner.shards import Batch, ShardSpec, error_batch, run_slice

TASK_NAME = "ghostport.shard"
ShardBuilder = Callable[[Sequence[str], int, ShardSpec], ScanConfig]

_builder: ShardBuilder | None = None
"""Set by `ghostport worker`: argv, seed, shard -> the shard's config (with the worker's
own scope), so this layer never parses a command line."""


def queue_name(vantage: str | None) -> str:
    """The Celery queue of a vantage's workers."""
    return f"ghostport.{vantage or 'default'}"


def batches_key(scan_id: str) -> str:
    """The Redis list a scan's shards push their batches onto."""
    return f"ghostport:{scan_id}:batches"


def redis_kwargs(url: str) -> dict[str, Any]:
    """redis-py connection settings for a broker URL (redis://, rediss://, redis+socket://)."""
    parts = urlsplit(url)
    if parts.scheme in ("redis+socket", "socket", "unix"):
        kwargs: dict[str, Any] = {"unix_socket_path": parts.path}
        if parts.password:
            kwargs["password"] = parts.password
        return kwargs
    return {"url": url}


def make_app(url: str, redeliver_after: float = 3600.0) -> Celery:
    """The Celery app on this broker. Results travel on the batch channel, not Celery's
    result backend. `redeliver_after`: seconds after which a shard whose worker vanished
    (unacknowledged) is handed to another worker (Redis' visibility timeout)."""
    app = Celery("ghostport", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": redeliver_after,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        task_serializer="json",
        accept_content=["json"],
    )
    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)(_run_shard)
    return app


def _sync_client(url: str) -> Any:
    import redis  # noqa: PLC0415

    kwargs = redis_kwargs(url)
    if "url" in kwargs:
        return redis.Redis.from_url(kwargs["url"])
    return redis.Redis(**kwargs)


def _run_shard(task: Any, payload: dict[str, Any]) -> None:
    """The task: run one shard, push its batches; refuse it when outside our scope."""
    spec = ShardSpec.from_json(payload["spec"])
    client = _sync_client(task.app.conf.broker_url)
    key = batches_key(str(payload["scan_id"]))
    worker = task.request.hostname or socket.gethostname()

    def emit(batch: Batch) -> None:
        client.rpush(key, json.dumps(batch))

    try:
        if _builder is None:
            raise ScannerError("this process is not a ghostport worker")
        config = _builder(payload["argv"], int(payload["seed"]), spec)
        execute(lambda loop: run_slice(config, spec, emit, loop, as_json=True), config.event_loop)
    except TargetSpecError as exc:
        emit(error_batch(spec, "", "refused", f"worker {worker}: {exc}"))
    except Exception as exc:  # the coordinator reports it
        emit(error_batch(spec, "", "failed", f"worker {worker}: {type(exc).__name__}: {exc}"))
    finally:
        client.close()


def set_builder(builder: ShardBuilder) -> None:
    """Called by `ghostport worker` before the worker starts."""
    global _builder  # noqa: PLW0603 - one per worker process
    _builder = builder
