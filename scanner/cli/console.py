"""The terminal: the progress line, live result lines and messages. The only code that writes
to stdout or stderr; everything it writes was rendered (and sanitised) elsewhere."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

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
from scanner.report.text import grepable_line, one_line, plural
from scanner.scan import ScanTally

if TYPE_CHECKING:
    from rich.console import Console

    from scanner.report.terminal import HostResults


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


LINE_FORMATS = ("text", "grepable", "lines")  # `lines` is another name for `grepable`


def _rich_console(stream: IO[str]) -> Console:
    """A rich console on a stream: colour when it is a terminal (rich also honours NO_COLOR,
    FORCE_COLOR and TERM=dumb), no markup, emoji or highlighting of the text we give it, and
    no wrapping when piped."""
    from rich.console import Console  # noqa: PLC0415 - rich loads only once a scan runs

    terminal = stream.isatty()
    return Console(
        file=stream,
        width=None if terminal else 4096,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=not terminal,
    )


class ConsoleObserver:
    """Feeds the JSON writer, prints one live line per open port (or one grepable line per
    result), draws the progress line, and closes with a table per host and a summary line.

    `quiet` leaves only errors on the terminal (an explicitly asked `--format grepable` still
    prints its lines). `line_format` is `text` (the live lines and tables) or `grepable`."""

    def __init__(
        self,
        json_stream: IO[bytes] | None,
        show_progress: bool,
        list_ports: bool,
        announce: Callable[[int], str] | None = None,
        replay: ScanDocument | None = None,
        *,
        quiet: bool = False,
        line_format: str = "text",
    ) -> None:
        self.json_stream = json_stream
        self.announce = announce  # the plan's opening line(s), given the number of hosts
        self.replay = replay
        self.writer: JsonResultWriter | None = None
        self.tally: ScanTally | None = None
        self.quiet = quiet
        self.show_progress = show_progress and not quiet
        self.grepable = line_format != "text"
        self.list_ports = list_ports and (self.grepable or not quiet)
        self._progress_shown = False
        self._header_shown = False
        self.severities: list[Severity] = []
        self._findings: dict[tuple[str, int, str, str | None], Finding] = {}
        self._hosts: dict[str, HostResults] = {}

    # rich loads when something is first drawn: a quiet scan with nothing to say never pays
    @functools.cached_property
    def _stdout(self) -> Console:
        return _rich_console(sys.stdout)

    @functools.cached_property
    def _stderr(self) -> Console:
        return _rich_console(sys.stderr)

    @functools.cached_property
    def _render(self) -> types.ModuleType:
        from scanner.report import terminal  # noqa: PLC0415

        return terminal

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        self.tally = tally
        for item in unresolved:
            # Said even with -q: a target the user named is not scanned
            self._message(
                f"warning: {one_line(item.target)} did not resolve ({one_line(item.error)}); "
                "skipped",
                always=True,
            )
        if self.announce is not None:
            self._message(self.announce(tally.hosts))
        if self.json_stream is not None:
            self.writer = JsonResultWriter(self.json_stream, info, unresolved, tally.summary)
        if self.replay is not None:
            # A resumed scan: what was found before the interruption, once, in this document
            self._message(
                f"resuming scan {info.id}: {plural(len(self.replay.results), 'result')} and "
                f"{plural(len(self.replay.findings), 'finding')} recorded before"
            )
            for finding in self.replay.findings:  # a port's finding comes before its result
                self.finding(finding)
            for result in self.replay.results:
                self.result(result)

    def result(self, result: PortResult) -> None:
        if self.writer is not None:
            self.writer.add(result)
        key = (result.host, result.port, result.proto.value, result.vantage)
        finding = self._findings.pop(key, None)
        if not self.list_ports:
            return
        if self.grepable:
            self._clear_progress()
            # Written as is: rich would expand the tabs that separate the fields
            self._stdout.file.write(grepable_line(result, finding) + "\n")
            self._stdout.file.flush()
            return
        label = f"{result.host} [{one_line(result.vantage)}]" if result.vantage else result.host
        host = self._hosts.get(label)
        if host is None:
            host = self._hosts[label] = self._render.HostResults(result.hostname)
        if result.state is not PortState.OPEN and finding is None:
            host.others[result.state] = host.others.get(result.state, 0) + 1
            return
        host.rows[result.port, result.proto.value] = (result, finding)
        if self._stdout.is_terminal:
            # Live lines only where someone watches; piped, the sorted tables say it once
            self._clear_progress()
            if not self._header_shown:
                self._stdout.print(self._render.result_header(), soft_wrap=True)
                self._header_shown = True
            self._stdout.print(self._render.result_line(result, finding), soft_wrap=True)

    def finding(self, finding: Finding) -> None:
        if self.writer is not None:
            self.writer.add_finding(finding)
        self.severities.append(finding.severity)
        # The port's result follows at once and prints the two on one line
        self._findings[finding.host, finding.port, finding.proto.value, finding.vantage] = finding

    def progress(self, tally: ScanTally) -> None:
        if self.writer is not None:
            self.writer.tick()
        if not self.show_progress:
            return
        activity = tally.activity(tally.done) if tally.activity is not None else None
        line = self._render.progress_line(
            done=tally.done,
            total=tally.total,
            elapsed=tally.elapsed(),
            opened=tally.count(PortState.OPEN),
            activity=activity,
            width=self._stderr.width,
        )
        self._stderr.file.write("\r\x1b[K")
        self._stderr.print(line, end="")
        self._stderr.file.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self._stderr.file.write("\r\x1b[K")
            self._stderr.file.flush()
            self._progress_shown = False

    def _message(self, text: str, always: bool = False) -> None:
        if self.quiet and not always:
            return
        self._clear_progress()
        err(text)

    def _print_tables(self) -> None:
        tables = self._render.host_tables(self._hosts)
        if self._stdout.is_terminal:
            if self._header_shown:
                self._stdout.print()
            self._stdout.print(tables)
            return
        # Piped: the same text without the padding rich leaves at the end of table lines
        with self._stdout.capture() as captured:
            self._stdout.print(tables)
        lines = captured.get().splitlines()
        self._stdout.file.write("".join(line.rstrip() + "\n" for line in lines))
        self._stdout.file.flush()

    def finish(self, complete: bool) -> None:
        """Close the JSON document, print the tables per host and the summary line."""
        self._clear_progress()
        if self.writer is not None:
            self.writer.close(complete)
        tally = self.tally
        if tally is None:
            return
        self._findings.clear()
        if self.list_ports and not self.grepable and self._hosts:
            self._print_tables()
        if self.quiet:
            return
        status = "done" if complete else "INTERRUPTED"
        states = [(s, tally.count(s)) for s in PortState]
        line = self._render.summary_line(
            status,
            done=tally.done,
            total=tally.total,
            hosts=tally.hosts,
            elapsed=tally.elapsed(),
            states=states,
            severities=self.severities,
        )
        self._stderr.print(line, soft_wrap=True)
