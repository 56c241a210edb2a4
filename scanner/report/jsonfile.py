"""The scan's JSON document, written while the scan runs.

On a seekable file, the document on disk is valid JSON at every flush: results are appended
in front of a trailer (`summary`, `"complete": false`) that is rewritten each time, so a crash
or Ctrl-C leaves everything gathered so far in a file any JSON parser reads. `finished_at` is
reserved as `null` plus padding in the header and overwritten in place at the end.
On a stream that cannot seek (stdout, a pipe) nothing can be rewritten, so the document is
written once, at the end. The writer is given its stream; it never opens or names a file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO

from pydantic import ValidationError

from scanner.errors import InputFileError
from scanner.models import (
    SCHEMA_VERSION,
    Finding,
    PortResult,
    ScanDocument,
    ScanInfo,
    ScanSummary,
    UnresolvedTargetResult,
    utc_timestamp,
)

_PLACEHOLDER = "__finished_at__"
_TIMESTAMP_WIDTH = len('"2026-01-01T00:00:00.000000Z"')
_FLUSH_INTERVAL_S = 0.25
_FLUSH_BATCH = 2048


class JsonResultWriter:
    """Streams one scan's document to a binary stream (rewritten in place where it seeks)."""

    def __init__(
        self,
        stream: IO[bytes],
        info: ScanInfo,
        unresolved: list[UnresolvedTargetResult],
        summary: Callable[[], ScanSummary],
    ) -> None:
        self._stream = stream
        self._info = info
        self._unresolved = unresolved
        self._summary = summary
        self._pending: list[str] = []
        self._findings: list[str] = []
        self._kept: list[str] = []  # stdout only
        self._count = 0
        self._last_flush = time.monotonic()
        self._closed = False
        self._file: IO[bytes] | None = None
        if _seekable(stream):
            self._file = stream
            header = self._header()
            marker = header.index(json.dumps(_PLACEHOLDER))
            self._finished_offset = len(header[:marker].encode())
            header = header.replace(json.dumps(_PLACEHOLDER), "null".ljust(_TIMESTAMP_WIDTH))
            self._file.write(header.encode())
            self._trailer_offset = self._file.tell()
            self._write_trailer(complete=False)

    def _header(self) -> str:
        info = self._info.model_copy(update={"finished_at": _PLACEHOLDER})
        unresolved = json.dumps([u.model_dump(mode="json") for u in self._unresolved])
        return (
            f'{{"schema_version": {json.dumps(SCHEMA_VERSION)},\n'
            f'"scan": {info.model_dump_json()},\n'
            f'"unresolved": {unresolved},\n'
            '"results": [\n'
        )

    def _trailer(self, complete: bool) -> str:
        findings = ",\n".join(self._findings)
        return (
            f'\n],\n"findings": [{findings}],\n'
            f'"summary": {self._summary().model_dump_json()},\n'
            f'"complete": {json.dumps(complete)}\n}}\n'
        )

    def _write_trailer(self, complete: bool) -> None:
        assert self._file is not None
        self._file.write(self._trailer(complete).encode())
        self._file.truncate()
        self._file.flush()

    def add(self, result: PortResult) -> None:
        """Queue one result; it reaches the file at the next flush."""
        self._pending.append(result.model_dump_json())
        if len(self._pending) >= _FLUSH_BATCH:
            self.flush()

    def add_finding(self, finding: Finding) -> None:
        """Findings are few: they live in the trailer, rewritten at every flush."""
        self._findings.append(finding.model_dump_json())
        self._last_flush = 0.0  # reach the file at the next tick

    def tick(self) -> None:
        """Called periodically: flush if results have waited long enough."""
        if time.monotonic() - self._last_flush >= _FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Write queued results and a fresh trailer; the file stays a valid document."""
        self._last_flush = time.monotonic()
        if self._file is None:
            self._kept.extend(self._pending)
            self._count += len(self._pending)
            self._pending.clear()
            return
        self._file.seek(self._trailer_offset)
        if self._pending:
            text = ",\n".join(self._pending)
            self._file.write(((",\n" if self._count else "") + text).encode())
        self._count += len(self._pending)
        self._pending.clear()
        self._trailer_offset = self._file.tell()
        self._write_trailer(complete=False)

    def close(self, complete: bool) -> None:
        """Write everything, stamp finished_at, and say whether the scan completed."""
        if self._closed:
            return
        self._closed = True
        finished_at = json.dumps(utc_timestamp())
        self.flush()
        if self._file is None:
            header = self._header().replace(json.dumps(_PLACEHOLDER), finished_at)
            text = header + ",\n".join(self._kept) + self._trailer(complete)
            self._stream.write(text.encode())
            self._stream.flush()
            return
        self._file.seek(self._trailer_offset)
        self._write_trailer(complete)
        self._file.seek(self._finished_offset)
        self._file.write(finished_at.encode())
        self._file.flush()


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable() and stream.tell() == 0
    except OSError:
        return False


def load_document(path: str) -> ScanDocument:
    """Read and validate a scan's JSON document; a broken file is one clear error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return ScanDocument.model_validate_json(handle.read())
    except OSError as exc:
        raise InputFileError(f"results file {path!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputFileError(f"results file {path!r} is not UTF-8 text") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise InputFileError(
            f"results file {path!r} is not a ghostport scan document: {where}: {first['msg']}"
        ) from None
