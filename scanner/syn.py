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
import itertools
import math
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from scanner.engine import Engine, EngineOptions, EngineStats, ObservationSink
from scanner.models import PortObservation, PortState, ProbeTarget, Reason, Transport
from scanner.packets import (
    ACK,
    RST,
    SYN,
    Cookies,
    RawSockets,
    fill_syn,
    new_packet,
    parse_answer,
    parse_unreachable,
)
from scanner.routes import Routes
from scanner.synstate import Deadlines, SynFlight, SynTimer
from scanner.transport import LOCAL_RESOURCE_ERRNOS, icmp4_unreach_reason, local_error_outcome

SYN_MAX_INFLIGHT = 1 << 16
"""SYNs awaiting an answer at once: no descriptor each, only a few small objects."""

_BATCH = 256  # SYNs sent between two reads of the reply sockets (the kernel queues the rest)
_SLICE = 4096  # SYNs sent before the loop gets a turn (the connect engine, timers, signals)
_RESOURCE_BACKOFF_S = 0.005
_ANSWER_BYTES = 128  # what the BPF filter passes of a segment
_MIN_SEGMENT = 40  # an IPv4 header and a TCP header
_TCP, _INET, _OPEN, _CLOSED = Transport.TCP, socket.AF_INET, PortState.OPEN, PortState.CLOSED
_RESET, _SYN_ACK = Reason.RESET, Reason.SYN_ACK


class SynEngine:
    """Runs a scan's probes as `Engine` does, with TCP discovery by raw SYN packets.

    The same interface as `Engine`: `run(probes) -> EngineStats`; each port's observation goes
    to the sink, which may return follow-up probes. With `closed`, the SYNs answered by a
    reset are not observed one by one: each read of the replies hands their hosts (and the
    shortest round trip) to `closed` at once, for a scan that only counts closed ports.

    TCP discovery (probe 0) of IPv4 targets is a SYN; everything else (UDP, IPv6, the
    follow-ups of open ports, and with `banner_wait` the connect that reads an open port's
    banner) runs through one connect `Engine` alongside.
    """

    def __init__(
        self,
        options: EngineOptions,
        sink: ObservationSink,
        closed: Callable[[list[str], float], None] | None = None,
    ) -> None:
        self._options = options
        self._sink = sink
        self._closed = closed
        self.stats = EngineStats(inflight_cap=SYN_MAX_INFLIGHT)
        self._cookie = Cookies()
        self._source_port = random.SystemRandom().randrange(32768, 61000)
        self._routes: Routes | None = None
        self._flights: dict[int, SynFlight] = {}
        self._deadlines = Deadlines()
        self._retry: deque[SynFlight] = deque()
        self._timer = SynTimer(options.timeout)
        self._packet = new_packet()
        self._buffer = bytearray(_ANSWER_BYTES)
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
            self._routes = Routes(self._source_port, self._cookie)
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
        self._routes = None
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

    def _take_tokens(self, wanted: int) -> int:
        """Up to `wanted` tokens of --rate (all of them without one); 0 schedules the pump
        for when the next token is due."""
        rate = self._options.rate
        if not rate:
            return wanted
        now = time.monotonic()
        self._tokens = min(self._bucket_size(), self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        granted = min(wanted, int(self._tokens))
        if granted:
            self._tokens -= granted
        else:
            self._schedule_pump((1.0 - self._tokens) / rate)
        return granted

    def _schedule_pump(self, delay: float = 0.0) -> None:
        if self._pump_handle is not None or self._loop is None:
            return
        if delay > 0:
            self._pump_handle = self._loop.call_later(delay, self._pump)
        else:
            self._pump_handle = self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_handle = None
        sent = 0
        try:
            while sent < _SLICE:
                if self._retry:
                    if not self._take_tokens(1):
                        break
                    flight = self._retry.popleft()
                    key = (flight.route.address << 16) | flight.target.port
                    if self._flights.get(key) is not flight:
                        continue  # answered while it waited for its retransmission
                    if not self._send(flight):
                        break
                    sent += 1
                    if sent % _BATCH == 0:
                        self._read_replies()
                    continue
                room = min(
                    _BATCH,
                    SYN_MAX_INFLIGHT - len(self._flights),
                    self._lane_limit - self._lane_pending,
                )
                granted = self._take_tokens(room) if room > 0 else 0
                if not granted:
                    break
                taken, more = self._start_batch(granted)
                if self._options.rate:
                    self._tokens += granted - taken  # unused
                sent += taken
                if not more:
                    break
                self._read_replies()
            else:
                self._schedule_pump()  # more to send: after the loop's other work
            self._read_replies()
        except Exception as exc:
            self._fail_run(exc)
        self._check_done()

    def _start_batch(self, room: int) -> tuple[int, bool]:
        """Start up to `room` probes of the plan: SYNs for IPv4 TCP discovery, the rest to the
        connect lane. Returns (probes taken, whether to go on: False when the plan is done or
        a probe must wait for local resources or for room in the connect lane)."""
        targets = list(itertools.islice(self._source, room))
        if len(targets) < room:
            self._source_done = True
        assert self._sockets is not None
        assert self._routes is not None
        flights, routes, stats = self._flights, self._routes.hosts, self.stats
        port_cookies, packet, source_port = self._cookie.ports, self._packet, self._source_port
        sendto, keys, start = self._sockets.sender.sendto, list[int](), time.monotonic()
        # One clock reading per batch: its SYNs count as sent at its start (round trips read
        # a little long) and fall due with its end (none is called silent early)
        for index, target in enumerate(targets):
            if target.probe or target.transport is not _TCP or target.family != _INET:
                if self._lane_pending >= self._lane_limit:
                    self._put_back(targets[index:])
                    return self._started(keys, index), False
                self._to_connect((target,))
                continue
            host, port = target.host, target.port
            route = routes.get(host)
            if route is None:
                try:
                    route = self._routes.lookup(host)
                except OSError as exc:  # no route to the target: the kernel's own verdict
                    stats.started += 1
                    self._observe(target, *local_error_outcome(exc.errno or 0), None, 0, f"{exc}")
                    continue
            key = (route.address << 16) | port
            cookie = route.cookie ^ port_cookies[port]
            fill_syn(packet, route, source_port, port, cookie)
            try:
                sendto(packet, (host, 0))
            except OSError as exc:
                flight = flights[key] = SynFlight(target, route, cookie)
                stats.started += 1
                if not self._send_failed(flight, key, exc):
                    self._put_back(targets[index + 1 :])
                    return self._started(keys, index + 1), False
                continue
            flights[key] = SynFlight(target, route, cookie, 1, start)
            keys.append(key)
        return self._started(keys, len(targets)), not self._source_done

    def _started(self, keys: list[int], taken: int) -> int:
        """Book a batch of first SYNs: counts, one deadline for all, due from now (its end)."""
        if keys:
            stats = self.stats
            stats.started += len(keys)
            stats.attempts += len(keys)
            stats.peak_inflight = max(stats.peak_inflight, len(self._flights))
            self._deadlines.add(time.monotonic(), keys, 1)
        return taken

    def _put_back(self, targets: list[ProbeTarget]) -> None:
        """Targets taken from the plan but not started: first in line next time."""
        if targets:
            self._source = itertools.chain(targets, self._source)
            self._source_done = False

    def _send(self, flight: SynFlight) -> bool:
        """Send a flight's SYN again; False when this machine is out of buffers for now."""
        route, target = flight.route, flight.target
        key = (route.address << 16) | target.port
        fill_syn(self._packet, route, self._source_port, target.port, flight.cookie)
        assert self._sockets is not None
        try:
            self._sockets.sender.sendto(self._packet, (target.host, 0))
        except OSError as exc:
            return self._send_failed(flight, key, exc)
        flight.attempt += 1
        flight.sent = now = time.monotonic()
        if flight.attempt == 1:
            flight.first = now
        self.stats.attempts += 1
        self._deadlines.add(now, [key], flight.attempt)
        return True

    def _send_failed(self, flight: SynFlight, key: int, exc: OSError) -> bool:
        """A SYN the kernel did not take: out of buffers, it waits in line (False: stop
        sending for a moment); any other error is the port's observation."""
        if exc.errno in LOCAL_RESOURCE_ERRNOS or exc.errno == errno.EWOULDBLOCK:
            self.stats.resource_waits += 1
            self._retry.appendleft(flight)
            self._schedule_pump(_RESOURCE_BACKOFF_S)
            return False
        del self._flights[key]
        flight.attempt += 1
        self._observe(flight.target, *local_error_outcome(exc.errno or 0), None, flight.attempt)
        return True

    # ----------------------------------------------------------------- answers

    def _read_replies(self) -> None:
        """Every queued SYN-ACK and RST (the BPF filter let only those to our port through)."""
        sockets = self._sockets
        if sockets is None:
            return
        flights, source_port, buffer = self._flights, self._source_port, self._buffer
        recv_into, answer, closed = sockets.replies.recv_into, self._answer, self._closed
        answered = False
        hosts: list[str] = []  # closed, for `closed`
        shortest = math.inf
        # One clock reading and one round-trip sample per read (TCP samples once a window):
        # what was queued arrived by now, and the wait needs a steady estimate, not every reset
        now, sample = time.monotonic(), None
        try:
            while True:
                try:
                    size = recv_into(buffer)
                except (BlockingIOError, InterruptedError):
                    break
                if size < _MIN_SEGMENT:
                    continue
                address, port, dport, ack, flags = parse_answer(buffer)
                key = (address << 16) | port
                flight = flights.get(key)
                if (
                    flight is None
                    or dport != source_port
                    or (ack - 1) & 0xFFFFFFFF != flight.cookie  # the cookie is the key's
                ):
                    continue
                if flags & RST and closed is not None:  # `_answer`, counted in bulk
                    del flights[key]
                    rtt = now - flight.sent
                    if sample is None:  # the first of this read
                        sample = rtt if flight.attempt == 1 else now - flight.first
                    hosts.append(flight.target.host)
                    shortest = min(shortest, rtt)
                elif flags & RST:
                    answer(flight, key, _CLOSED, _RESET)
                    answered = True
                elif flags & (SYN | ACK) == SYN | ACK:
                    answer(flight, key, _OPEN, _SYN_ACK)
                    answered = True
            if sample is not None:
                self._timer.sample(sample)
            if hosts and closed is not None:
                answered = True
                self.stats.finished += len(hosts)
                closed(hosts, shortest)
        except Exception as exc:
            self._fail_run(exc)
        if answered:
            self._schedule_pump()

    def _read_errors(self) -> None:
        """ICMP destination unreachable quoting one of our SYNs: filtered, with its reason."""
        answered = False
        try:
            errors = self._sockets.errors if self._sockets is not None else None
            while errors is not None:
                try:
                    data = errors.recv(256)
                except (BlockingIOError, InterruptedError):
                    break
                quoted = parse_unreachable(data)
                if quoted is None:
                    continue
                address, port, sport, seq, code = quoted
                key = (address << 16) | port
                flight = self._flights.get(key)
                if flight is None or sport != self._source_port or seq != flight.cookie:
                    continue
                self._answer(flight, key, PortState.FILTERED, icmp4_unreach_reason(code))
                answered = True
        except Exception as exc:
            self._fail_run(exc)
        if answered:
            self._schedule_pump()

    def _answer(self, flight: SynFlight, key: int, state: PortState, reason: Reason) -> None:
        del self._flights[key]
        now = time.monotonic()
        rtt = now - flight.sent
        self._timer.sample(rtt if flight.attempt == 1 else now - flight.first)
        if state is _OPEN and self._options.banner_wait:
            # The banner needs a connection: the connect engine's discovery probe reads it.
            self.stats.finished += 1
            self._to_connect((flight.target,))
        else:
            self._observe(flight.target, state, reason, rtt, flight.attempt)

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
                target.host, target.port, _TCP, state, reason, rtt, attempts, None, error
            )
        )
        if follow_ups:
            self._to_connect(follow_ups)

    def _sweep(self) -> None:
        """Expire deadlines: retransmit a silent SYN, or call its port filtered."""
        self._read_replies()
        now = time.monotonic()
        retries = self._options.retries
        flights = self._flights
        try:
            for key, attempt in self._deadlines.expired(now, self._timer):
                flight = flights.get(key)
                if flight is None or flight.attempt != attempt:
                    continue
                if attempt <= retries:
                    self._retry.append(flight)
                else:
                    del flights[key]
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
