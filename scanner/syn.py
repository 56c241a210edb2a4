"""Stateless SYN discovery (`scan --syn`, nmap's -sS): raw SYN packets out, answers matched
back by a cookie in the sequence number, as zmap and masscan do (packets: scanner/packets.py).

What stays per probe is its attempt count and deadline, for retransmissions and the `filtered`
verdict of silence; no socket, no descriptor. The kernel answers a SYN-ACK to our raw SYN with
an RST (it has no socket for it), as with nmap's -sS.

States and reasons as nmap's -sS: open (syn-ack), closed (reset), filtered (no-response after
the retries, or the ICMP unreachable's reason). The wait for an answer follows the round trips
measured so far, as nmap's does (`SynTimer`): on a network where most addresses are silent,
the silence is settled in a few hundred milliseconds instead of the full --timeout. Open ports
then go through the connect engine for identification, exactly as in a connect scan; so do UDP
probes and IPv6 TCP targets (no raw IPv6 here), which the same connect engine runs alongside
the SYN sweep.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator

from scanner.engine import Engine, EngineOptions, EngineStats, ObservationSink
from scanner.ladder import MIN_ADAPTED_WAIT
from scanner.models import PortObservation, PortState, ProbeTarget, Reason, Transport
from scanner.packets import (
    ACK,
    RST,
    SYN,
    Cookies,
    RawSockets,
    Route,
    fill_syn,
    new_packet,
    parse_answer,
    parse_unreachable,
)
from scanner.transport import LOCAL_RESOURCE_ERRNOS, icmp4_unreach_reason, local_error_outcome

SYN_MAX_INFLIGHT = 1 << 16
"""SYNs awaiting an answer at once: no descriptor each, only a few small objects."""

_BATCH = 256  # SYNs sent between two reads of the reply sockets (the kernel queues the rest)
_SLICE = 4096  # SYNs sent before the loop gets a turn (the connect engine, timers, signals)
_RESOURCE_BACKOFF_S = 0.005
_ROUTE_CACHE = 1 << 17


class _Syn:
    """One SYN probe awaiting its answer."""

    __slots__ = ("attempt", "cookie", "first", "route", "sent", "target")

    def __init__(self, target: ProbeTarget, route: Route, cookie: int) -> None:
        self.target = target
        self.route = route
        self.cookie = cookie
        self.attempt = 0
        self.first = 0.0
        self.sent = 0.0


class SynTimer:
    """How long a SYN waits for its answer: the smoothed round trip plus four deviations
    (RFC 6298, as nmap's timing), at least MIN_ADAPTED_WAIT, at most --timeout, doubled for
    each retransmission. Until `min_samples` answers were measured it is --timeout.

    An answer to the first SYN is an exact sample. An answer after a retransmission is
    ambiguous (the cookie is the same); it counts from the first SYN, the longer reading, so
    a slow host raises the wait rather than being called filtered early.
    """

    __slots__ = ("_ceiling", "_min_samples", "_rttvar", "_samples", "_srtt", "wait")

    def __init__(self, timeout: float, min_samples: int = 4) -> None:
        self._ceiling = timeout
        self._min_samples = min_samples
        self._srtt = 0.0
        self._rttvar = 0.0
        self._samples = 0
        self.wait = timeout
        """The current wait of a first SYN."""

    def sample(self, rtt: float) -> None:
        """Fold one measured round trip into the estimate."""
        if self._samples == 0:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar += (abs(self._srtt - rtt) - self._rttvar) / 4
            self._srtt += (rtt - self._srtt) / 8
        self._samples += 1
        if self._samples >= self._min_samples:
            adapted = max(MIN_ADAPTED_WAIT, self._srtt + 4 * self._rttvar)
            self.wait = min(self._ceiling, adapted)

    def attempt_wait(self, attempt: int) -> float:
        """The wait of the given attempt (1, 2, ...)."""
        return self.wait * (1 << (attempt - 1))


class SynEngine:
    """Runs a scan's probes as `Engine` does, with TCP discovery by raw SYN packets.

    The same interface as `Engine`: `run(probes) -> EngineStats`; each port's observation goes
    to the sink, which may return follow-up probes. TCP discovery (probe 0) of IPv4 targets is
    a SYN; everything else (UDP, IPv6, the follow-ups of open ports, and with `banner_wait` the
    connect that reads an open port's banner) runs through one connect `Engine` alongside.
    """

    def __init__(self, options: EngineOptions, sink: ObservationSink) -> None:
        self._options = options
        self._sink = sink
        self.stats = EngineStats(inflight_cap=SYN_MAX_INFLIGHT)
        self._cookie = Cookies()
        self._source_port = random.SystemRandom().randrange(32768, 61000)
        self._routes: dict[str, Route] = {}
        self._flights: dict[int, _Syn] = {}
        # Sends of each attempt in the order made (sent at, key, attempt): the wait is applied
        # when the queue is read, so a wait that adapts down settles older silence at once.
        self._deadlines: dict[int, deque[tuple[float, int, int]]] = {}
        self._retry: deque[_Syn] = deque()
        self._timer = SynTimer(options.timeout)
        self._packet = new_packet()
        self._source: Iterator[ProbeTarget] = iter(())
        self._source_done = False
        self._lane_pending = 0
        self._lane_limit = max(1024, 2 * options.max_inflight)
        self._connect = Engine(options, self._lane_sink)
        self._tokens = 0.0
        self._token_time = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None
        self._pump_handle: asyncio.Handle | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._tick = min(0.05, max(0.002, options.timeout / 8))
        self._sockets: RawSockets | None = None

    # ----------------------------------------------------------------- lifecycle

    async def run(self, probes: Iterable[ProbeTarget]) -> EngineStats:
        """Probe everything the iterable yields; return when every probe has an observation."""
        self._loop = loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._source = iter(probes)
        release_connect = self._connect.hold()
        connect = loop.create_task(self._connect.run(()))
        connect.add_done_callback(self._connect_ended)
        try:
            sockets = self._sockets = RawSockets(self._source_port)
            loop.add_reader(sockets.replies.fileno(), self._read_replies)
            loop.add_reader(sockets.errors.fileno(), self._read_errors)
            self._token_time = time.monotonic()
            self._tokens = self._bucket_size()
            self._sweep_handle = loop.call_later(self._tick, self._sweep)
            self._pump()
            await self._done
            release_connect()
            await connect
        finally:
            self._shutdown()
            if not connect.done():
                connect.cancel()
                await asyncio.gather(connect, return_exceptions=True)
        return self._merged_stats()

    def _shutdown(self) -> None:
        for handle in (self._sweep_handle, self._pump_handle):
            if handle is not None:
                handle.cancel()
        sockets, self._sockets = self._sockets, None
        if sockets is not None:
            if self._loop is not None:
                self._loop.remove_reader(sockets.replies.fileno())
                self._loop.remove_reader(sockets.errors.fileno())
            sockets.close()
        self._loop = None  # nothing is scheduled any more

    def _connect_ended(self, task: asyncio.Task[EngineStats]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail_run(task.exception() or RuntimeError("the connect engine failed"))

    def _fail_run(self, exc: BaseException) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    def _check_done(self) -> None:
        if (
            self._source_done
            and not self._flights
            and not self._retry
            and self._done is not None
            and not self._done.done()
        ):
            self._done.set_result(None)

    def _merged_stats(self) -> EngineStats:
        mine, other = self.stats, self._connect.stats
        return EngineStats(
            started=mine.started + other.started,
            attempts=mine.attempts + other.attempts,
            finished=mine.finished + other.finished,
            resource_waits=mine.resource_waits + other.resource_waits,
            inflight_cap=mine.inflight_cap,
            peak_inflight=max(mine.peak_inflight, other.peak_inflight),
        )

    # ----------------------------------------------------------------- the connect lane

    def _to_connect(self, targets: Iterable[ProbeTarget]) -> None:
        batch = list(targets)
        self._lane_pending += len(batch)
        self._connect.submit(batch)

    def _lane_sink(self, observation: PortObservation) -> Iterable[ProbeTarget] | None:
        """The connect engine's sink: counts what is left in that lane, then the real sink."""
        self._lane_pending -= 1
        follow_ups = self._sink(observation)
        if follow_ups:
            follow_ups = list(follow_ups)
            self._lane_pending += len(follow_ups)
        if self._lane_pending < self._lane_limit:
            self._schedule_pump()
        return follow_ups

    # ----------------------------------------------------------------- sending

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
        if self._pump_handle is not None or self._loop is None:
            return
        if delay > 0:
            self._pump_handle = self._loop.call_later(delay, self._pump)
        else:
            self._pump_handle = self._loop.call_soon(self._pump)

    def _next_target(self) -> ProbeTarget | None:
        if self._source_done:
            return None
        try:
            return next(self._source)
        except StopIteration:
            self._source_done = True
            return None

    def _pump(self) -> None:
        self._pump_handle = None
        sent = 0
        try:
            while sent < _SLICE:
                if self._retry:
                    if not self._take_token():
                        break
                    flight = self._retry.popleft()
                    key = (flight.route.address << 16) | flight.target.port
                    if self._flights.get(key) is not flight:
                        continue  # answered while it waited for its retransmission
                    if not self._send(flight):
                        break
                elif (
                    len(self._flights) >= SYN_MAX_INFLIGHT
                    or self._lane_pending >= self._lane_limit
                    or not self._take_token()
                ):
                    break
                else:
                    target = self._next_target()
                    if target is None:
                        if self._options.rate:
                            self._tokens += 1.0  # unused
                        break
                    if not self._start(target):
                        break
                sent += 1
                if sent % _BATCH == 0:
                    self._read_replies()
            else:
                self._schedule_pump()  # more to send: after the loop's other work
            self._read_replies()
        except Exception as exc:
            self._fail_run(exc)
        self._check_done()

    def _route(self, host: str) -> Route:
        route = self._routes.get(host)
        if route is None:
            assert self._sockets is not None
            source = self._sockets.source_for(host)
            if len(self._routes) >= _ROUTE_CACHE:
                self._routes.clear()
            route = self._routes[host] = Route(socket.inet_aton(host), source, self._source_port)
        return route

    def _start(self, target: ProbeTarget) -> bool:
        """Start one probe of the plan; False when it must wait (local resources)."""
        if target.probe or target.transport is not Transport.TCP or target.family != socket.AF_INET:
            self._to_connect((target,))
            return True
        try:
            route = self._route(target.host)
        except OSError as exc:  # no route to the target: the kernel's own verdict
            self.stats.started += 1
            self._observe(target, *local_error_outcome(exc.errno or 0), None, 0, f"{exc}")
            return True
        flight = _Syn(target, route, self._cookie(route.address, target.port, self._source_port))
        self._flights[(route.address << 16) | target.port] = flight
        self.stats.started += 1
        self.stats.peak_inflight = max(self.stats.peak_inflight, len(self._flights))
        return self._send(flight)

    def _send(self, flight: _Syn) -> bool:
        """Send a flight's SYN (again); False when this machine is out of buffers for now."""
        route, target = flight.route, flight.target
        fill_syn(self._packet, route, self._source_port, target.port, flight.cookie)
        assert self._sockets is not None
        try:
            self._sockets.sender.sendto(self._packet, (target.host, 0))
        except OSError as exc:
            key = (route.address << 16) | target.port
            if exc.errno in LOCAL_RESOURCE_ERRNOS or exc.errno == errno.EWOULDBLOCK:
                self.stats.resource_waits += 1
                self._retry.appendleft(flight)
                self._schedule_pump(_RESOURCE_BACKOFF_S)
                return False
            del self._flights[key]
            flight.attempt += 1
            self._observe(target, *local_error_outcome(exc.errno or 0), None, flight.attempt)
            return True
        flight.attempt += 1
        flight.sent = now = time.monotonic()
        if flight.attempt == 1:
            flight.first = now
        self.stats.attempts += 1
        queue = self._deadlines.get(flight.attempt)
        if queue is None:
            queue = self._deadlines[flight.attempt] = deque()
        queue.append((now, (route.address << 16) | target.port, flight.attempt))
        return True

    # ----------------------------------------------------------------- answers

    def _read_replies(self) -> None:
        """Every queued SYN-ACK and RST (the BPF filter let only those to our port through)."""
        flights, source_port = self._flights, self._source_port
        try:
            replies = self._sockets.replies if self._sockets is not None else None
            while replies is not None:
                try:
                    data = replies.recv(128)
                except (BlockingIOError, InterruptedError):
                    return
                address, port, dport, ack, flags = parse_answer(data)
                flight = flights.get((address << 16) | port)
                if (
                    flight is None
                    or dport != source_port
                    or (ack - 1) & 0xFFFFFFFF != flight.cookie  # the cookie is the key's
                ):
                    continue
                if flags & RST:
                    self._answer(flight, PortState.CLOSED, Reason.RESET)
                elif flags & (SYN | ACK) == SYN | ACK:
                    self._answer(flight, PortState.OPEN, Reason.SYN_ACK)
        except Exception as exc:
            self._fail_run(exc)

    def _read_errors(self) -> None:
        """ICMP destination unreachable quoting one of our SYNs: filtered, with its reason."""
        try:
            errors = self._sockets.errors if self._sockets is not None else None
            while errors is not None:
                try:
                    data = errors.recv(256)
                except (BlockingIOError, InterruptedError):
                    return
                quoted = parse_unreachable(data)
                if quoted is None:
                    continue
                address, port, sport, seq, code = quoted
                flight = self._flights.get((address << 16) | port)
                if flight is None or sport != self._source_port or seq != flight.cookie:
                    continue
                self._answer(flight, PortState.FILTERED, icmp4_unreach_reason(code))
        except Exception as exc:
            self._fail_run(exc)

    def _answer(self, flight: _Syn, state: PortState, reason: Reason) -> None:
        target = flight.target
        del self._flights[(flight.route.address << 16) | target.port]
        now = time.monotonic()
        rtt = now - flight.sent
        self._timer.sample(rtt if flight.attempt == 1 else now - flight.first)
        if state is PortState.OPEN and self._options.banner_wait:
            # The banner needs a connection: the connect engine's discovery probe reads it.
            self.stats.finished += 1
            self._to_connect((target,))
        else:
            self._observe(target, state, reason, rtt, flight.attempt)
        if not self._pump_handle:
            self._schedule_pump()

    def _observe(  # noqa: PLR0917 - one observation's fields
        self,
        target: ProbeTarget,
        state: PortState,
        reason: Reason,
        rtt: float | None,
        attempts: int,
        error: str | None = None,
    ) -> None:
        self.stats.finished += 1
        follow_ups = self._sink(
            PortObservation(
                target.host, target.port, Transport.TCP, state, reason, rtt, attempts, None, error
            )
        )
        if follow_ups:
            self._to_connect(follow_ups)

    def _sweep(self) -> None:
        """Expire deadlines: retransmit a silent SYN, or call its port filtered."""
        self._read_replies()
        now = time.monotonic()
        retries = self._options.retries
        try:
            for attempt_of_queue, queue in self._deadlines.items():
                sent_by = now - self._timer.attempt_wait(attempt_of_queue)
                while queue and queue[0][0] <= sent_by:
                    _, key, attempt = queue.popleft()
                    flight = self._flights.get(key)
                    if flight is None or flight.attempt != attempt:
                        continue
                    if attempt <= retries:
                        self._retry.append(flight)
                    else:
                        del self._flights[key]
                        self._observe(
                            flight.target, PortState.FILTERED, Reason.NO_RESPONSE, None, attempt
                        )
        except Exception as exc:
            self._fail_run(exc)
        if self._retry:
            self._schedule_pump()
        self._check_done()
        if self._loop is not None:
            self._sweep_handle = self._loop.call_later(self._tick, self._sweep)
