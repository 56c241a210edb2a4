"""One scan, network or local audit, whole or a slice of it: plan -> engine -> judge -> results.

Results reach the caller through a `ScanObserver` as they arrive (the JSON writer, the history
database and the terminal are observers), so whatever was gathered survives an interruption.
Nothing here prints, exits or reads the terminal.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from scanner import __version__
from scanner.activity import ActivityProbe, ActivityTracker, worst_probe_wait
from scanner.assembly import Judge, PortAssembler, to_result
from scanner.classify import PortClassification
from scanner.engine import Engine, EngineOptions, EngineStats
from scanner.errors import MissingToolError
from scanner.models import (
    Finding,
    PortResult,
    PortState,
    ProbeTarget,
    ScanInfo,
    ScanOptions,
    ScanSummary,
    Severity,
    Transport,
    UnresolvedTargetResult,
    Verdict,
    utc_timestamp,
)
from scanner.origin import scanner_host, source_addresses
from scanner.plan import START, WHOLE, PortKey, ProbePlan, ResumePoint, ScanSlice
from scanner.ports import PortSpec, compress_ports
from scanner.profiles import Profile
from scanner.registry import Registry, describe_source
from scanner.targets import AddressBlock, build_target_set

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
    scope_specs: tuple[tuple[str, str], ...] = ()  # (where from, as written), for the record
    registry: Registry | None = None
    profiles: tuple[Profile, ...] = ()
    part: ScanSlice = WHOLE
    resume: ResumeState | None = None
    checkpoints: bool = False  # track which plan positions are finished (history, resume)
    identify_per_host: int = 2  # follow-up exchanges to one host at once
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
        self.activity: ActivityProbe | None = None  # what the unfinished ports wait for

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

    def record_many(self, transport: Transport, state: PortState, n: int) -> None:
        """Count `n` finished ports of one state that hold no finding (a sweep's resets)."""
        key = (transport, state)
        self.counts[key] = self.counts.get(key, 0) + n
        self.done += n

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

    def checkpoint_json(self) -> dict[str, Any]:
        """What the history records to resume from: the summary so far, and where the plan
        stands (when tracked)."""
        checkpoint: dict[str, Any] = {"summary": self.summary().model_dump(mode="json")}
        if self.checkpoint is not None:
            checkpoint.update(self.checkpoint().to_json())
        return checkpoint


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


class PeriodicRecorder:
    """What the history's observers share: the scan's id and tally once it started, and a
    commit of theirs (`_commit`) after every `interval_s` of progress; they commit at the end
    themselves."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._tally: ScanTally | None = None
        self._last_commit = time.monotonic()
        self.scan_id: str | None = None

    def _started(self, info: ScanInfo, tally: ScanTally) -> None:
        self._tally, self.scan_id = tally, info.id

    def progress(self, tally: ScanTally) -> None:
        if time.monotonic() - self._last_commit >= self._interval_s:
            self._last_commit = time.monotonic()
            self._commit()

    def _commit(self) -> None:
        raise NotImplementedError


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


def scan_info(  # noqa: PLR0917 - one record, built in two places
    config_line: Sequence[str],
    targets: Sequence[str],
    excludes: Sequence[str],
    ports: dict[Transport, Sequence[int]] | PortSpec,
    options: ScanOptions,
    profiles: Sequence[Profile],
    registry: Registry | None,
    started_at: str,
    *,
    scope_specs: Sequence[tuple[str, str]] = (),
    sources: Sequence[str] = (),
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
        scope={where: [text for w, text in scope_specs if w == where] for where, _ in scope_specs},
        scanner_host=scanner_host(),
        source_addresses=list(sources),
    )


def run_progress(observer: ScanObserver, tally: ScanTally) -> Callable[[], None]:
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


def describe_scan(config: ScanConfig, event_loop: str, started_at: str) -> ScanInfo:
    """The record of a scan about to run, as `run_scan` builds it (a sharded scan's
    coordinator builds it once for all its shards)."""
    options = scan_options(config.engine, config.seed, config.all_states, event_loop)
    return scan_info(
        config.command_line,
        config.targets,
        config.excludes,
        config.ports,
        options,
        config.profiles,
        config.registry,
        started_at,
    )


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
        lambda port: (judge.probe_set.first_udp(port),),
        config.part,
        resume.point if resume else START,
    )
    options = replace(config.engine, exchanges=judge.probe_set.exchanges)
    info = scan_info(
        config.command_line,
        config.targets,
        config.excludes,
        config.ports,
        scan_options(options, config.seed, config.all_states, event_loop),
        config.profiles,
        config.registry,
        resume.started_at if resume else utc_timestamp(),
        scope_specs=config.scope_specs,
        sources=source_addresses(resolved.addresses.blocks),
    )
    if resume:
        info = info.model_copy(update={"id": resume.scan_id})
    tally = ScanTally(resolved.addresses.size, len(plan))
    if resume and resume.summary:
        tally.restore(resume.summary)
    progress = PlanProgress(plan) if config.checkpoints else None
    if progress is not None:
        tally.checkpoint = progress.checkpoint
    tracker = ActivityTracker(tally.total, worst_probe_wait(options))
    tally.activity = tracker.snapshot
    observer.scan_started(info, list(resolved.unresolved), tally)
    listed_closed = config.all_states

    def deliver(classified: PortClassification) -> None:
        observation = classified.deciding
        tracker.finished((observation.host, observation.port, observation.transport))
        tally.record(classified)
        if classified.finding is not None:
            observer.finding(classified.finding)
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

    assembler = PortAssembler(
        judge,
        config.registry,
        resolved.hostnames,
        deliver,
        per_host=config.identify_per_host,
        timeout=options.timeout,
        scanned_tcp=config.ports.tcp,
    )
    stop_progress = run_progress(observer, tally)
    try:
        first: Engine | SynEngine
        if config.syn:  # --syn: the SYN engine runs TCP discovery, a connect Engine the rest
            from scanner.syn import SynEngine  # noqa: PLC0415

            # Closed ports that are neither listed nor checkpointed are only counted: the SYN
            # engine hands over a read's worth of resets at once
            closed = None
            if not listed_closed and progress is None:
                closed = assembler.closed_sink(
                    lambda n: tally.record_many(Transport.TCP, PortState.CLOSED, n)
                )
            first = SynEngine(options, tracker.sink(assembler.add), closed)
        else:
            first = Engine(options, tracker.sink(assembler.add))
        stats = await first.run(tracker.source(progress.walk() if progress is not None else plan))
        later = assembler.second_pass()
        if later:
            await Engine(options, tracker.sink(assembler.add)).run(tracker.source(later))
        return stats
    finally:
        assembler.flush()
        stop_progress()


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
