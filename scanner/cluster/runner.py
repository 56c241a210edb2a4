"""The coordinator's side of a Celery scan: send the shards, merge their batches as they come,
and fail clearly on an unreachable broker or a shard no worker reports on. Shards it gives up
on (a failure, a timeout, Ctrl-C) expire unstarted and are revoked, so none runs later."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from scanner.cluster.app import TASK_NAME, make_app, queue_name
from scanner.cluster.stream import BatchReceiver, ping
from scanner.errors import ShardTimeoutError
from scanner.shards import ShardMerger, ShardSpec

_POLL_S = 0.5


class CeleryRunner:
    """Runs shards as Celery tasks on the workers of their vantage."""

    def __init__(
        self,
        url: str,
        argv: Sequence[str],
        seed: int,
        shard_timeout: float,
    ) -> None:
        self.url = url
        self.argv = list(argv)
        self.seed = seed
        self.shard_timeout = shard_timeout

    async def check(self) -> None:
        """Reach the broker now: an unreachable one is a clear error before any shard."""
        await asyncio.to_thread(ping, self.url)

    async def run(self, shards: Sequence[ShardSpec], merger: ShardMerger) -> None:
        """Send every shard, then merge batches until each shard finished."""
        await self.check()
        receiver = BatchReceiver(self.url, merger.scan_id)
        app = make_app(self.url)
        sent: dict[int, str] = {}  # shard -> Celery task id
        receiving: asyncio.Future[list[Any]] | None = None
        try:
            await asyncio.to_thread(receiver.open)  # before any shard: no batch is lost
            for spec in shards:
                sent[spec.shard] = await asyncio.to_thread(self._send, app, merger, spec)
            started = time.monotonic()
            while merger.pending:
                receiving = asyncio.ensure_future(asyncio.to_thread(receiver.receive, _POLL_S))
                # shielded: a cancel must not mark it done while its thread still reads
                batches = await asyncio.shield(receiving)
                receiving = None
                for batch in batches:
                    merger.accept(batch)
                self._check_silence(merger, started)
        finally:
            # Cancelled (Ctrl-C) while a receive runs in its thread: let it end first, as the
            # connection is not shared between threads.
            if receiving is not None:
                await asyncio.wait([receiving])
            self._revoke(app, [sent[s.shard] for s in merger.pending if s.shard in sent])
            receiver.close()
            app.close()

    def _send(self, app: Any, merger: ShardMerger, spec: ShardSpec) -> str:
        payload = {
            "scan_id": merger.scan_id,
            "argv": self.argv,
            "seed": self.seed,
            "spec": spec.to_json(),
            "stream_checked": True,  # a worker drops the shard once the stream is gone
        }
        # A shard no worker started within --shard-timeout is one this coordinator gave up
        # on: it expires, and a worker that comes later discards it. The expiry goes in the
        # task's header only: `send_task(expires=)` would also set an AMQP message TTL, which
        # RabbitMQ keeps on a requeued message, dropping a killed worker's shard for good.
        expires = datetime.now(UTC) + timedelta(seconds=self.shard_timeout)
        result = app.send_task(
            TASK_NAME,
            args=[payload],
            queue=queue_name(spec.vantage),
            retry=False,
            headers={"expires": expires.isoformat()},
        )
        return str(result.id)

    @staticmethod
    def _revoke(app: Any, task_ids: list[str]) -> None:
        """Tell the live workers to drop (or stop) the shards this coordinator gave up on."""
        if not task_ids:
            return
        with contextlib.suppress(Exception):  # best effort: unstarted shards expire anyway
            app.control.revoke(task_ids, terminate=True, signal="SIGTERM")

    def _check_silence(self, merger: ShardMerger, started: float) -> None:
        now = time.monotonic()
        for spec in merger.pending:
            heard = merger.last_heard.get(spec.shard, started)
            if now - heard > self.shard_timeout:
                vantage = f" --vantage {spec.vantage}" if spec.vantage else ""
                raise ShardTimeoutError(
                    f"{spec.describe()}: no word from any worker for {self.shard_timeout:g} s "
                    f"(--shard-timeout); is `ghostport worker --broker URL{vantage}` running "
                    "and reaching the broker? The results gathered so far are kept, marked "
                    "incomplete"
                )
