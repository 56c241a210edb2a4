"""One scan, network or local audit, whole or a slice of it: plan -> engine -> judge -> results.

Results reach the caller through a `ScanObserver` as they arrive (the JSON writer, the history
database and the terminal are observers), so whatever was gathered survives an interruption.
Nothing here prints, exits or reads the terminal.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from scanner import __version__
from scanner.assembly import Judge, PortAssembler, to_result
from scanner.classify import PortClassification, unprobed_local_finding
from scanner.engine import Engine, EngineOptions, EngineStats
from scanner.errors import MissingToolError
from scanner.models import (
    Finding,
    LocalAudit,
    LocalSocket,
    PortResult,
    PortState,
    ProbeTarget,
    RegistryRef,
    ScanDocument,
    ScanInfo,
    ScanOptions,
    ScanSummary,
    Severity,
    Transport,
    UnresolvedTargetResult,
    Verdict,
    utc_timestamp,
)
from scanner.plan import START, WHOLE, PortKey, ProbePlan, ResumePoint, ScanSlice
from scanner.ports import PortSpec, compress_ports
from scanner.profiles import Profile, ServiceStatus
from scanner.registry import Registry, describe_source
from scanner.targets import AddressBlock, build_target_set, in_scopes

if TYPE_CHECKING:
    from scanner.syn import SynEngine

T = TypeVar("T")
_PROGRESS_INTERVAL_S = 0.2


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
    part: ScanSlice = WHOLE
    resume: ResumeState | None = None
    checkpoints: bool = False  # track which plan positions are finished (history, resume)
    syn: bool = False  # TCP discovery by raw SYN packets (scanner/syn.py)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """An interrupted scan to continue: its id and start, where it stopped, and its counts then
    (the results it had are replayed by the caller, not probed again)."""

    scan_id: str
    started_at: str
    point: ResumePoint
    summary: ScanSummary | None = None


class PlanProgress:
    """Which positions of the plan are finished: a watermark below which all are, and the
    finished ones above it (as many as are in flight, at most). That pair is the checkpoint a
    scan resumes from."""

    def __init__(self, plan: ProbePlan) -> None:
        self._plan = plan
        self._pending: dict[PortKey, int] = {}
        self._above: set[int] = set(plan.resume.above)
        self.watermark = plan.resume.watermark
        self._advance()

    def walk(self) -> Iterator[ProbeTarget]:
        """The plan's probes, noting the position of each port as it goes out."""
        plan, pending = self._plan, self._pending
        for target in plan:
            key = (target.host, target.port, target.transport)
            if key not in pending:
                pending[key] = plan.position
            yield target

    def finish(self, key: PortKey) -> None:
        """A port of the plan is finished (follow-ups included)."""
        position = self._pending.pop(key, None)
        if position is not None:
            self._above.add(position)
            self._advance()

    def _advance(self) -> None:
        above = self._above
        while self.watermark in above:
            above.discard(self.watermark)
            self.watermark += 1

    def checkpoint(self) -> ResumePoint:
        """Where a scan interrupted now would resume."""
        return ResumePoint(self.watermark, frozenset(self._above))


class ScanTally:
    """Live counts of a scan, read by the progress line and the JSON trailer."""

    def __init__(self, hosts: int, total: int) -> None:
        self.hosts = hosts
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.counts: dict[tuple[Transport, PortState], int] = {}
        self.severities: dict[Severity, int] = {}
        self.verdicts: dict[Verdict, int] = {}
        self.checkpoint: Callable[[], ResumePoint] | None = None

    def restore(self, summary: ScanSummary) -> None:
        """Continue the counts of an interrupted scan."""
        self.done = summary.probes_done
        for transport, states in summary.states_by_proto.items():
            for state, n in states.items():
                if n:
                    self.counts[transport, state] = n
        for severity, n in summary.findings_by_severity.items():
            if n and severity in Severity.__members__.values():
                self.severities[Severity(severity)] = n
        for verdict, n in summary.findings_by_verdict.items():
            if n and verdict in Verdict.__members__.values():
                self.verdicts[Verdict(verdict)] = n
        self.started -= summary.duration_s

    def record(self, classified: PortClassification) -> None:
        """Count one finished port, and its finding."""
        observation = classified.deciding
        key = (observation.transport, observation.state)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.done += 1
        if classified.finding is not None:
            self.record_finding(classified.finding)

    def record_finding(self, finding: Finding) -> None:
        """Count one finding."""
        self.severities[finding.severity] = self.severities.get(finding.severity, 0) + 1
        self.verdicts[finding.verdict] = self.verdicts.get(finding.verdict, 0) + 1

    def count(self, state: PortState) -> int:
        """Probes so far that ended in the state, over both transports."""
        return sum(n for (_, s), n in self.counts.items() if s is state)

    def elapsed(self) -> float:
        """Seconds since the scan started."""
        return time.monotonic() - self.started

    def summary(self) -> ScanSummary:
        """The counts as the JSON `summary`."""
        by_proto = {t: {s: self.counts.get((t, s), 0) for s in PortState} for t in Transport}
        verdicts = {v: self.verdicts.get(v, 0) for v in (Verdict.LEGACY, Verdict.SQUATTER)}
        verdicts.update(self.verdicts)
        return ScanSummary(
            hosts=self.hosts,
            probes_total=self.total,
            probes_done=self.done,
            states={s: self.count(s) for s in PortState},
            states_by_proto=by_proto,
            findings_by_severity={s.value: self.severities.get(s, 0) for s in Severity},
            findings_by_verdict={v.value: n for v, n in verdicts.items()},
            duration_s=round(self.elapsed(), 3),
        )


class ScanObserver(Protocol):
    """Receives a scan's progress: the JSON writer, the terminal, the history database."""

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


def _scan_info(  # noqa: PLR0917 - one record, built in two places
    config_line: Sequence[str],
    targets: Sequence[str],
    excludes: Sequence[str],
    ports: dict[Transport, Sequence[int]] | PortSpec,
    options: ScanOptions,
    profiles: Sequence[Profile],
    registry: Registry | None,
    started_at: str,
) -> ScanInfo:
    if isinstance(ports, PortSpec):
        lists: dict[Transport, Sequence[int]] = {
            Transport.TCP: ports.tcp,
            Transport.UDP: ports.udp,
        }
    else:
        lists = ports
    return ScanInfo(
        id=str(uuid.uuid4()),
        version=__version__,
        command_line=list(config_line),
        started_at=started_at,
        finished_at=None,
        targets=list(targets),
        excludes=list(excludes),
        ports={t: compress_ports(found) for t, found in lists.items()},
        port_counts={t: len(set(found)) for t, found in lists.items()},
        options=options,
        profiles=[p.id for p in profiles],
        profile_hashes={p.id: p.sha256 for p in profiles},
        registry_source=describe_source(registry) if registry else None,
    )


def _run_progress(observer: ScanObserver, tally: ScanTally) -> Callable[[], None]:
    """Tick the observer's progress a few times a second; returns the stop function."""
    loop = asyncio.get_running_loop()
    ticker: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal ticker
        observer.progress(tally)
        ticker = loop.call_later(_PROGRESS_INTERVAL_S, tick)

    def stop() -> None:
        if ticker is not None:
            ticker.cancel()
        observer.progress(tally)

    tick()
    return stop


async def run_scan(config: ScanConfig, observer: ScanObserver, event_loop: str) -> EngineStats:
    """Run one scan (or the slice `config.part` of it), reporting to the observer as results
    arrive. Ports in `config.done` (a resumed scan) are not probed again."""
    resolved = await build_target_set(
        config.targets, config.excludes, config.resolve_timeout, config.scopes
    )
    judge = Judge.of(config.profiles)
    resume = config.resume
    plan = ProbePlan(
        resolved.addresses,
        config.ports,
        config.seed,
        judge.probe_set.for_udp,
        config.part,
        resume.point if resume else START,
    )
    options = replace(config.engine, exchanges=judge.probe_set.exchanges)
    info = _scan_info(
        config.command_line,
        config.targets,
        config.excludes,
        config.ports,
        scan_options(options, config.seed, config.all_states, event_loop),
        config.profiles,
        config.registry,
        resume.started_at if resume else utc_timestamp(),
    )
    if resume:
        info = info.model_copy(update={"id": resume.scan_id})
    tally = ScanTally(resolved.addresses.size, len(plan))
    if resume and resume.summary:
        tally.restore(resume.summary)
    progress = PlanProgress(plan) if config.checkpoints else None
    if progress is not None:
        tally.checkpoint = progress.checkpoint
    observer.scan_started(info, list(resolved.unresolved), tally)
    listed_closed = config.all_states

    def deliver(classified: PortClassification) -> None:
        tally.record(classified)
        if classified.finding is not None:
            observer.finding(classified.finding)
        observation = classified.deciding
        if observation.state is not PortState.CLOSED or listed_closed:
            observer.result(
                to_result(
                    classified,
                    assembler.hostname(observation),
                    assembler.registry_ref(observation),
                )
            )
        if progress is not None:
            progress.finish((observation.host, observation.port, observation.transport))

    assembler = PortAssembler(judge, config.registry, resolved.hostnames, deliver)
    engine: Engine | SynEngine
    if config.syn:  # --syn: the SYN engine runs TCP discovery, a connect Engine the rest
        from scanner.syn import SynEngine  # noqa: PLC0415

        engine = SynEngine(options, assembler.add)
    else:
        engine = Engine(options, assembler.add)
    stop_progress = _run_progress(observer, tally)
    try:
        return await engine.run(progress.walk() if progress is not None else plan)
    finally:
        stop_progress()


@dataclass(frozen=True, slots=True)
class LocalAuditConfig:
    """What the local audit needs, as validated by the CLI."""

    profiles: tuple[Profile, ...]
    registry: Registry
    engine: EngineOptions
    probe: bool
    command_line: tuple[str, ...]
    scopes: tuple[tuple[AddressBlock, ...], ...] = ()


def _local_sockets(
    judge: Judge, registry: Registry
) -> tuple[list[LocalSocket], str | None, dict[tuple[Transport, int], Any]]:
    """This machine's sockets, marked where an obsolete service owns the port."""
    from scanner.local import bound_sockets, describe_sockets, several_orphans  # noqa: PLC0415

    raw, note = bound_sockets()
    owned = {
        key: owners
        for key, owners in judge.knowledge.owners.items()
        if any(o.status is not ServiceStatus.CURRENT for o in owners)
    }
    sockets = [
        sock.model_copy(
            update={
                "registry": registry.ref(sock.port, sock.proto.value),
                "finding": (sock.proto, sock.port) in owned,
            }
        )
        for sock in describe_sockets(raw)
    ]
    crowded = several_orphans(sockets, {(s.proto.value, s.port) for s in sockets if s.finding})
    sockets = [
        s.model_copy(update={"holds_several_orphans": s.process.pid in crowded}) for s in sockets
    ]
    return sockets, note, owned


async def run_local_audit(config: LocalAuditConfig, event_loop: str) -> ScanDocument:
    """List this machine's sockets, match them, probe the orphaned ones over loopback (only
    the addresses every scope allows), and return one document."""
    from scanner.local import probe_address, this_host  # noqa: PLC0415 - psutil: only here

    started = utc_timestamp()
    judge = Judge.of(config.profiles)
    sockets, note, owned = _local_sockets(judge, config.registry)
    targets: list[ProbeTarget] = []
    if config.probe:
        for sock in sockets:
            host = probe_address(sock)
            if not sock.finding or not in_scopes(host, config.scopes):
                continue
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            indexes = judge.probe_set.for_udp(sock.port) if sock.proto is Transport.UDP else (0,)
            targets.extend(ProbeTarget(host, family, sock.port, sock.proto, i) for i in indexes)
    tally = ScanTally(1, len({(t.host, t.port, t.transport) for t in targets}))
    classified: dict[PortKey, tuple[PortClassification, RegistryRef | None]] = {}

    def deliver(item: PortClassification) -> None:
        tally.record(item)
        key = (item.deciding.host, item.deciding.port, item.deciding.transport)
        classified[key] = (item, assembler.registry_ref(item.deciding))

    assembler = PortAssembler(judge, config.registry, {}, deliver)
    if targets:
        options = replace(config.engine, exchanges=judge.probe_set.exchanges)
        await Engine(options, assembler.add).run(sorted(set(targets)))
    findings: list[Finding] = []
    results: list[PortResult] = []
    for sock in sockets:
        if not sock.finding:
            continue
        found = classified.get((probe_address(sock), sock.port, sock.proto))
        if found is not None:
            item, ref = found
            results.append(to_result(item, None, ref))
            if item.finding is not None:
                findings.append(item.finding.model_copy(update={"process": sock.process}))
                continue
        owner = owned[sock.proto, sock.port][0]
        findings.append(unprobed_local_finding(sock, owner, sock.registry))
    tally.severities.clear()
    tally.verdicts.clear()
    for finding in findings:
        tally.record_finding(finding)
    info = _scan_info(
        config.command_line,
        ["local"],
        [],
        {t: [s.port for s in sockets if s.proto is t] for t in Transport},
        scan_options(config.engine, 0, False, event_loop),
        config.profiles,
        config.registry,
        started,
    )
    return ScanDocument(
        scan=info.model_copy(update={"finished_at": utc_timestamp()}),
        results=[r for r in results if r.state is not PortState.CLOSED],
        findings=findings,
        local=LocalAudit(hostname=this_host(), sockets=sockets, note=note),
        summary=tally.summary().model_copy(update={"hosts": 1}),
        complete=True,
    )


def loop_factory(name: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The event loop to use: 'uvloop' where installed (for 'auto'), else the standard one."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: PLC0415 - optional speed-up
        except ImportError:
            if name == "uvloop":
                raise MissingToolError(
                    "--loop uvloop: uvloop is not installed (pip install uvloop, or the "
                    "'speed' extra: pip install 'ghostport-scanner[speed]'); or use --loop asyncio"
                ) from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return "uvloop", factory
    return "asyncio", None


def execute(coro_factory: Callable[[str], Coroutine[Any, Any, T]], loop: str) -> T:
    """Run a scan coroutine on the chosen event loop (its name is passed to the factory)."""
    name, factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_factory(name))
