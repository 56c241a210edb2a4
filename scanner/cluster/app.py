"""The Celery app and the shard task.

A shard is one Celery task on its vantage's queue (`ghostport.<vantage>`), acknowledged late
and rejected when its worker dies, so a killed worker's shard goes to another worker. The task
runs `run_slice` and publishes each batch (JSON) on the scan's stream (stream.py); the
coordinator consumes it. Results are keyed (vantage, host, proto, port) by the coordinator, so
a redelivered shard never lists a port twice.

A shard expires (Celery `expires`) when no worker started it within the coordinator's
--shard-timeout: by then the coordinator has given up, so a worker that comes later discards
it ("Discarding revoked task ... (expired)") instead of scanning for nobody. A redelivered
shard (its first worker died) is exempt, as the coordinator still waits for it; a coordinator
that fails or is interrupted revokes its unfinished shards on the live workers, and closes
its batch stream: a worker that takes one of its shards later (not running at the revoke,
or before the expiry) finds the stream gone and drops the shard unscanned.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery
from celery.utils.log import get_task_logger
from celery.worker.request import Request

from scanner.cluster.stream import publisher, stream_exists
from scanner.errors import ScannerError, TargetSpecError
from scanner.scan import ScanConfig, execute
from scanner.shards import ShardSpec, error_batch, run_slice

TASK_NAME = "ghostport.shard"
ShardBuilder = Callable[[Sequence[str], int, ShardSpec], ScanConfig]

_log = get_task_logger(__name__)
_builder: ShardBuilder | None = None
"""Set by `ghostport worker`: argv, seed, shard -> the shard's config (with the worker's
own scope), so this layer never parses a command line."""


def queue_name(vantage: str | None) -> str:
    """The Celery queue of a vantage's workers."""
    return f"ghostport.{vantage or 'default'}"


class ShardRequest(Request):  # type: ignore[misc]  # Celery is untyped
    """A shard as the worker receives it: expiry applies to a first delivery only."""

    def maybe_expire(self) -> bool:
        """Expired, unless redelivered: a shard whose worker died mid-way is still awaited
        (the coordinator's clock is its silence since then, not the shard's age)."""
        if (self.delivery_info or {}).get("redelivered"):
            return False
        return bool(super().maybe_expire())


def make_app(url: str, redeliver_after: float = 3600.0) -> Celery:
    """The Celery app on this broker. Results travel on the scan's stream, not Celery's
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
    app.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        Request=ShardRequest,
    )(_run_shard)
    return app


def _run_shard(task: Any, payload: dict[str, Any]) -> None:
    """The task: run one shard, publish its batches; refuse it when outside our scope."""
    spec = ShardSpec.from_json(payload["spec"])
    worker = task.request.hostname or socket.gethostname()
    scan_id = str(payload["scan_id"])
    with task.app.connection_for_write() as conn, publisher(conn, scan_id) as emit:
        # A coordinator older than the stream check sends no "stream_checked": scan as before
        if payload.get("stream_checked") and not stream_exists(conn, scan_id):
            _log.warning("dropped %s of scan %s: its coordinator is gone", spec.describe(), scan_id)
            return
        try:
            if _builder is None:
                raise ScannerError("this process is not a ghostport worker")
            config = _builder(payload["argv"], int(payload["seed"]), spec)
            execute(
                lambda loop: run_slice(config, spec, emit, loop, as_json=True), config.event_loop
            )
        except TargetSpecError as exc:
            emit(error_batch(spec, "", "refused", f"worker {worker}: {exc}"))
        except Exception as exc:  # the coordinator reports it
            emit(error_batch(spec, "", "failed", f"worker {worker}: {type(exc).__name__}: {exc}"))


def set_builder(builder: ShardBuilder) -> None:
    """Called by `ghostport worker` before the worker starts."""
    global _builder  # noqa: PLW0603 - one per worker process
    _builder = builder
