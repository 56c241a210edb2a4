"""Local worker processes: the shards of one scan on this machine's cores (`--workers N`).

Each worker is a process running its slice on its own event loop; its batches come back over
a pipe and go to the one `ShardMerger`. A worker that dies before its last batch fails the
scan loudly (ShardLostError, naming the worker and its pid); whatever it sent before is kept.

Workers are forked before the coordinator's event loop starts (`ProcessRunner.fork`): a
forked worker has every module and the scan's config already, so its first probe leaves a
few milliseconds after the fork instead of after a fresh interpreter imported the scan stack
and rebuilt the config (a quarter of a second, on both cores at once). The descriptors it
inherits (output files, the history writer's pipes, the other workers' pipes) are pointed at
/dev/null, so that it neither writes to them nor keeps them open. Where forking is not safe
(another thread already runs) or the workers are started from inside the running loop, they
are spawned as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
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


def _forked_main(
    config: ScanConfig, spec: ShardSpec, conn: Connection, event_loop: str, foreign: list[int]
) -> None:
    """A forked worker: let go of the coordinator's descriptors, then run its slice with the
    coordinator's config (run_slice narrows it to the shard)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in foreign:
        # dup2, not close: a file object of the coordinator's keeps its number, so nothing
        # can ever reach a descriptor this worker opens later under that number
        with contextlib.suppress(OSError):
            os.dup2(null, fd, inheritable=False)
    os.close(null)
    _slice_main(lambda _spec: config, spec, conn, event_loop)


def _open_descriptors() -> set[int]:
    """This process's open file descriptors but the standard three."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return set()
    return {int(name) for name in names if int(name) > 2}


def _death(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class ProcessRunner:
    """Runs shards in local processes, one per shard: forked before the loop (`fork`), else
    spawned when `run` starts."""

    def __init__(self, build: ConfigBuilder, event_loop: str) -> None:
        self.build = build
        self.event_loop = event_loop
        self.pids: dict[int, int] = {}
        """Worker pid by shard number, once started."""
        self._forked: dict[int, tuple[BaseProcess, Connection]] = {}

    def fork(self, shards: Sequence[ShardSpec], config: ScanConfig) -> None:
        """Fork a worker per shard now, each with `config` (the coordinator's: the slice is
        applied by run_slice). Call it before any event loop runs, with the standard streams
        flushed (a forked worker flushes them again as it ends). Nothing is started when
        forking is not safe here (another thread runs, or no fork on this platform): `run`
        spawns the workers then."""
        if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        for spec in shards:
            reader, writer = context.Pipe(duplex=False)
            foreign = sorted(_open_descriptors() - {writer.fileno()})
            process = context.Process(
                target=_forked_main,
                args=(config, spec, writer, self.event_loop, foreign),
                name=f"ghostport-worker-{spec.shard}",
                daemon=True,
            )
            process.start()
            writer.close()
            self._forked[spec.shard] = (process, reader)
            self.pids[spec.shard] = process.pid or 0

    async def run(self, shards: Sequence[ShardSpec], merger: ShardMerger) -> None:
        """Start one process per shard (unless forked already); merge their batches until
        every one finished."""
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

        forked, self._forked = self._forked, {}
        try:
            for spec in shards:
                if spec.shard in forked:
                    process, reader = forked.pop(spec.shard)
                else:
                    reader, writer = context.Pipe(duplex=False)
                    process = context.Process(
                        target=_slice_main,
                        args=(self.build, spec, writer, self.event_loop),
                        name=f"ghostport-worker-{spec.shard}",
                        daemon=True,
                    )
                    process.start()
                    writer.close()
                    self.pids[spec.shard] = process.pid or 0
                running[spec.shard] = process
                threading.Thread(target=listen, args=(spec, process, reader), daemon=True).start()
            await outcome
        finally:
            unused = [process for process, _ in forked.values()]  # forked, but not asked for
            for _, reader in forked.values():
                reader.close()
            for started in [*running.values(), *unused]:
                if started.is_alive():
                    started.terminate()
            for started in [*running.values(), *unused]:
                started.join(2)
                if started.is_alive():
                    started.kill()
                    started.join(2)
