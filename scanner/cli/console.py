"""The terminal: the progress line, live result lines and messages. The only code that writes
to stdout or stderr; everything it writes was rendered (and sanitised) elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

from scanner.models import (
    Finding,
    PortResult,
    PortState,
    ScanDocument,
    ScanInfo,
    Severity,
    UnresolvedTargetResult,
)
from scanner.report.jsonfile import JsonResultWriter
from scanner.report.text import one_line, render_finding_line
from scanner.scan import ScanTally


def out(text: str) -> None:
    """A line (or lines) of output on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """A line (or lines) of messages on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def stderr_is_terminal() -> bool:
    """True when a progress line can be drawn."""
    return sys.stderr.isatty()


class ConsoleObserver:
    """Feeds the JSON writer, streams open ports and findings, draws the progress line."""

    def __init__(
        self,
        json_stream: IO[bytes] | None,
        show_progress: bool,
        list_ports: bool,
        announce: Callable[[int], str] | None = None,
        replay: ScanDocument | None = None,
    ) -> None:
        self.json_stream = json_stream
        self.announce = announce  # the plan's opening line(s), given the number of hosts
        self.replay = replay
        self.writer: JsonResultWriter | None = None
        self.tally: ScanTally | None = None
        self.show_progress = show_progress
        self.list_ports = list_ports
        self._progress_shown = False
        self._out: IO[str] = sys.stdout
        self.severities: list[Severity] = []

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        self.tally = tally
        for item in unresolved:
            self._message(
                f"warning: {one_line(item.target)} did not resolve ({one_line(item.error)}); "
                "skipped"
            )
        if self.announce is not None:
            self._message(self.announce(tally.hosts))
        if self.json_stream is not None:
            self.writer = JsonResultWriter(self.json_stream, info, unresolved, tally.summary)
        if self.replay is not None:
            # A resumed scan: what was found before the interruption, once, in this document
            self._message(
                f"resuming scan {info.id}: {len(self.replay.results):,} results and "
                f"{len(self.replay.findings):,} findings recorded before"
            )
            for result in self.replay.results:
                self.result(result)
            for finding in self.replay.findings:
                self.finding(finding)

    def result(self, result: PortResult) -> None:
        if self.writer is not None:
            self.writer.add(result)
        if self.list_ports and result.state is PortState.OPEN:
            self._clear_progress()
            name = f" ({one_line(result.hostname)})" if result.hostname else ""
            registered = result.registry
            known = (
                f"\t{one_line(registered.name)} ({one_line(registered.description)})"
                if registered
                else ""
            )
            seen_from = f"[{one_line(result.vantage)}] " if result.vantage else ""
            self._out.write(
                f"{seen_from}{result.host}{name}\t{result.port}/{result.proto}\t{result.state}\t"
                f"{result.reason}{known}\n"
            )

    def finding(self, finding: Finding) -> None:
        if self.writer is not None:
            self.writer.add_finding(finding)
        self.severities.append(finding.severity)
        if self.list_ports:
            self._clear_progress()
            seen_from = f"[{one_line(finding.vantage)}] " if finding.vantage else ""
            self._out.write(seen_from + render_finding_line(finding) + "\n")

    def progress(self, tally: ScanTally) -> None:
        if self.writer is not None:
            self.writer.tick()
        if not self.show_progress:
            return
        elapsed = tally.elapsed()
        rate = tally.done / elapsed if elapsed > 0 else 0.0
        left = (tally.total - tally.done) / rate if rate > 0 else 0.0
        percent = 100.0 * tally.done / tally.total if tally.total else 100.0
        sys.stderr.write(
            f"\r\x1b[K{tally.done:,}/{tally.total:,} probes ({percent:.1f}%)  {rate:,.0f}/s  "
            f"ETA {int(left) // 60}:{int(left) % 60:02d}  open {tally.count(PortState.OPEN)}"
        )
        sys.stderr.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            sys.stderr.write("\r\x1b[K")
            self._progress_shown = False

    def _message(self, text: str) -> None:
        self._clear_progress()
        err(text)

    def finish(self, complete: bool) -> None:
        """Close the JSON document and print the summary line."""
        self._clear_progress()
        if self.writer is not None:
            self.writer.close(complete)
        tally = self.tally
        if tally is None:
            return
        states = (
            ", ".join(f"{tally.count(s)} {s}" for s in PortState if tally.count(s)) or "nothing"
        )
        status = "done" if complete else "INTERRUPTED"
        err(
            f"{status}: {tally.done:,} of {tally.total:,} probes on {tally.hosts:,} hosts in "
            f"{tally.elapsed():.2f} s: {states}"
        )
