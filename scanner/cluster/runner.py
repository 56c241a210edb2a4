"""The coordinator's side of a Celery scan: send the shards, merge their batches as they come,
and fail clearly on an unreachable broker or a shard no worker reports on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from scanner.cluster.app import TASK_NAME, batches_key, make_app, queue_name, redis_kwargs
from scanner.cluster.urls import redact_text, redact_url
from scanner.errors import BrokerUnavailableError, ShardTimeoutError
from scanner.shards import ShardMerger, ShardSpec

_POLL_S = 0.5


def _async_client(url: str) -> Any:
    import redis.asyncio as aioredis  # noqa: PLC0415

    kwargs = redis_kwargs(url)
    if "url" in kwargs:
        return aioredis.Redis.from_url(kwargs["url"])
    return aioredis.Redis(**kwargs)


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
        client = _async_client(self.url)
        try:
            await asyncio.wait_for(client.ping(), 10)
        except Exception as exc:
            raise BrokerUnavailableError(
                f"broker {redact_url(self.url)} cannot be reached: "
                f"{type(exc).__name__}: {redact_text(str(exc), self.url)}"
            ) from None
        finally:
            await client.aclose()

    async def run(self, shards: Sequence[ShardSpec], merger: ShardMerger) -> None:
        """Send every shard, then merge batches until each shard finished."""
        await self.check()
        key = batches_key(merger.scan_id)
        client = _async_client(self.url)
        app = make_app(self.url)
        try:
            await client.delete(key)  # a resumed scan starts its channel afresh
            for spec in shards:
                payload = {
                    "scan_id": merger.scan_id,
                    "argv": self.argv,
                    "seed": self.seed,
                    "spec": spec.to_json(),
                }
                await asyncio.to_thread(
                    app.send_task,
                    TASK_NAME,
                    args=[payload],
                    queue=queue_name(spec.vantage),
                    retry=False,
                )
            started = time.monotonic()
            while merger.pending:
                item = await client.blpop([key], timeout=_POLL_S)
                if item is not None:
                    merger.accept(json.loads(item[1]))
                self._check_silence(merger, started)
        finally:
            await client.aclose()
            app.close()

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
