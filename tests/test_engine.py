"""The engine over real sockets on 127.0.0.0/8 and ::1, on both event loops."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap

import pytest

from scanner.engine import Engine, EngineOptions
from scanner.models import PortObservation, PortState, ProbeTarget, Reason, Transport
from scanner.scan import loop_factory
from tests.support import TcpServer, UdpServer, closed_port, servers

LOOPS = ["asyncio", "uvloop"]


def run_engine(
    loop: str, targets: list[ProbeTarget], **options: object
) -> dict[tuple[int, Transport], PortObservation]:
    _, factory = loop_factory(loop)
    seen: list[PortObservation] = []
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(Engine(EngineOptions(**options), seen.append).run(targets))  # type: ignore[arg-type]
    assert len(seen) == len(targets), "every probe gets exactly one observation"
    return {(o.port, o.transport): o for o in seen}


def tcp(port: int, host: str = "127.0.0.1") -> ProbeTarget:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return ProbeTarget(host, family, port, Transport.TCP)


def udp(port: int, host: str = "127.0.0.1") -> ProbeTarget:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return ProbeTarget(host, family, port, Transport.UDP)


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return str(request.param)


def test_tcp_open_and_closed(loop: str) -> None:
    server = TcpServer()
    with servers(server):
        shut = closed_port()
        seen = run_engine(loop, [tcp(server.port), tcp(shut)], timeout=2.0)
    assert (seen[server.port, Transport.TCP].state, seen[server.port, Transport.TCP].reason) == (
        PortState.OPEN,
        Reason.SYN_ACK,
    )
    assert (seen[shut, Transport.TCP].state, seen[shut, Transport.TCP].reason) == (
        PortState.CLOSED,
        Reason.CONN_REFUSED,
    )
    assert seen[server.port, Transport.TCP].rtt is not None


def test_udp_reply_closed_and_silent(loop: str) -> None:
    # Given a UDP responder, a silent UDP socket and a port nobody holds
    answering, silent = UdpServer(reply=b"\x30\x26pong"), UdpServer(reply=None)
    with servers(answering, silent):
        shut = closed_port(socket.SOCK_DGRAM)
        seen = run_engine(
            loop,
            [udp(answering.port), udp(silent.port), udp(shut)],
            timeout=0.3,
            retries=1,
            udp_payload=b"ping",
        )
    # Then the reply is open with its bytes, the ICMP error is closed, silence open|filtered
    reply = seen[answering.port, Transport.UDP]
    assert (reply.state, reply.reason, reply.response) == (
        PortState.OPEN,
        Reason.UDP_RESPONSE,
        b"\x30\x26pong",
    )
    assert answering.received == [b"ping"]
    closed = seen[shut, Transport.UDP]
    assert (closed.state, closed.reason) == (PortState.CLOSED, Reason.PORT_UNREACH)
    quiet = seen[silent.port, Transport.UDP]
    assert (quiet.state, quiet.reason, quiet.attempts) == (
        PortState.OPEN_FILTERED,
        Reason.NO_RESPONSE,
        2,
    )
    assert silent.received == [b"ping", b"ping"], "the retry was sent"


def test_many_closed_udp_ports(loop: str) -> None:
    many = [closed_port(socket.SOCK_DGRAM) for _ in range(200)]
    seen = run_engine(loop, [udp(p) for p in many], timeout=0.5, retries=0)
    assert all(o.state is PortState.CLOSED for o in seen.values())


def test_udp_error_after_the_wait_started(loop: str) -> None:
    # Given a silent UDP socket that closes while the probe waits for its retry
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    _, factory = loop_factory(loop)
    seen: list[PortObservation] = []

    async def scenario() -> None:
        asyncio.get_running_loop().call_later(0.2, holder.close)
        await Engine(EngineOptions(timeout=0.5, retries=1), seen.append).run([udp(port)])

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario())
    # Then the retry's ICMP port unreachable wakes the waiting probe: closed, not open|filtered
    assert (seen[0].state, seen[0].reason, seen[0].attempts) == (
        PortState.CLOSED,
        Reason.PORT_UNREACH,
        2,
    )


def test_banner_is_read_on_open_tcp(loop: str) -> None:
    server = TcpServer(banner=b"220 legacy ftpd ready\r\n")
    with servers(server):
        seen = run_engine(loop, [tcp(server.port)], timeout=1.0, banner_wait=1.0)
    assert seen[server.port, Transport.TCP].response == b"220 legacy ftpd ready\r\n"


def test_banner_read_is_capped(loop: str) -> None:
    server = TcpServer(banner=b"A" * 100_000)
    with servers(server):
        seen = run_engine(loop, [tcp(server.port)], timeout=1.0, banner_wait=1.0, read_limit=1000)
    assert seen[server.port, Transport.TCP].response == b"A" * 1000


def test_ipv6_loopback(loop: str) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server, answering = TcpServer("::1"), UdpServer("::1")
    except OSError as exc:
        pytest.skip(f"::1 is not usable here: {exc}")
    with servers(server, answering):
        shut_tcp, shut_udp = closed_port(host="::1"), closed_port(socket.SOCK_DGRAM, "::1")
        seen = run_engine(
            loop,
            [
                tcp(server.port, "::1"),
                tcp(shut_tcp, "::1"),
                udp(answering.port, "::1"),
                udp(shut_udp, "::1"),
            ],
            timeout=1.0,
        )
    assert seen[server.port, Transport.TCP].state is PortState.OPEN
    assert seen[shut_tcp, Transport.TCP].state is PortState.CLOSED
    assert seen[answering.port, Transport.UDP].state is PortState.OPEN
    assert seen[shut_udp, Transport.UDP].reason is Reason.PORT_UNREACH


def test_per_host_cap_and_many_hosts(loop: str) -> None:
    # Given 64 addresses x 8 closed ports with at most 2 probes per host in flight
    shut = [closed_port() for _ in range(8)]
    targets = [tcp(port, f"127.0.3.{h}") for h in range(1, 65) for port in shut]
    seen: list[PortObservation] = []
    _, factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        engine = Engine(EngineOptions(per_host=2, max_inflight=16), seen.append)
        runner.run(engine.run(targets))
    # Then nothing is lost or repeated
    assert sorted((o.host, o.port) for o in seen) == sorted((t.host, t.port) for t in targets)
    assert engine.stats.peak_inflight <= 16


def test_rate_limit_spaces_probes(loop: str) -> None:
    shut = closed_port()
    _, factory = loop_factory(loop)
    seen: list[PortObservation] = []

    async def scenario() -> float:
        loop_ = asyncio.get_running_loop()
        start = loop_.time()
        await Engine(EngineOptions(rate=50), seen.append).run([tcp(shut)] * 30)
        return loop_.time() - start

    with asyncio.Runner(loop_factory=factory) as runner:
        elapsed = runner.run(scenario())
    # 30 probes at 50/s with a burst of at most 2.5: the last can't leave before ~0.5 s
    assert len(seen) == 30
    assert elapsed >= 0.45


def test_a_sink_error_stops_the_run_instead_of_vanishing(loop: str) -> None:
    def broken(_: PortObservation) -> None:
        raise OSError(28, "No space left on device")

    _, factory = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner, pytest.raises(OSError, match="space"):
        runner.run(Engine(EngineOptions(), broken).run([tcp(closed_port())]))


def test_descriptor_exhaustion_slows_but_loses_nothing() -> None:
    """With 40 descriptors and 300 probes that hold theirs, socket() fails with EMFILE."""
    code = textwrap.dedent(
        """
        import asyncio, resource, socket
        from scanner.engine import Engine, EngineOptions
        from scanner.models import ProbeTarget, Transport
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("0.0.0.0", 0))  # every 127.x address: datagrams arrive, no answer
        port = silent.getsockname()[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        targets = [ProbeTarget(f"127.0.{4 + i // 250}.{i % 250 + 1}", socket.AF_INET, port,
                               Transport.UDP) for i in range(300)]
        seen = []
        engine = Engine(EngineOptions(timeout=0.05, retries=0, max_inflight=500), seen.append)
        asyncio.run(engine.run(targets))
        silent_ones = sum(o.state.value == "open|filtered" for o in seen)
        print(len(seen), len({(o.host, o.port) for o in seen}), silent_ones,
              engine.stats.resource_waits)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    count, unique, silent_ones, waits = map(int, done.stdout.split())
    assert (count, unique, silent_ones) == (300, 300, 300)  # every probe observed once, right
    assert waits > 0, "the limit was really hit"


def test_exchanges_reply_from_another_port_and_follow_ups(loop: str) -> None:
    from scanner.models import ExchangeSpec

    # Given a UDP server that answers from a second socket (a new port, as TFTP does),
    # and a TCP server that answers a request line
    reply_from = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reply_from.bind(("127.0.0.1", 0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    import threading

    def tftp_like() -> None:
        _request, peer = listener.recvfrom(512)
        reply_from.sendto(b"\x00\x05\x00\x01File not found\x00", peer)

    worker = threading.Thread(target=tftp_like, daemon=True)
    worker.start()
    http = TcpServer(banner=b"HTTP/1.0 200 OK\r\n\r\nhello")
    exchanges = (
        ExchangeSpec(b"\x00\x01x\x00octet\x00", wait=1.0, any_source_port=True),
        ExchangeSpec(b"GET / HTTP/1.0\r\n\r\n", read=True, wait=1.0),
    )
    seen: list[PortObservation] = []
    _, factory = loop_factory(loop)

    def sink(observation: PortObservation) -> list[ProbeTarget]:
        seen.append(observation)
        # When discovery finds the TCP port open, follow up with the request exchange
        if observation.transport is Transport.TCP and observation.probe == 0:
            return [tcp(observation.port)._replace(probe=2)]
        return []

    engine = Engine(EngineOptions(timeout=1.0, exchanges=exchanges), sink)
    with servers(http), asyncio.Runner(loop_factory=factory) as runner:
        runner.run(engine.run([udp(listener.getsockname()[1])._replace(probe=1), tcp(http.port)]))
    worker.join(timeout=5)
    listener.close()
    reply_from.close()
    by_probe = {(o.transport, o.probe): o for o in seen}
    # Then the reply from the other port is attributed to the probe, and the follow-up ran
    assert by_probe[Transport.UDP, 1].state is PortState.OPEN
    assert by_probe[Transport.UDP, 1].response == b"\x00\x05\x00\x01File not found\x00"
    assert by_probe[Transport.TCP, 0].response is None
    assert by_probe[Transport.TCP, 2].response == b"HTTP/1.0 200 OK\r\n\r\nhello"
