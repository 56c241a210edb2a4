"""The history writer process (`python -m scanner.cli.history_writer`): started by a recorded
scan beside itself (scanner/store/sidecar.py says why and what crosses the pipe); answers on
stdout, exits 0 when the scan ended in order, 2 when the database failed."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from typing import IO


def _reply(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> int:
    """Open the database, say `ready` (or the error), then record what the scan sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan decides; it ends us in order
    from scanner.errors import StoreError  # noqa: PLC0415
    from scanner.store.sidecar import read_url  # noqa: PLC0415

    lines = sys.stdin.buffer
    try:
        serve, close = _open(read_url(lines))
    except (StoreError, ValueError) as exc:
        _reply(f"error {type(exc).__name__}\t{exc}")
        return 2
    _reply("ready")
    try:
        ended = serve(lines)
    except StoreError as exc:
        _reply(f"error {type(exc).__name__}\t{exc}")
        return 2
    except Exception as exc:  # the scan reports it: the history failed, and why
        _reply(f"error StoreUnavailableError\tthe history writer failed: {exc!r}")
        return 2
    finally:
        close()
    if ended:
        # Everything is committed and the database closed: the scan may exit now, and so do
        # we, without the interpreter's teardown (a fifth of a second the scan would wait)
        _reply("done")
        os._exit(0)
    return 0


def _open(url: str | None) -> tuple[Callable[[IO[bytes]], bool], Callable[[], None]]:
    """How to serve the scan's messages and close the database: the light way (sqlite3
    alone, scanner/store/lite.py) for a SQLite file at the newest schema, else the full way
    (SQLAlchemy: creates, migrates, PostgreSQL)."""
    from scanner.store.lite import open_lite, serve_lite  # noqa: PLC0415

    lite = open_lite(url)
    if lite is not None:
        return partial(serve_lite, lite), lite.close
    from scanner.store.database import open_store  # noqa: PLC0415
    from scanner.store.sidecar import serve  # noqa: PLC0415

    store = open_store(url)
    return partial(serve, store), store.close


if __name__ == "__main__":
    sys.exit(main())
