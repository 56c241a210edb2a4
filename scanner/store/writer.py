"""A running scan's writer into the history: batches results and commits them together."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from scanner.models import Finding, LocalAudit, PortResult, ScanSummary
from scanner.store.common import utc_now
from scanner.store.store import Store


class StoreWriter:
    """Collects a scan's results and findings and records them in batches.

    A batch is committed when it holds `batch` items or when `interval_s` has passed since
    the last commit (checked on every add and on `tick`). The checkpoint given to `progress`
    or `flush` is committed in the same transaction as the results queued before it, so a
    crash (even SIGKILL) loses at most the batch in flight, and the stored checkpoint never
    claims a probe whose result is missing.
    """

    def __init__(
        self,
        store: Store,
        scan_id: str,
        batch: int = 500,
        interval_s: float = 1.0,
        summary: Callable[[], ScanSummary] | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._store = store
        self._scan_id = scan_id
        self._batch = batch
        self._interval_s = interval_s
        self._summary = summary
        self._results: list[PortResult] = []
        self._findings: list[Finding] = []
        self._checkpoint: Mapping[str, Any] | None = None
        self._probes_done: int | None = None
        self._progress_pending = False
        self._last_commit = time.monotonic()
        self._closed = False
        self.batches = 0
        """Transactions committed so far."""

    @property
    def pending(self) -> int:
        """Results and findings queued and not yet committed."""
        return len(self._results) + len(self._findings)

    def add_result(self, result: PortResult) -> None:
        """Queue one result."""
        self._results.append(result)
        self._maybe_flush()

    def add_finding(self, finding: Finding) -> None:
        """Queue one finding."""
        self._findings.append(finding)
        self._maybe_flush()

    def progress(
        self, checkpoint: Mapping[str, Any] | None, probes_done: int | None = None
    ) -> None:
        """Remember how far the scan is; it is committed with the next batch. Call it only
        once every result up to that point has been added."""
        if checkpoint is not None:
            self._checkpoint = checkpoint
        if probes_done is not None:
            self._probes_done = probes_done
        self._progress_pending = True

    def tick(self) -> None:
        """Called periodically: commit what has waited `interval_s`."""
        if time.monotonic() - self._last_commit >= self._interval_s:
            self.flush()

    def flush(
        self, checkpoint: Mapping[str, Any] | None = None, probes_done: int | None = None
    ) -> None:
        """Commit everything queued, with the latest checkpoint, in one transaction."""
        if checkpoint is not None or probes_done is not None:
            self.progress(checkpoint, probes_done)
        self._last_commit = time.monotonic()
        if not self.pending and not self._progress_pending:
            return
        self._store.record(
            self._scan_id,
            self._results,
            self._findings,
            checkpoint=self._checkpoint if self._progress_pending else None,
            probes_done=self._probes_done if self._progress_pending else None,
            summary=self._summary() if self._summary is not None else None,
        )
        self._results = []
        self._findings = []
        self._progress_pending = False
        self.batches += 1

    def close(
        self,
        complete: bool,
        summary: ScanSummary,
        finished_at: str | None = None,
        local: LocalAudit | None = None,
    ) -> None:
        """Commit the rest and stamp the scan finished (complete or not). Idempotent."""
        if self._closed:
            return
        self.flush()
        self._store.finish_scan(
            self._scan_id, finished_at or utc_now(), summary, complete, local=local
        )
        self._closed = True

    def _maybe_flush(self) -> None:
        # Called for every result (a row per probe with --all-states): no clock read when no
        # interval is set (the scan recorder cuts the batches itself).
        if len(self._results) + len(self._findings) >= self._batch or (
            self._interval_s != math.inf
            and time.monotonic() - self._last_commit >= self._interval_s
        ):
            self.flush()
