"""Local worker processes: the shards of one scan on this machine's cores (`--workers N`).

Each worker is a spawned process running its slice on its own event loop; its batches come
back over a pipe and go to the one `ShardMerger`. A worker that dies before its last batch
fails the scan loudly (ShardLostError, naming the worker and its pid); whatever it sent
before is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from scanner.errors import ScannerError, ShardLostError, TargetSpecError
from scanner.scan import ScanConfig, execute
from scanner.shards import Batch, ShardMerger, ShardSpec, error_batch, run_slice

ConfigBuilder = Callable[[ShardSpec], ScanConfig]
"""Builds a shard's config in the worker (a module-level function: it is pickled)."""


def _slice_main(build: ConfigBuilder, spec: ShardSpec, conn: Connection, event_loop: str) -> None:
    """A worker process: run one slice, send its batches, then close the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; it stops us
    try:
        config = build(spec)
        execute(lambda loop: run_slice(config, spec, conn.send, loop), event_loop)
    except ScannerError as exc:
        kind = "refused" if isinstance(exc, TargetSpecError) else "failed"
        conn.send(error_batch(spec, "", kind, str(exc)))
    except Exception as exc:  # the coordinator reports it; a worker has no terminal
        conn.send(error_batch(spec, "", "failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _death(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class ProcessRunner:
    """Runs shards in spawned local processes, one per shard."""

    def __init__(self, build: ConfigBuilder, event_loop: str) -> None:
        self.build = build
        self.event_loop = event_loop
        self.pids: dict[int, int] = {}
        """Worker pid by shard number, once started."""

    async def run(self, shards: Sequence[ShardSpec], merger: ShardMerger) -> None:
        """Start one process per shard; merge their batches until every one finished."""
        context = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[None] = loop.create_future()
        running: dict[int, BaseProcess] = {}

        def fail(exc: BaseException) -> None:
            if not outcome.done():
                outcome.set_exception(exc)

        def accept(batch: Batch) -> None:
            try:
                merger.accept(batch)
            except BaseException as exc:  # a refused or failed shard: the scan stops
                fail(exc)

        def exited(spec: ShardSpec) -> None:
            process = running[spec.shard]
            if spec.shard not in merger.finished:
                fail(
                    ShardLostError(
                        f"worker {spec.shard} (pid {process.pid}) died ({_death(process)}) "
                        f"before finishing slice {spec.part + 1} of {spec.parts}; the results "
                        "it sent are kept, the scan is incomplete"
                    )
                )
            elif all(s in merger.finished for s in running) and not outcome.done():
                outcome.set_result(None)

        def listen(spec: ShardSpec, process: BaseProcess, reader: Connection) -> None:
            """A thread per worker: its batches, in order, then its end, to the loop."""
            try:
                while True:
                    batch = reader.recv()
                    loop.call_soon_threadsafe(accept, batch)
            except (EOFError, OSError):
                pass
            finally:
                reader.close()
                process.join()
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(exited, spec)

        try:
            for spec in shards:
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_slice_main,
                    args=(self.build, spec, writer, self.event_loop),
                    name=f"ghostport-worker-{spec.shard}",
                    daemon=True,
                )
                process.start()
                writer.close()
                running[spec.shard] = process
                self.pids[spec.shard] = process.pid or 0
                threading.Thread(target=listen, args=(spec, process, reader), daemon=True).start()
            await outcome
        finally:
            for started in running.values():
                if started.is_alive():
                    started.terminate()
            for started in running.values():
                started.join(2)
                if started.is_alive():
                    started.kill()
                    started.join(2)
