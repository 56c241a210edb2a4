"""One scan from configuration to observations: resolve targets, plan, run the engine.

Results reach the caller through a `ScanObserver` as they arrive (the JSON writer and the
progress line are observers), so whatever was gathered survives an interruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from scanner import __version__
from scanner.classify import (
    RESPONSE_EVIDENCE_LIMIT,
    Knowledge,
    PortClassification,
    classify_port,
)
from scanner.engine import Engine, EngineOptions, EngineStats
from scanner.models import (
    Finding,
    PortObservation,
    PortResult,
    PortState,
    ProbeTarget,
    RegistryRef,
    ScanInfo,
    ScanOptions,
    ScanSummary,
    Transport,
    UnresolvedTargetResult,
    Verdict,
)
from scanner.plan import ProbePlan
from scanner.ports import PortSpec
from scanner.probeset import ProbeSet, build_probe_set
from scanner.profiles import Profile, Severity, merged
from scanner.registry import Registry, describe_source
from scanner.report.jsonfile import utc_timestamp
from scanner.targets import AddressBlock, build_target_set

T = TypeVar("T")
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
    profiles: tuple[Profile, ...] = ()


class ScanTally:
    """Live counts of a scan, read by the progress line and the JSON trailer."""

    def __init__(self, hosts: int, total: int) -> None:
        self.hosts = hosts
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.counts: dict[tuple[Transport, PortState], int] = {}
        self.severities: dict[str, int] = {}
        self.verdicts: dict[str, int] = {}

    def record(self, classified: PortClassification) -> None:
        """Count one finished port, and its finding."""
        observation = classified.deciding
        key = (observation.transport, observation.state)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.done += 1
        finding = classified.finding
        if finding is not None:
            self.severities[finding.severity] = self.severities.get(finding.severity, 0) + 1
            verdict = finding.verdict.value
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1

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
            findings_by_severity={s.value: self.severities.get(s.value, 0) for s in Severity},
            findings_by_verdict={
                v.value: self.verdicts.get(v.value, 0) for v in (Verdict.LEGACY, Verdict.SQUATTER)
            },
            duration_s=round(self.elapsed(), 3),
        )


class ScanObserver(Protocol):
    """Receives a scan's progress; implemented by the CLI (JSON writer, progress line)."""

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        """The plan is known; no probe has gone out yet."""

    def result(self, result: PortResult) -> None:
        """A port finished with a state worth listing."""

    def finding(self, finding: Finding) -> None:
        """A port holds a legacy service or a squatter."""

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


def scan_options(
    options: EngineOptions, seed: int, all_states: bool, event_loop: str
) -> ScanOptions:
    """The engine settings as the JSON records them."""
    return ScanOptions(
        timeout_s=options.timeout,
        retries=options.retries,
        rate=options.rate,
        max_inflight=options.max_inflight,
        per_host=options.per_host,
        seed=seed,
        all_states=all_states,
        event_loop=event_loop,
    )


def to_result(
    classified: PortClassification, hostname: str | None, registry: RegistryRef | None
) -> PortResult:
    """The JSON result for one classified port."""
    observation = classified.deciding
    return PortResult(
        host=observation.host,
        hostname=hostname,
        port=observation.port,
        proto=observation.transport,
        state=observation.state,
        reason=observation.reason,
        rtt_ms=round(observation.rtt * 1000, 3) if observation.rtt is not None else None,
        attempts=observation.attempts,
        response_hex=(
            observation.response[:RESPONSE_EVIDENCE_LIMIT].hex()
            if observation.response is not None
            else None
        ),
        error=observation.error,
        service=classified.service,
        verdict=classified.verdict,
        registry=registry,
    )


class PortAssembler:
    """Gathers each port's observations, runs TCP follow-ups on open ports, and classifies a
    port once every probe of it has finished."""

    def __init__(
        self,
        probe_set: ProbeSet,
        knowledge: Knowledge,
        registry: Registry | None,
        hostnames: dict[str, str],
        deliver: Callable[[PortClassification], None],
    ) -> None:
        self._probe_set = probe_set
        self._knowledge = knowledge
        self._registry = registry
        self._hostnames = hostnames
        self._deliver = deliver
        self._pending: dict[tuple[str, int, Transport], tuple[list[PortObservation], int]] = {}
        self.submit: Callable[[ProbeTarget], None] = lambda target: None

    def add(self, observation: PortObservation) -> None:
        """Take one probe's observation; classify the port when it is complete."""
        key = (observation.host, observation.port, observation.transport)
        pending = self._pending.get(key)
        if pending is None:
            expected = self._expected(observation)
            if expected == 1:
                self._complete([observation])
                return
            self._pending[key] = ([observation], expected)
            return
        observations, expected = pending
        observations.append(observation)
        if len(observations) >= expected:
            del self._pending[key]
            self._complete(observations)

    def _expected(self, observation: PortObservation) -> int:
        if observation.transport is Transport.UDP:
            return len(self._probe_set.for_udp(observation.port))
        if observation.state is not PortState.OPEN or observation.probe:
            return 1
        follow_ups = self._probe_set.tcp_follow_ups(observation.port)
        family = socket.AF_INET6 if ":" in observation.host else socket.AF_INET
        for probe in follow_ups:
            self.submit(
                ProbeTarget(observation.host, family, observation.port, Transport.TCP, probe)
            )
        return 1 + len(follow_ups)

    def registry_ref(self, observation: PortObservation) -> RegistryRef | None:
        """The registry entry of an observation's port."""
        if self._registry is None:
            return None
        return self._registry.ref(observation.port, observation.transport)

    def hostname(self, observation: PortObservation) -> str | None:
        """The name the observation's address was resolved from, if any."""
        return self._hostnames.get(observation.host)

    def _complete(self, observations: list[PortObservation]) -> None:
        first = observations[0]
        if len(observations) == 1 and first.state is not PortState.OPEN:
            # The hot path of a sweep: nothing answered, so there is nothing to classify.
            self._deliver(PortClassification(first, None, None, None))
            return
        classified = classify_port(
            observations, self._knowledge, self.registry_ref(first), self.hostname(first)
        )
        self._deliver(classified)


async def run_scan(config: ScanConfig, observer: ScanObserver, event_loop: str) -> EngineStats:
    """Run one scan, reporting to the observer as results arrive."""
    resolved = await build_target_set(
        config.targets, config.excludes, config.resolve_timeout, config.scopes
    )
    probes, services = merged(config.profiles)
    probe_set = build_probe_set(probes, services)
    knowledge = Knowledge.build(services, probe_set.infos)
    plan = ProbePlan(resolved.addresses, config.ports, config.seed, probe_set.for_udp)
    options = dataclasses.replace(config.engine, exchanges=probe_set.exchanges)
    info = ScanInfo(
        id=str(uuid.uuid4()),
        version=__version__,
        command_line=list(config.command_line),
        started_at=utc_timestamp(),
        finished_at=None,
        targets=list(config.targets),
        excludes=list(config.excludes),
        ports=config.ports.describe(),
        options=scan_options(options, config.seed, config.all_states, event_loop),
        profiles=[p.id for p in config.profiles],
        profile_hashes={p.id: p.sha256 for p in config.profiles},
        registry_source=describe_source(config.registry) if config.registry else None,
    )
    unresolved = [
        UnresolvedTargetResult(target=u.target, error=u.error) for u in resolved.unresolved
    ]
    tally = ScanTally(resolved.addresses.size, len(plan))
    observer.scan_started(info, unresolved, tally)
    listed_closed = config.all_states

    def deliver(classified: PortClassification) -> None:
        tally.record(classified)
        if classified.finding is not None:
            observer.finding(classified.finding)
        observation = classified.deciding
        if observation.state is PortState.CLOSED and not listed_closed:
            return
        observer.result(
            to_result(
                classified, assembler.hostname(observation), assembler.registry_ref(observation)
            )
        )

    assembler = PortAssembler(probe_set, knowledge, config.registry, resolved.hostnames, deliver)
    engine = Engine(options, assembler.add)
    assembler.submit = engine.submit
    loop = asyncio.get_running_loop()
    ticker: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal ticker
        observer.progress(tally)
        ticker = loop.call_later(_PROGRESS_INTERVAL_S, tick)

    tick()
    try:
        return await engine.run(plan)
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


def execute(coro_factory: Callable[[str], Coroutine[Any, Any, T]], loop: str) -> T:
    """Run a scan coroutine on the chosen event loop (its name is passed to the factory)."""
    name, factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_factory(name))
