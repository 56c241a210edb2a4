"""A throwaway RabbitMQ (Debian's rabbitmq-server) inside a test's network namespace: its own
epmd and node on 127.0.0.1 there only, every file (database, logs, cookie, pid) in a
temporary directory; stopped by its process group, which the test created."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_STARTUP_DEADLINE_S = 120.0
PORT = 5672


def rabbitmq_unavailable_reason() -> str | None:
    """Why a test RabbitMQ cannot run here, or None when it can."""
    if not SERVER.is_file() or shutil.which("epmd") is None:
        return "needs RabbitMQ (Debian package rabbitmq-server: /usr/lib/rabbitmq/bin, epmd)"
    return None


class RabbitServer:
    """epmd and one RabbitMQ node in namespace `netns`, listening on 127.0.0.1:5672 there."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.root = Path(tempfile.mkdtemp(prefix="gp-rabbit-", dir="/tmp"))
        self.processes: list[subprocess.Popen[str]] = []
        self.log: list[str] = []

    @property
    def url(self) -> str:
        """The AMQP URL of the node (RabbitMQ's guest user may log in from loopback only)."""
        return f"amqp://guest:guest@127.0.0.1:{PORT}//"

    def _spawn(self, *cmd: str, env: dict[str, str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *cmd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.root,
            start_new_session=True,  # its own process group: beam and its helpers stop with it
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        """Start epmd and the node; return once the node says it is up."""
        root = str(self.root)
        (self.root / "enabled_plugins").write_text("[].\n")
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": root,  # the Erlang cookie
            "LC_ALL": "C.UTF-8",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(PORT),
            "RABBITMQ_DIST_PORT": str(PORT + 20000),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": f"{root}/mnesia",
            "RABBITMQ_LOG_BASE": f"{root}/log",
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_PID_FILE": f"{root}/rabbit.pid",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{root}/enabled_plugins",
            "RABBITMQ_CONFIG_FILE": f"{root}/rabbitmq",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{root}/advanced.config",
            "RABBITMQ_CONF_ENV_FILE": f"{root}/rabbitmq-env.conf",
        }
        self._spawn("epmd", "-address", "127.0.0.1", env=env)
        server = self._spawn(str(SERVER), env=env)
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert server.stdout is not None
            for line in server.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=_STARTUP_DEADLINE_S)
            except queue.Empty:
                raise AssertionError(
                    "rabbitmq-server did not start:\n" + "".join(self.log)
                ) from None
            if line is None:
                raise AssertionError("rabbitmq-server exited:\n" + "".join(self.log))
            self.log.append(line)
            if "Server startup complete" in line:
                return

    def stop(self) -> None:
        """Stop the node and epmd (their process groups, which we made), remove the files."""
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            else:
                # the group outlives a leader that exited (beam's helpers)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            if process.stdout is not None:
                process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)
