"""A throwaway PostgreSQL server for tests: initdb into a temporary directory, listening on a
Unix socket in that directory only (no TCP), run as an unprivileged user when we are root."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

_STARTUP_DEADLINE_S = 60.0
_USER = "ghostport"


def postgres_bin() -> Path | None:
    """The directory of initdb and postgres: $GHOSTPORT_PG_BIN, else Debian's newest."""
    configured = os.environ.get("GHOSTPORT_PG_BIN")
    candidates = [Path(configured)] if configured else []

    def version(path: Path) -> int:
        match = re.search(r"/(\d+)/bin$", str(path))
        return int(match.group(1)) if match else 0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


def postgres_unavailable_reason() -> str | None:
    """Why a test PostgreSQL cannot run here, or None when it can."""
    if postgres_bin() is None:
        return (
            "needs PostgreSQL server binaries (Debian package postgresql: "
            "/usr/lib/postgresql/*/bin/initdb), or GHOSTPORT_PG_BIN"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs psycopg (pip install 'ghostport-scanner[postgres]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "running as root, and there is no user 'nobody' to run PostgreSQL as"
    return None


class PostgresServer:
    """One postgres process; `new_database` hands each test a database of its own."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="gp-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count()
        self._as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            # initdb refuses to run as root: the server runs as nobody, in a directory it owns.
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def start(self) -> None:
        """initdb, start postgres and wait until it accepts connections."""
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)}
        done = subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                _USER,
                "--auth=trust",
                "--locale=C",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
            **self._as_user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "fsync=off",  # a test server: the tests kill clients, never the server
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                **self._as_user,
            )
        self._wait_ready()

    def _connect(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=str(self.root), dbname=dbname, user=_USER, autocommit=True, connect_timeout=5
        )

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _STARTUP_DEADLINE_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at startup:\n{self.log.read_text()}")
            try:
                with self._connect():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not accept connections:\n{self.log.read_text()}"
                    ) from None
                time.sleep(0.1)

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL (Unix socket, no password)."""
        name = f"test_{next(self._names)}"
        with self._connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{_USER}@/{name}?host={self.root}"

    def stop(self) -> None:
        """Stop the server (by its PID) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # postgres: fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)
