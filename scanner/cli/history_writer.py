"""The history writer process (`python -m scanner.cli.history_writer`): started by a recorded
scan beside itself (scanner/store/sidecar.py says why and what crosses the pipe); answers on
stdout, exits 0 when the scan ended in order, 2 when the database failed."""

from __future__ import annotations

import os
import signal
import sys


def _reply(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> int:
    """Open the database, say `ready` (or the error), then record what the scan sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan decides; it ends us in order
    from scanner.errors import StoreError  # noqa: PLC0415
    from scanner.store.sidecar import read_url, serve  # noqa: PLC0415

    lines = sys.stdin.buffer
    try:
        url = read_url(lines)
        from scanner.store.database import open_store  # noqa: PLC0415

        store = open_store(url)
    except (StoreError, ValueError) as exc:
        _reply(f"error {type(exc).__name__}\t{exc}")
        return 2
    _reply("ready")
    try:
        ended = serve(store, lines)
    except StoreError as exc:
        _reply(f"error {type(exc).__name__}\t{exc}")
        return 2
    except Exception as exc:  # the scan reports it: the history failed, and why
        _reply(f"error StoreUnavailableError\tthe history writer failed: {exc!r}")
        return 2
    finally:
        store.close()
    if ended:
        # Everything is committed and the database closed: the scan may exit now, and so do
        # we, without the interpreter's teardown (a fifth of a second the scan would wait)
        _reply("done")
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
