"""The scan history from the scan command's side: the recorder observer, resume, changes.

`History.open` decides from --db / --no-db / $GHOSTPORT_DB whether the scan is recorded, and
opens the database before the first probe, so a bad URL or an unreachable database is an
error that costs nothing. A new scan is recorded by a writer process started as soon as the
arguments are parsed (`start_writer`, scanner/store/sidecar.py), so SQLAlchemy loads on the
other core; a resumed scan reads the database itself and records in this process.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from scanner.errors import ScanRefError
from scanner.models import (
    Finding,
    PortResult,
    ScanDocument,
    ScanInfo,
    UnresolvedTargetResult,
    model_json,
)
from scanner.scan import PeriodicRecorder, ResumeState, ScanObserver, ScanTally

if TYPE_CHECKING:
    from pydantic import BaseModel

    from scanner.store.recorder import ScanRecorder
    from scanner.store.sidecar import WriterProcess
    from scanner.store.store import Store


class WriterRecorder(PeriodicRecorder):
    """Records one scan through the history writer process: every result and finding as it
    comes, a commit with the scan's checkpoint every `interval_s`, the last at the end."""

    def __init__(self, writer: WriterProcess, interval_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self._writer = writer

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        self._started(info, tally)
        started = ",".join(model_json(u) for u in unresolved)
        body = f'{{"info":{model_json(info)},"unresolved":[{started}]}}'.encode()
        self._writer.send(b"s", body, flush=True)  # recorded while the scan runs

    def result(self, result: PortResult) -> None:
        self._writer.send(b"r", model_json(result).encode())

    def finding(self, finding: Finding) -> None:
        self._writer.send(b"f", model_json(finding).encode())

    def _commit(self) -> None:
        tally = self._tally
        if tally is not None:
            self._writer.check()  # a writer that stopped says why, now
            body = json.dumps({"checkpoint": tally.checkpoint_json(), "done": tally.done})
            self._writer.send(b"c", body.encode(), flush=True)

    def finish(self, complete: bool) -> None:
        """Commit the rest and stamp the scan finished (complete or not); wait for it."""
        tally = self._tally
        if tally is None:
            self._writer.abandon()
            return
        self._commit()
        summary = tally.summary().model_dump_json()
        self._writer.end(
            f'{{"complete":{"true" if complete else "false"},"summary":{summary}}}'.encode()
        )


class FinishingObserver(ScanObserver, Protocol):
    """An observer that closes its output when the scan ends (complete or not)."""

    def finish(self, complete: bool) -> None:
        """The scan ended; write what remains."""


class ObserverHub:
    """One observer that feeds several, in order; each closes even if another fails."""

    def __init__(self, observers: Sequence[FinishingObserver]) -> None:
        self._observers = list(observers)

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        for observer in self._observers:
            observer.scan_started(info, unresolved, tally)

    def result(self, result: PortResult) -> None:
        for observer in self._observers:
            observer.result(result)

    def finding(self, finding: Finding) -> None:
        for observer in self._observers:
            observer.finding(finding)

    def progress(self, tally: ScanTally) -> None:
        for observer in self._observers:
            observer.progress(tally)

    def finish(self, complete: bool) -> None:
        failure: BaseException | None = None
        for observer in self._observers:
            try:
                observer.finish(complete)
            except BaseException as exc:  # the others still close; the first error is raised
                failure = failure or exc
        if failure is not None:
            raise failure


@dataclass
class History:
    """The history database of one scan command, or none with --no-db."""

    store: Store | None = None
    recorder: ScanRecorder | WriterRecorder | None = None
    replay: ScanDocument | None = None
    url: str | None = None
    _resumed_id: str | None = None
    _documents: list[ScanDocument] = field(default_factory=list)

    @classmethod
    def open(cls, args: argparse.Namespace, writer: WriterProcess | None = None) -> History:
        """Open the database the flags name (before any probe), unless --no-db; with the
        writer started for it, once the writer says the database is open."""
        if args.no_db:
            if args.resume:
                raise ScanRefError("--resume needs the history database: drop --no-db")
            return cls()
        if writer is not None:
            writer.ready()
            return cls(recorder=WriterRecorder(writer), url=args.db)
        from scanner.store.database import open_store  # noqa: PLC0415 - SQLAlchemy here only
        from scanner.store.recorder import ScanRecorder  # noqa: PLC0415

        store = open_store(args.db)
        return cls(store=store, recorder=ScanRecorder(store), url=args.db)

    @property
    def recording(self) -> bool:
        """Whether the scan is recorded."""
        return self.recorder is not None

    def observers(self) -> list[FinishingObserver]:
        """The recorder, when the scan is recorded."""
        return [self.recorder] if self.recorder is not None else []

    def resume_state(self, ref: str) -> ResumeState:
        """Where the scan to resume stopped; its results so far are replayed to the JSON."""
        from scanner.store.recorder import resume_state  # noqa: PLC0415

        assert self.store is not None
        scan_id = self.store.resolve_ref(ref)
        state = resume_state(self.store, scan_id)
        self.replay = self.store.document(scan_id)
        self._resumed_id = scan_id
        return state

    def changes_since_previous(self, document: ScanDocument) -> BaseModel | None:
        """What changed since the previous complete scan of the same scope, if recorded."""
        if self.recorder is None or self.recorder.scan_id is None:
            return None
        from scanner.store.diff import diff_documents  # noqa: PLC0415

        if self.store is None:  # recorded by the writer process: read it here, now
            from scanner.store.database import open_store  # noqa: PLC0415

            self.store = open_store(self.url)

        previous = self.store.previous_of(self.recorder.scan_id)
        if previous is None:
            return None
        return diff_documents(self.store.document(previous), document)

    def close(self) -> None:
        """Release the database."""
        if self.store is not None:
            self.store.close()
