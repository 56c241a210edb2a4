"""The asyncio scan engine: a fixed number of in-flight slots fed from a lazy probe stream.

Design, for speed:
- No Task, Future or coroutine per probe. A probe is one small slotted `_Flight` and one
  non-blocking socket whose readiness is watched with `loop.add_writer` / `loop.add_reader`.
  The asyncio layer only multiplexes readiness; it is never on the per-byte path.
- Slots (the "workers") are refilled from the probe iterator as probes finish, so memory stays
  flat whatever the size of the scan.
- Deadlines live in FIFO queues, one per wait length: with a fixed wait, deadlines are appended
  in order, so expiry is a popleft and a sweep every few milliseconds replaces a timer per probe.
- Answers that are already there (an RST on a LAN or loopback, an ICMP error queued while we
  sent) are read at once, before any readiness registration.

Limits: a global in-flight cap (sized by the caller from RLIMIT_NOFILE), a per-host cap, a token
bucket for --rate, retries with a doubling wait for silent probes. When this machine runs out
of descriptors or ephemeral ports, the probe waits and is started again later, with the global
cap lowered: the scan slows down, it never loses a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from scanner.models import (
    ExchangeSpec,
    PortObservation,
    PortState,
    ProbeTarget,
    Reason,
    Transport,
)
from scanner.transport import (
    LOCAL_RESOURCE_ERRNOS,
    SO_LINGER_RESET,
    RawSocket,
    ephemeral_ports,
    errno_name,
    is_self_connected,
    local_error_outcome,
    open_tcp,
    open_udp,
    socket_address,
    tcp_connect_outcome,
    udp_error_outcome,
)

_CONNECTING, _READING, _WAITING = 0, 1, 2
_RESOURCE_BACKOFF_S = 0.02
# Probes a pump call may start before the event loop gets a turn: probes that end at once
# (a refused loopback port, an unreachable network) would otherwise keep the loop from
# timers, I/O and signals for the whole scan.
_PUMP_BUDGET = 512

# The sink takes each finished probe's observation and may return follow-up probes (the
# exchanges an open port gets next); they run ahead of the plan. Most calls return None.
ObservationSink = Callable[[PortObservation], Iterable[ProbeTarget] | None]


def _step(wait: float) -> float:
    """A wait rounded up to 10 ms: deadline queues are per wait, so waits adapted to each
    host's round trips must not each make a queue of their own."""
    return max(0.01, -(-round(wait * 1000) // 10) / 100)


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the engine probes. Waits are in seconds.

    `ProbeTarget.probe` indexes `exchanges`; index 0 is the discovery probe (a bare TCP
    connect, or the banner read with `banner_wait`; an empty UDP datagram by default).
    """

    timeout: float = 1.0
    retries: int = 1
    rate: float | None = None
    max_inflight: int = 1024
    per_host: int = 256
    read_limit: int = 8192
    banner_wait: float = 0.0
    quiet: float = 0.15  # once an answer has started, how long a pause ends it
    udp_payload: bytes = b""
    exchanges: tuple[ExchangeSpec, ...] = ()

    def exchange(self, index: int, transport: Transport) -> ExchangeSpec:
        """The exchange a probe runs (index 0 is built from the discovery options)."""
        if index:
            return self.exchanges[index - 1]
        if transport is Transport.UDP:
            return ExchangeSpec(self.udp_payload)
        reads = self.banner_wait > 0
        return ExchangeSpec(b"", reads, max(self.banner_wait, self.timeout))

    def attempt_wait(
        self, attempt: int, exchange: ExchangeSpec | None = None, adapted: float = 0.0
    ) -> float:
        """Wait for attempt 1, 2, ...: the probe's adapted wait, else the exchange's, else the
        timeout; doubled for each retry, in steps of 10 ms (one deadline queue per step)."""
        base = adapted or (exchange.wait if exchange is not None and exchange.wait else 0.0)
        return _step(float(base or self.timeout) * float(2 ** (attempt - 1)))


@dataclass(slots=True)
class EngineStats:
    """Counters of one engine run."""

    started: int = 0
    attempts: int = 0
    finished: int = 0
    resource_waits: int = 0
    inflight_cap: int = 0
    peak_inflight: int = 0


class _Flight:
    """One probe in flight. Slotted: one is created per probe."""

    __slots__ = (
        "address",
        "attempt",
        "buffer",
        "exchange",
        "fd",
        "generation",
        "redone",
        "sock",
        "stage",
        "started",
        "target",
        "watched",
    )

    def __init__(self, target: ProbeTarget, exchange: ExchangeSpec) -> None:
        self.target = target
        self.exchange = exchange
        self.address = socket_address(target.family, target.host, target.port)
        self.sock: RawSocket | None = None
        self.fd = -1
        self.attempt = 0
        self.generation = 0
        self.stage = _CONNECTING
        self.started = 0.0
        self.buffer = b""
        self.watched = False
        self.redone = 0


class Engine:
    """Runs probes to completion and hands each `PortObservation` to the sink as it finishes."""

    def __init__(self, options: EngineOptions, sink: ObservationSink) -> None:
        self._options = options
        self._sink = sink
        self.stats = EngineStats(inflight_cap=max(1, options.max_inflight))
        self._cap = self.stats.inflight_cap
        self._source: Iterator[ProbeTarget] = iter(())
        self._source_done = False
        self._inflight = 0
        self._flights: set[_Flight] = set()
        self._per_host: dict[str, int] = {}
        self._deferred: dict[str, deque[ProbeTarget]] = {}
        self._deferred_total = 0
        self._deferred_limit = max(1024, 4 * self._cap)
        self._ready: deque[ProbeTarget] = deque()  # host slot already reserved
        self._submitted: deque[ProbeTarget] = deque()  # follow-ups, ahead of the plan
        self._waiting: deque[ProbeTarget] = deque()  # hit a local resource limit
        self._retry: deque[_Flight] = deque()
        self._deadlines: dict[float, deque[tuple[float, int, _Flight]]] = {}
        self._tokens = 0.0
        self._token_time = 0.0
        self._pumping = False
        self._pump_handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._tick = min(0.05, max(0.002, options.timeout / 8))
        self._quiet = _step(options.quiet)
        # Built once: probe 0 (discovery) is most probes of a sweep.
        self._discovery = {t: options.exchange(0, t) for t in Transport}
        self._exchanges = options.exchanges
        self._ephemeral = ephemeral_ports()
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holds = 0

    # ----------------------------------------------------------------- lifecycle

    async def run(self, probes: Iterable[ProbeTarget]) -> EngineStats:
        """Probe everything the iterable yields; return when every probe has an observation."""
        self._loop = loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._source = iter(probes)
        self._token_time = time.monotonic()
        self._tokens = self._bucket_size()
        self._sweep_handle = loop.call_later(self._tick, self._sweep)
        self._pump()
        try:
            await self._done
        finally:
            self._shutdown()
        return self.stats

    def submit(self, targets: Iterable[ProbeTarget]) -> None:
        """Probe these too, ahead of the plan, like the sink's follow-ups: for a caller that
        feeds the engine from outside (the SYN scan's UDP probes and open ports)."""
        self._submitted.extend(targets)
        self._schedule_pump()

    def hold(self) -> Callable[[], None]:
        """Keep run() going, even with nothing left to probe, until the returned function is
        called: a feeder that may still `submit` calls it when it is done."""
        self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._holds -= 1
                self._schedule_pump()

        return release

    def _shutdown(self) -> None:
        for handle in (self._sweep_handle, self._pump_handle):
            if handle is not None:
                handle.cancel()
        for flight in list(self._flights):
            self._release_socket(flight, reset=True)
        self._flights.clear()

    def _fail_run(self, exc: BaseException) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    def _check_done(self) -> None:
        if (
            self._source_done
            and self._inflight == 0
            and not self._holds
            and not (
                self._retry
                or self._ready
                or self._waiting
                or self._submitted
                or self._deferred_total
            )
            and self._done is not None
            and not self._done.done()
        ):
            self._done.set_result(None)

    # ----------------------------------------------------------------- scheduling

    def _bucket_size(self) -> float:
        rate = self._options.rate
        return max(1.0, rate / 20) if rate else 0.0

    def _take_token(self) -> bool:
        rate = self._options.rate
        if not rate:
            return True
        now = time.monotonic()
        self._tokens = min(self._bucket_size(), self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._schedule_pump((1.0 - self._tokens) / rate)
        return False

    def _schedule_pump(self, delay: float = 0.0) -> None:
        """Run the pump soon (once per loop iteration however many probes finished), or after
        a delay when it waits for a rate token or for resources."""
        if self._pump_handle is not None or self._loop is None:
            return
        if delay > 0:
            self._pump_handle = self._loop.call_later(delay, self._pump)
        elif not self._pumping:
            self._pump_handle = self._loop.call_soon(self._pump)

    def _next_target(self) -> tuple[ProbeTarget, bool] | None:
        """The next probe to start, and whether its host slot is already reserved."""
        if self._ready:
            return self._ready.popleft(), True
        if self._waiting:
            return self._waiting.popleft(), False
        per_host = self._options.per_host
        while self._submitted:
            target = self._submitted.popleft()
            if self._per_host.get(target.host, 0) < per_host:
                return target, False
            self._deferred.setdefault(target.host, deque()).append(target)
            self._deferred_total += 1
        while not self._source_done and self._deferred_total < self._deferred_limit:
            try:
                target = next(self._source)
            except StopIteration:
                self._source_done = True
                break
            if self._per_host.get(target.host, 0) < per_host:
                return target, False
            self._deferred.setdefault(target.host, deque()).append(target)
            self._deferred_total += 1
        return None

    def _pump(self) -> None:
        self._pump_handle = None
        self._pumping = True
        budget = _PUMP_BUDGET
        try:
            while budget:
                budget -= 1
                if self._retry:
                    if not self._take_token():
                        break
                    self._retry_attempt(self._retry.popleft())
                    continue
                if self._inflight >= self._cap:
                    break
                if self._options.rate and not self._take_token():
                    break
                nxt = self._next_target()
                if nxt is None:
                    if self._options.rate:
                        self._tokens += 1.0  # unused
                    break
                self._start(*nxt)
        except Exception as exc:
            self._fail_run(exc)
        finally:
            self._pumping = False
        if not budget:
            self._schedule_pump()  # the loop's turn first: timers, I/O, a Ctrl-C
        self._check_done()

    def _start(self, target: ProbeTarget, reserved: bool) -> None:
        if not reserved:
            self._per_host[target.host] = self._per_host.get(target.host, 0) + 1
        probe = target.probe
        exchange = self._exchanges[probe - 1] if probe else self._discovery[target.transport]
        flight = _Flight(target, exchange)
        self._inflight += 1
        self._flights.add(flight)
        self.stats.started += 1
        self.stats.peak_inflight = max(self.stats.peak_inflight, self._inflight)
        self._attempt(flight)

    def _retry_attempt(self, flight: _Flight) -> None:
        if flight.target.transport is Transport.TCP:
            self._release_socket(flight, reset=False)
        self._attempt(flight)

    def _arm(self, flight: _Flight, wait: float) -> None:
        flight.generation += 1
        queue = self._deadlines.get(wait)
        if queue is None:
            queue = self._deadlines[wait] = deque()
        queue.append((time.monotonic() + wait, flight.generation, flight))

    def _sweep(self) -> None:
        if self._loop is None:
            return
        now = time.monotonic()
        try:
            for queue in self._deadlines.values():
                while queue and queue[0][0] <= now:
                    _, generation, flight = queue.popleft()
                    if flight.generation == generation and flight.sock is not None:
                        self._on_deadline(flight)
        except Exception as exc:
            self._fail_run(exc)
        if self._waiting:
            self._schedule_pump()
        self._sweep_handle = self._loop.call_later(self._tick, self._sweep)

    # ----------------------------------------------------------------- probes

    def _attempt(self, flight: _Flight) -> None:
        flight.attempt += 1
        self.stats.attempts += 1
        flight.started = time.monotonic()
        try:
            if flight.target.transport is Transport.TCP:
                self._attempt_tcp(flight)
            else:
                self._attempt_udp(flight)
        except OSError as exc:
            if exc.errno in LOCAL_RESOURCE_ERRNOS:
                self._wait_for_resources(flight)
            else:
                # Refused locally (no route, broadcast, firewall on this host): an outcome.
                state, reason = local_error_outcome(exc.errno or 0)
                self._finish(flight, state, reason, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            self._finish_error(flight, exc)

    def _wait_for_resources(self, flight: _Flight) -> None:
        """This machine is out of descriptors or ports: put the probe back, lower the cap."""
        self.stats.resource_waits += 1
        self._release_socket(flight, reset=True)
        self._flights.discard(flight)
        self._inflight -= 1
        self._cap = max(1, min(self._cap, self._inflight))
        self.stats.attempts -= 1
        self._waiting.append(flight.target)
        self._release_host(flight.target.host)
        if self._inflight == 0 and self._loop is not None:
            self._schedule_pump(_RESOURCE_BACKOFF_S)

    def _attempt_tcp(self, flight: _Flight) -> None:
        sock = open_tcp(flight.target.family, privileged=flight.exchange.privileged_source)
        flight.sock, flight.fd, flight.stage = sock, sock.fileno(), _CONNECTING
        code = sock.connect_ex(flight.address)
        if code == errno.EINPROGRESS:
            # A second call reports an answer that is already there (RST, fatal ICMP).
            code = sock.connect_ex(flight.address)
        if code in LOCAL_RESOURCE_ERRNOS:
            raise OSError(code, errno_name(code))
        outcome = tcp_connect_outcome(sock, code)
        if outcome is None:
            assert self._loop is not None
            self._loop.add_writer(flight.fd, self._on_tcp_writable, flight)
            flight.watched = True
            # A discovery connect waits the timeout, unless the ladder adapted it (canaries)
            adapted = flight.target.wait if not flight.target.probe else 0.0
            self._arm(flight, self._options.attempt_wait(flight.attempt, None, adapted))
        else:
            self._tcp_connected_or_done(flight, *outcome)

    def _on_tcp_writable(self, flight: _Flight) -> None:
        try:
            sock = flight.sock
            if sock is None:
                return
            assert self._loop is not None
            self._loop.remove_writer(flight.fd)
            flight.watched = False
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            outcome = tcp_connect_outcome(sock, code)
            if outcome is None:  # spurious wake-up
                self._loop.add_writer(flight.fd, self._on_tcp_writable, flight)
                flight.watched = True
                return
            self._tcp_connected_or_done(flight, *outcome)
        except Exception as exc:
            self._finish_error(flight, exc)

    def _self_connected(self, flight: _Flight) -> bool:
        """A probe that reached itself; only possible for a free port in the ephemeral range."""
        return (
            flight.target.port in self._ephemeral
            and flight.sock is not None
            and flight.redone < 3
            and is_self_connected(flight.sock, flight.address)
        )

    def _redo(self, flight: _Flight) -> None:
        """Run the same attempt again from a new socket, and so a new source port: the old
        socket is held until then, so the kernel cannot hand out the same port again."""
        flight.redone += 1
        flight.attempt -= 1
        self.stats.attempts -= 1
        held = flight.sock
        flight.sock, flight.watched = None, False
        try:
            self._attempt(flight)
        finally:
            if held is not None:
                held.close()

    def _tcp_connected_or_done(self, flight: _Flight, state: PortState, reason: Reason) -> None:
        if state is PortState.OPEN and self._self_connected(flight):
            self._redo(flight)
            return
        exchange = flight.exchange
        if state is not PortState.OPEN or not exchange.read:
            self._finish(flight, state, reason)
            return
        # The exchange on an open port: optional request, then read under one deadline.
        sock = flight.sock
        assert sock is not None and self._loop is not None
        if exchange.payload:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                sock.send(exchange.payload)
        flight.stage = _READING
        self._loop.add_reader(flight.fd, self._on_tcp_readable, flight)
        flight.watched = True
        self._arm(flight, _step(flight.target.wait or exchange.wait or self._options.timeout))

    def _on_tcp_readable(self, flight: _Flight) -> None:
        sock = flight.sock
        if sock is None:
            return
        try:
            data = sock.recv(self._options.read_limit - len(flight.buffer))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset after the handshake: keep what was read
        except Exception as exc:
            self._finish_error(flight, exc)
            return
        flight.buffer += data
        if not data or len(flight.buffer) >= self._options.read_limit:
            self._finish(flight, PortState.OPEN, Reason.SYN_ACK, flight.buffer)
            return
        # The answer has started: a short pause now ends it (most servers then wait for us)
        self._arm(flight, self._quiet)

    def _attempt_udp(self, flight: _Flight) -> None:
        sock = flight.sock
        exchange = flight.exchange
        if sock is None:
            sock = open_udp(
                flight.target.family, flight.address, connected=not exchange.any_source_port
            )
            flight.sock, flight.fd, flight.stage = sock, sock.fileno(), _WAITING
            if self._self_connected(flight):
                self._redo(flight)
                return
        try:
            if exchange.any_source_port:
                sock.sendto(exchange.payload, flight.address)
            else:
                sock.send(exchange.payload)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if exc.errno in LOCAL_RESOURCE_ERRNOS:
                raise
            self._finish(flight, *udp_error_outcome(sock, exc.errno or 0))
            return
        if self._read_udp(flight):
            return
        if not flight.watched:
            assert self._loop is not None
            self._loop.add_reader(flight.fd, self._on_udp_readable, flight)
            flight.watched = True
        self._arm(flight, self._options.attempt_wait(flight.attempt, exchange, flight.target.wait))

    def _read_udp(self, flight: _Flight) -> bool:
        """Finish the probe if a datagram or an ICMP error is waiting; False if nothing is."""
        sock = flight.sock
        assert sock is not None
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                self._finish(flight, *udp_error_outcome(sock, exc.errno or 0))
                return True
            # Unconnected (any source port): only the probed host's datagrams count.
            if not flight.exchange.any_source_port or peer[0] == flight.target.host:
                break
        self._finish(flight, PortState.OPEN, Reason.UDP_RESPONSE, data[: self._options.read_limit])
        return True

    def _on_udp_readable(self, flight: _Flight) -> None:
        if flight.sock is None:
            return
        try:
            self._read_udp(flight)
        except Exception as exc:
            self._finish_error(flight, exc)

    def _on_deadline(self, flight: _Flight) -> None:
        sock = flight.sock
        assert sock is not None
        if flight.stage == _READING:
            self._finish(flight, PortState.OPEN, Reason.SYN_ACK, flight.buffer or None)
            return
        if flight.stage == _CONNECTING:
            # A soft error (an ICMP error the kernel kept) is an answer; 0 means silence.
            soft_error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            outcome = tcp_connect_outcome(sock, soft_error) if soft_error else None
            if outcome is not None:
                self._finish(flight, *outcome)
                return
            silent = (PortState.FILTERED, Reason.NO_RESPONSE)
        else:
            silent = (PortState.OPEN_FILTERED, Reason.NO_RESPONSE)
        retries = flight.target.retries
        if retries < 0:
            exchange_retries = flight.exchange.retries
            retries = self._options.retries if exchange_retries is None else exchange_retries
        if flight.attempt <= retries:
            self._retry.append(flight)
            self._schedule_pump()
        else:
            self._finish(flight, *silent)

    # ----------------------------------------------------------------- completion

    def _release_socket(self, flight: _Flight, reset: bool) -> None:
        sock = flight.sock
        if sock is None:
            return
        flight.sock = None
        flight.generation += 1
        if flight.watched and self._loop is not None:
            if flight.stage == _CONNECTING:
                self._loop.remove_writer(flight.fd)
            else:
                self._loop.remove_reader(flight.fd)
            flight.watched = False
        if reset and flight.target.transport is Transport.TCP:
            # An RST instead of a FIN: no TIME_WAIT pile-up on large sweeps.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, SO_LINGER_RESET)
        sock.close()

    def _release_host(self, host: str) -> None:
        pending = self._deferred.get(host)
        if pending:
            # Hand this host's slot straight to its next deferred probe.
            self._ready.append(pending.popleft())
            self._deferred_total -= 1
            if not pending:
                del self._deferred[host]
            return
        count = self._per_host[host] - 1
        if count:
            self._per_host[host] = count
        else:
            del self._per_host[host]

    def _finish(
        self,
        flight: _Flight,
        state: PortState,
        reason: Reason,
        response: bytes | None = None,
        error: str | None = None,
    ) -> None:
        rtt = time.monotonic() - flight.started if reason is not Reason.NO_RESPONSE else None
        self._release_socket(flight, reset=state is PortState.OPEN)
        self._flights.discard(flight)
        self._inflight -= 1
        self.stats.finished += 1
        target = flight.target
        self._release_host(target.host)
        try:
            follow_ups = self._sink(
                PortObservation(
                    target.host,
                    target.port,
                    target.transport,
                    state,
                    reason,
                    rtt,
                    flight.attempt,
                    response,
                    error,
                    target.probe,
                )
            )
        except BaseException as exc:
            self._fail_run(exc)
            return
        if follow_ups:
            self._submitted.extend(follow_ups)
        self._schedule_pump()

    def _finish_error(self, flight: _Flight, exc: BaseException) -> None:
        """An unexpected error in one probe: record it on that probe; the scan goes on."""
        if flight.sock is None and flight not in self._flights:
            return
        message = f"{type(exc).__name__}: {exc}"
        if flight.target.transport is Transport.TCP and flight.stage == _READING:
            state = PortState.OPEN
            reason = Reason.SYN_ACK
        else:
            state = PortState.FILTERED
            reason = Reason.ERROR
        self._finish(flight, state, reason, flight.buffer or None, message)
