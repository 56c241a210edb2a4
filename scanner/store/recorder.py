"""The history database as a scan observer.

Results and findings are committed in batches, each in one transaction with the checkpoint
that covers exactly them and the counts at that moment, so a crash or SIGKILL loses at most
the last batch, and a resumed scan neither misses a port nor lists one twice.
"""

from __future__ import annotations

import sys

from scanner.models import Finding, PortResult, ScanInfo, UnresolvedTargetResult
from scanner.plan import ResumePoint
from scanner.scan import PeriodicRecorder, ResumeState, ScanTally
from scanner.store.database import Store
from scanner.store.writer import StoreWriter

_FOREVER = float("inf")


class ScanRecorder(PeriodicRecorder):
    """Records one scan as it runs; commits every `interval_s` and at the end."""

    def __init__(self, store: Store, interval_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self._store = store
        self._writer: StoreWriter | None = None

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        self._started(info, tally)
        self._store.begin_scan(info, unresolved)
        # Batches are cut by this recorder only, so each carries its own checkpoint.
        self._writer = StoreWriter(self._store, info.id, batch=sys.maxsize, interval_s=_FOREVER)

    def result(self, result: PortResult) -> None:
        if self._writer is not None:
            self._writer.add_result(result)

    def finding(self, finding: Finding) -> None:
        if self._writer is not None:
            self._writer.add_finding(finding)

    def _commit(self) -> None:
        tally, writer = self._tally, self._writer
        if tally is not None and writer is not None:
            writer.flush(tally.checkpoint_json(), tally.done)

    def finish(self, complete: bool) -> None:
        """Commit the rest and stamp the scan finished (complete or not)."""
        if self._writer is None or self._tally is None:
            return
        self._commit()
        self._writer.close(complete, self._tally.summary())


def resume_state(store: Store, scan_id: str) -> ResumeState:
    """Where a recorded scan stopped, and its counts then."""
    from scanner.models import ScanSummary  # noqa: PLC0415

    document = store.document(scan_id)
    checkpoint = store.checkpoint(scan_id).checkpoint or {}
    summary_data = checkpoint.get("summary")
    summary = ScanSummary.model_validate(summary_data) if summary_data else None
    return ResumeState(
        scan_id=scan_id,
        started_at=document.scan.started_at,
        point=ResumePoint.from_json(checkpoint),
        summary=summary,
    )
