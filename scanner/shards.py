"""One scan as disjoint slices run elsewhere, merged back into one scan.

    ShardSpec      one shard: slice `part` of `parts` of the one permutation (one seed), over a
                   vantage's own targets; plain data, so it crosses a pipe or a broker
    run_slice      the slice side: `run_scan` on the shard, its results sent back in batches
    ShardMerger    the coordinator side: batches -> the one observer (one JSON document, one
                   history record, one progress line); results keyed (vantage, host, proto,
                   port), so a re-run shard never lists a port twice; the tally sums the
                   shards' own
    run_sharded    the coordinator: plan once, start the shards through a `ShardRunner`
                   (local processes: workers.py; Celery: cluster/), merge until all finish

A batch is a dict: {"shard", "attempt", "results", "findings", "summary", "final", "error"}.
Results and findings are models (through a pipe) or their JSON (through a broker).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from scanner.errors import ScannerError, ShardLostError, ShardRefusedError
from scanner.models import Finding, PortResult, ScanSummary, Severity, Verdict, utc_timestamp
from scanner.plan import ResumePoint, ScanSlice
from scanner.scan import (
    ScanConfig,
    ScanObserver,
    ScanTally,
    describe_scan,
    run_progress,
    run_scan,
)
from scanner.targets import build_target_set

BATCH_INTERVAL_S = 0.25
Batch = dict[str, Any]
ResultKey = tuple[str | None, str, str, int]


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """One shard of a scan: slice `part` of `parts`, over `targets`, seen from `vantage`."""

    shard: int
    part: int
    parts: int
    targets: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    vantage: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The shard as a broker message carries it."""
        return {
            "shard": self.shard,
            "part": self.part,
            "parts": self.parts,
            "targets": list(self.targets),
            "excludes": list(self.excludes),
            "vantage": self.vantage,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardSpec:
        """A shard from a broker message."""
        return cls(
            shard=int(data["shard"]),
            part=int(data["part"]),
            parts=int(data["parts"]),
            targets=tuple(str(t) for t in data["targets"]),
            excludes=tuple(str(t) for t in data.get("excludes", ())),
            vantage=None if data.get("vantage") is None else str(data["vantage"]),
        )

    def describe(self) -> str:
        """'shard 2 (vantage b)' for messages."""
        where = f" (vantage {self.vantage})" if self.vantage else ""
        return f"shard {self.shard}{where}"


def plan_shards(
    parts: int, targets: Sequence[str], excludes: Sequence[str], vantages: Mapping[str, str]
) -> list[ShardSpec]:
    """`parts` slices of the permutation, for every vantage (each over its own targets), or
    over `targets` when there is no vantage."""
    groups: list[tuple[str | None, tuple[str, ...]]] = (
        [(name, tuple(t for t in spec.split(",") if t)) for name, spec in vantages.items()]
        if vantages
        else [(None, tuple(targets))]
    )
    shards: list[ShardSpec] = []
    for vantage, group in groups:
        for part in range(parts):
            shards.append(ShardSpec(len(shards), part, parts, group, tuple(excludes), vantage))
    return shards


def error_batch(spec: ShardSpec, attempt: str, kind: str, message: str) -> Batch:
    """The last batch of a shard that could not run: kind 'refused' (a worker's scope) or
    'failed' (anything else)."""
    return {
        "shard": spec.shard,
        "attempt": attempt,
        "results": [],
        "findings": [],
        "summary": None,
        "final": True,
        "error": {"kind": kind, "message": message},
    }


class SliceRecorder:
    """The observer of a slice: results and findings stamped with the vantage, sent back in
    batches every BATCH_INTERVAL_S with the slice's counts so far."""

    def __init__(self, spec: ShardSpec, emit: Callable[[Batch], None], as_json: bool) -> None:
        self.spec = spec
        self.attempt = uuid.uuid4().hex
        self._emit = emit
        self._as_json = as_json
        self._results: list[Any] = []
        self._findings: list[Any] = []
        self._tally: ScanTally | None = None
        self._last = time.monotonic()

    def scan_started(self, info: Any, unresolved: Any, tally: ScanTally) -> None:
        self._tally = tally
        self.flush(final=False)  # a first word: the shard runs

    def result(self, result: PortResult) -> None:
        if self.spec.vantage is not None:
            result = result.model_copy(update={"vantage": self.spec.vantage})
        self._results.append(result.model_dump(mode="json") if self._as_json else result)

    def finding(self, finding: Finding) -> None:
        if self.spec.vantage is not None:
            finding = finding.model_copy(update={"vantage": self.spec.vantage})
        self._findings.append(finding.model_dump(mode="json") if self._as_json else finding)

    def progress(self, tally: ScanTally) -> None:
        if time.monotonic() - self._last >= BATCH_INTERVAL_S:
            self.flush(final=False)

    def flush(self, final: bool) -> None:
        """Send what was gathered since the last batch (also an empty one: a heartbeat)."""
        self._last = time.monotonic()
        summary = self._tally.summary() if self._tally is not None else None
        batch: Batch = {
            "shard": self.spec.shard,
            "attempt": self.attempt,
            "results": self._results,
            "findings": self._findings,
            "summary": (summary.model_dump(mode="json") if self._as_json and summary else summary),
            "final": final,
            "error": None,
        }
        self._results, self._findings = [], []
        self._emit(batch)


async def run_slice(
    config: ScanConfig,
    spec: ShardSpec,
    emit: Callable[[Batch], None],
    event_loop: str,
    as_json: bool = False,
) -> None:
    """Run one shard of a scan, sending its results back through `emit` in batches; the
    last batch has "final": True."""
    config = replace(
        config,
        targets=spec.targets,
        excludes=spec.excludes,
        part=ScanSlice(spec.part, spec.parts),
        resume=None,
        checkpoints=False,
    )
    recorder = SliceRecorder(spec, emit, as_json)
    await run_scan(config, recorder, event_loop)
    recorder.flush(final=True)


@dataclass(frozen=True, slots=True)
class ShardedResumePoint(ResumePoint):
    """A sharded scan's checkpoint: which shards finished, their final counts, and whether
    they ran through a broker (never its URL: it may hold credentials)."""

    parts: int = 1
    finished: Mapping[int, Mapping[str, Any]] | None = None
    broker: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            **ResumePoint.to_json(self),
            "shards": {
                "parts": self.parts,
                "finished": {str(k): v for k, v in (self.finished or {}).items()},
                "broker": self.broker,
            },
        }


def finished_shards(checkpoint: Mapping[str, Any] | None) -> tuple[int, dict[int, ScanSummary]]:
    """The parts count and finished shards' counts in a stored checkpoint; (0, {}) when the
    scan was not sharded."""
    shards = (checkpoint or {}).get("shards")
    if not isinstance(shards, dict):
        return 0, {}
    finished = {
        int(k): ScanSummary.model_validate(v) for k, v in dict(shards.get("finished", {})).items()
    }
    return int(shards.get("parts", 0)), finished


def ran_through_broker(checkpoint: Mapping[str, Any] | None) -> bool:
    """Whether a stored checkpoint's shards ran on broker workers (so a resume needs one)."""
    shards = (checkpoint or {}).get("shards")
    return isinstance(shards, dict) and shards.get("broker") is True


def _as_model(item: Any, model: type[PortResult] | type[Finding]) -> Any:
    return item if isinstance(item, model) else model.model_validate(item)


class ShardMerger:
    """Merges shards' batches into one observer and one tally."""

    def __init__(  # noqa: PLR0917 - what a merge starts from
        self,
        observer: ScanObserver,
        tally: ScanTally,
        shards: Sequence[ShardSpec],
        finished: Mapping[int, ScanSummary] | None = None,
        seen: Iterable[PortResult] = (),
        scan_id: str = "",
        broker: bool = False,
    ) -> None:
        self.scan_id = scan_id
        self.broker = broker
        self.observer = observer
        self.tally = tally
        self.shards = {s.shard: s for s in shards}
        self.summaries: dict[int, ScanSummary] = dict(finished or {})
        self.finished: set[int] = set(finished or {})
        self.last_heard: dict[int, float] = {}
        self._results: set[ResultKey] = {(r.vantage, r.host, r.proto.value, r.port) for r in seen}
        self._findings: set[tuple[str | None, str, str, int, str]] = set()
        tally.checkpoint = self.checkpoint
        self._retally()

    @property
    def pending(self) -> list[ShardSpec]:
        """Shards not finished yet."""
        return [s for n, s in self.shards.items() if n not in self.finished]

    def accept(self, batch: Batch) -> None:
        """One batch from a shard: new results and findings to the observer, counts updated.
        A failed shard raises (a refusal as ShardRefusedError)."""
        number = int(batch["shard"])
        spec = self.shards[number]
        self.last_heard[number] = time.monotonic()
        if number in self.finished:
            return  # a redelivered shard that had already finished
        error = batch.get("error")
        if error:
            message = f"{spec.describe()}: {error.get('message')}"
            if error.get("kind") == "refused":
                raise ShardRefusedError(f"a worker refused {message}")
            raise ShardLostError(message)
        for item in batch.get("results", ()):
            result: PortResult = _as_model(item, PortResult)
            key = (result.vantage, result.host, result.proto.value, result.port)
            if key not in self._results:
                self._results.add(key)
                self.observer.result(result)
        for item in batch.get("findings", ()):
            finding: Finding = _as_model(item, Finding)
            fkey = (
                finding.vantage,
                finding.host,
                finding.proto.value,
                finding.port,
                finding.service_id or finding.title,
            )
            if fkey not in self._findings:
                self._findings.add(fkey)
                self.observer.finding(finding)
        summary = batch.get("summary")
        if summary is not None:
            self.summaries[number] = (
                summary if isinstance(summary, ScanSummary) else ScanSummary.model_validate(summary)
            )
            self._retally()
        if batch.get("final"):
            self.finished.add(number)

    def _retally(self) -> None:
        tally = self.tally
        tally.counts.clear()
        tally.severities.clear()
        tally.verdicts.clear()
        tally.done = 0
        for summary in self.summaries.values():
            tally.done += summary.probes_done
            for transport, states in summary.states_by_proto.items():
                for state, n in states.items():
                    if n:
                        key = (transport, state)
                        tally.counts[key] = tally.counts.get(key, 0) + n
            for severity, n in summary.findings_by_severity.items():
                if n and severity in Severity.__members__.values():
                    sev = Severity(severity)
                    tally.severities[sev] = tally.severities.get(sev, 0) + n
            for verdict, n in summary.findings_by_verdict.items():
                if n and verdict in Verdict.__members__.values():
                    ver = Verdict(verdict)
                    tally.verdicts[ver] = tally.verdicts.get(ver, 0) + n

    def checkpoint(self) -> ResumePoint:
        """The shards finished so far, with their counts (a resume re-runs the others)."""
        parts = next(iter(self.shards.values())).parts if self.shards else 1
        return ShardedResumePoint(
            parts=parts,
            finished={n: self.summaries[n].model_dump(mode="json") for n in self.finished},
            broker=self.broker,
        )


class ShardRunner(Protocol):
    """Runs shards somewhere (local processes, Celery workers) and hands every batch to
    `accept` as it arrives; returns once every shard sent its final batch, raises when one
    is lost. Cancelling it stops the shards."""

    async def run(self, shards: Sequence[ShardSpec], merger: ShardMerger) -> None:
        """Run the pending shards of the merger."""


async def plan_totals(
    config: ScanConfig, shards: Sequence[ShardSpec]
) -> tuple[int, int, list[Any]]:
    """Hosts and probes of the whole sharded scan (summed over vantages), and the target
    names that did not resolve here."""
    hosts = total = 0
    unresolved: list[Any] = []
    groups = {(s.vantage, s.targets, s.excludes) for s in shards}
    for _, targets, excludes in sorted(groups, key=lambda g: str(g[0])):
        resolved = await build_target_set(targets, excludes, config.resolve_timeout, config.scopes)
        hosts += resolved.addresses.size
        total += resolved.addresses.size * len(config.ports)
        unresolved.extend(resolved.unresolved)
    return hosts, total, unresolved


async def run_sharded(  # noqa: PLR0917 - the coordinator's inputs
    config: ScanConfig,
    observer: ScanObserver,
    event_loop: str,
    shards: Sequence[ShardSpec],
    runner: ShardRunner,
    finished: Mapping[int, ScanSummary] | None = None,
    seen: Iterable[PortResult] = (),
    broker: bool = False,
) -> None:
    """The coordinator: one ScanInfo, one tally, one progress line over all shards;
    `broker`: the runner sends them to broker workers (recorded, so a resume asks for one)."""
    hosts, total, unresolved = await plan_totals(config, shards)
    resume = config.resume
    info = describe_scan(config, event_loop, resume.started_at if resume else utc_timestamp())
    if resume:
        info = info.model_copy(update={"id": resume.scan_id})
    tally = ScanTally(hosts, total)
    if resume and resume.summary:
        tally.started -= resume.summary.duration_s
    merger = ShardMerger(observer, tally, shards, finished, seen, info.id, broker)
    observer.scan_started(info, unresolved, tally)
    stop_progress = run_progress(observer, tally)
    try:
        if merger.pending:
            await runner.run(merger.pending, merger)
    finally:
        stop_progress()


__all__ = [
    "Batch",
    "ScannerError",
    "ShardMerger",
    "ShardRunner",
    "ShardSpec",
    "error_batch",
    "finished_shards",
    "plan_shards",
    "ran_through_broker",
    "run_sharded",
    "run_slice",
]
