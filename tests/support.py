"""Real servers on loopback for tests: threads with real sockets, stopped by the fixtures."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterable, Iterator

from scanner.lab.layout import LabService
from scanner.models import PortResult


class _ServerThread(threading.Thread):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.host = sock.getsockname()[0]
        self._halt = threading.Event()
        self.connections = 0

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.sock.close()

    def run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not self._halt.is_set():
                if selector.select(timeout=0.05):
                    with contextlib.suppress(OSError):
                        self.handle()

    def handle(self) -> None:
        raise NotImplementedError


class TcpServer(_ServerThread):
    """Accepts connections; sends `banner` (if any) and closes."""

    def __init__(self, host: str = "127.0.0.1", banner: bytes = b"", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        super().__init__(sock)
        self.banner = banner

    def handle(self) -> None:
        conn, _ = self.sock.accept()
        self.connections += 1
        with conn:
            if self.banner:
                conn.sendall(self.banner)


class UdpServer(_ServerThread):
    """Answers every datagram with `reply`, or stays silent when reply is None."""

    def __init__(self, host: str = "127.0.0.1", reply: bytes | None = b"pong", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, port))
        super().__init__(sock)
        self.reply = reply
        self.received: list[bytes] = []

    def handle(self) -> None:
        data, peer = self.sock.recvfrom(65535)
        self.received.append(data)
        if self.reply is not None:
            self.sock.sendto(self.reply, peer)


def closed_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port nothing listens on: one the kernel gave us, bound and closed again."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def servers(*items: _ServerThread) -> Iterator[None]:
    """Run server threads for the duration of a block, and always stop them."""
    for item in items:
        item.start()
    try:
        yield
    finally:
        for item in items:
            item.stop()


def score(
    results: Iterable[PortResult], services: Iterable[LabService], hosts: list[str]
) -> list[str]:
    """How a scan of the lab differs from its known layout: one line per difference.

    Each service must be found as its `expect` says ("legacy <service id>", "squatter
    <protocol>", or a port state); any other open port on a lab host is a difference too.
    """
    found = {(r.host, r.port, r.proto.value): r for r in results}
    problems: list[str] = []
    expected_keys = set()
    for service in services:
        key = (service.host, service.port, service.transport)
        expected_keys.add(key)
        result = found.get(key)
        where = f"{service.host} {service.port}/{service.transport} ({service.name})"
        if result is None:
            problems.append(f"{where}: expected {service.expect}, not listed (closed?)")
            continue
        verdict, _, what = service.expect.partition(" ")
        if not what:
            if result.state.value != service.expect:
                problems.append(f"{where}: expected {service.expect}, got {result.state.value}")
            continue
        got_verdict = result.verdict.value if result.verdict else None
        got_what = None
        if result.service is not None:
            got_what = result.service.id if verdict == "legacy" else result.service.protocol
        if (got_verdict, got_what) != (verdict, what):
            problems.append(
                f"{where}: expected {service.expect}, got {result.state.value} "
                f"{got_verdict} {got_what}"
            )
    lab = set(hosts)
    for key, result in found.items():
        if key[0] in lab and key not in expected_keys and result.state.value == "open":
            problems.append(f"{key[0]} {key[1]}/{key[2]}: open, but nothing runs there")
    return problems
