"""One scan from configuration to observations: resolve targets, plan, run the engine.

Results reach the caller through a `ScanObserver` as they arrive (the JSON writer and the
progress line are observers), so whatever was gathered survives an interruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from scanner import __version__
from scanner.engine import Engine, EngineOptions, EngineStats
from scanner.models import (
    PortObservation,
    PortResult,
    PortState,
    ScanInfo,
    ScanOptions,
    ScanSummary,
    Transport,
    UnresolvedTargetResult,
)
from scanner.plan import ProbePlan
from scanner.ports import PortSpec
from scanner.registry import Registry, describe_source
from scanner.report.jsonfile import utc_timestamp
from scanner.targets import AddressBlock, build_target_set

_PROGRESS_INTERVAL_S = 0.2
_FD_RESERVE = 128
DEFAULT_MAX_INFLIGHT = 4096


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """Everything a scan needs, as validated by the CLI."""

    targets: tuple[str, ...]
    excludes: tuple[str, ...]
    ports: PortSpec
    engine: EngineOptions
    seed: int
    all_states: bool = False
    event_loop: str = "auto"
    command_line: tuple[str, ...] = ()
    resolve_timeout: float = 5.0
    scopes: tuple[tuple[AddressBlock, ...], ...] = ()
    registry: Registry | None = None


class ScanTally:
    """Live counts of a scan, read by the progress line and the JSON trailer."""

    def __init__(self, hosts: int, total: int) -> None:
        self.hosts = hosts
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.counts: dict[tuple[Transport, PortState], int] = {}

    def record(self, observation: PortObservation) -> None:
        """Count one finished probe."""
        key = (observation.transport, observation.state)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.done += 1

    def count(self, state: PortState) -> int:
        """Probes so far that ended in the state, over both transports."""
        return sum(n for (_, s), n in self.counts.items() if s is state)

    def elapsed(self) -> float:
        """Seconds since the scan started."""
        return time.monotonic() - self.started

    def summary(self) -> ScanSummary:
        """The counts as the JSON `summary`."""
        by_proto = {t: {s: self.counts.get((t, s), 0) for s in PortState} for t in Transport}
        return ScanSummary(
            hosts=self.hosts,
            probes_total=self.total,
            probes_done=self.done,
            states={s: self.count(s) for s in PortState},
            states_by_proto=by_proto,
            duration_s=round(self.elapsed(), 3),
        )


class ScanObserver(Protocol):
    """Receives a scan's progress; implemented by the CLI (JSON writer, progress line)."""

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        """The plan is known; no probe has gone out yet."""

    def result(self, result: PortResult) -> None:
        """A probe finished with a state worth listing."""

    def progress(self, tally: ScanTally) -> None:
        """Called a few times a second while the scan runs."""


def raise_nofile_limit() -> int:
    """Raise the soft descriptor limit to the hard one where allowed; return the soft limit."""
    try:
        import resource  # noqa: PLC0415 - not on Windows
    except ImportError:
        return 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def inflight_cap(requested: int | None) -> int:
    """The global in-flight cap: the request, or the default, within the descriptor limit."""
    available = max(1, raise_nofile_limit() - _FD_RESERVE)
    return max(1, min(requested or DEFAULT_MAX_INFLIGHT, available))


def new_seed() -> int:
    """A fresh random seed, recorded in the results so any scan order can be replayed."""
    return secrets.randbits(32)


def to_result(
    observation: PortObservation, hostname: str | None, registry: Registry | None = None
) -> PortResult:
    """The JSON result for one observation, with its registry entry where one exists."""
    return PortResult(
        host=observation.host,
        hostname=hostname,
        port=observation.port,
        proto=observation.transport,
        state=observation.state,
        reason=observation.reason,
        rtt_ms=round(observation.rtt * 1000, 3) if observation.rtt is not None else None,
        attempts=observation.attempts,
        response_hex=observation.response.hex() if observation.response is not None else None,
        error=observation.error,
        registry=registry.ref(observation.port, observation.transport) if registry else None,
    )


async def run_scan(config: ScanConfig, observer: ScanObserver, event_loop: str) -> EngineStats:
    """Run one scan, reporting to the observer as results arrive."""
    resolved = await build_target_set(
        config.targets, config.excludes, config.resolve_timeout, config.scopes
    )
    plan = ProbePlan(resolved.addresses, config.ports, config.seed)
    options = config.engine
    info = ScanInfo(
        id=str(uuid.uuid4()),
        version=__version__,
        command_line=list(config.command_line),
        started_at=utc_timestamp(),
        finished_at=None,
        targets=list(config.targets),
        excludes=list(config.excludes),
        ports=config.ports.describe(),
        options=ScanOptions(
            timeout_s=options.timeout,
            retries=options.retries,
            rate=options.rate,
            max_inflight=options.max_inflight,
            per_host=options.per_host,
            seed=config.seed,
            all_states=config.all_states,
            event_loop=event_loop,
        ),
        registry_source=describe_source(config.registry) if config.registry else None,
    )
    unresolved = [
        UnresolvedTargetResult(target=u.target, error=u.error) for u in resolved.unresolved
    ]
    tally = ScanTally(resolved.addresses.size, len(plan))
    observer.scan_started(info, unresolved, tally)
    hostnames = resolved.hostnames
    registry = config.registry
    listed_closed = config.all_states

    def sink(observation: PortObservation) -> None:
        tally.record(observation)
        if observation.state is PortState.CLOSED and not listed_closed:
            return
        observer.result(to_result(observation, hostnames.get(observation.host), registry))

    loop = asyncio.get_running_loop()
    ticker: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal ticker
        observer.progress(tally)
        ticker = loop.call_later(_PROGRESS_INTERVAL_S, tick)

    tick()
    try:
        return await Engine(options, sink).run(plan)
    finally:
        if ticker is not None:
            ticker.cancel()
        observer.progress(tally)


def loop_factory(name: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The event loop to use: 'uvloop' where installed (for 'auto'), else the standard one."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: PLC0415 - optional speed-up
        except ImportError:
            if name == "uvloop":
                raise
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return "uvloop", factory
    return "asyncio", None


def execute(
    coro_factory: Callable[[str], Coroutine[Any, Any, EngineStats]], loop: str
) -> EngineStats:
    """Run a scan coroutine on the chosen event loop."""
    name, factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_factory(name))
