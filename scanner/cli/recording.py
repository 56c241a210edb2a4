"""The scan history from the scan command's side: the recorder observer, resume, changes.

`History.open` decides from --db / --no-db / $GHOSTPORT_DB whether the scan is recorded, and
opens the database before the first probe, so a bad URL or an unreachable database is an
error that costs nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from scanner.errors import ScanRefError
from scanner.models import Finding, PortResult, ScanDocument, ScanInfo, UnresolvedTargetResult
from scanner.scan import ResumeState, ScanObserver, ScanTally

if TYPE_CHECKING:
    from pydantic import BaseModel

    from scanner.store.recorder import ScanRecorder
    from scanner.store.store import Store


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
    recorder: ScanRecorder | None = None
    replay: ScanDocument | None = None
    _resumed_id: str | None = None
    _documents: list[ScanDocument] = field(default_factory=list)

    @classmethod
    def open(cls, args: argparse.Namespace) -> History:
        """Open the database the flags name (before any probe), unless --no-db."""
        if args.no_db:
            if args.resume:
                raise ScanRefError("--resume needs the history database: drop --no-db")
            return cls()
        from scanner.store.database import open_store  # noqa: PLC0415 - SQLAlchemy here only
        from scanner.store.recorder import ScanRecorder  # noqa: PLC0415

        store = open_store(args.db)
        return cls(store=store, recorder=ScanRecorder(store))

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
        if self.store is None or self.recorder is None or self.recorder.scan_id is None:
            return None
        from scanner.store.diff import diff_documents  # noqa: PLC0415

        previous = self.store.previous_of(self.recorder.scan_id)
        if previous is None:
            return None
        return diff_documents(self.store.document(previous), document)

    def close(self) -> None:
        """Release the database."""
        if self.store is not None:
            self.store.close()
