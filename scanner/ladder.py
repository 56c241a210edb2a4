"""The identification ladder's bookkeeping: which probe a port gets next, and when.

Fragile legacy daemons (a single-threaded SNMP agent's SMUX port, an inetd that forks per
connection) stall when many probes arrive at once. So a port gets one exchange at a time,
and a host at most `per_host` follow-up exchanges at once; ports of a busy host wait their
turn in order. Waits adapt to the round trips measured on each host (nmap's srtt and
rttvar), so a single open port on a fast network is named in a fraction of a second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from scanner.models import ExchangeSpec, PortObservation, ProbeTarget, Transport

PortKey = tuple[str, int, Transport]

MIN_ADAPTED_WAIT = 0.2
"""The shortest wait an adapted probe gets: servers take time to answer, not only networks."""


@dataclass(slots=True)
class PortLadder:
    """One port's identification in progress."""

    family: int
    observations: list[PortObservation]
    queue: deque[int]
    fallbacks: tuple[int, ...] = ()  # UDP: the datagrams sent once its own probes stayed silent
    inflight: bool = False
    second_pass: bool = False
    silent_probes: list[int] = field(default_factory=list)
    carrier: bool = False  # a carrier protocol (HTTP) answered; only what it carries is left


class HostRtt:
    """Smoothed round-trip time and its variation per host, from answered probes (RFC 6298)."""

    __slots__ = ("_rtt", "_scan")

    def __init__(self) -> None:
        self._rtt: dict[str, tuple[float, float]] = {}
        self._scan: tuple[float, float] | None = None  # over every host, for hosts not measured

    def sample(self, host: str, rtt: float | None) -> None:
        """Fold one measured round trip into the host's estimate."""
        if rtt is None:
            return
        self._rtt[host] = _folded(self._rtt.get(host), rtt)
        self._scan = _folded(self._scan, rtt)

    def sample_scan(self, rtt: float | None) -> None:
        """Fold a round trip into the scan-wide estimate only (a closed port's reset: cheap,
        and no memory per host)."""
        if rtt is not None:
            self._scan = _folded(self._scan, rtt)

    def wait(self, host: str, exchange: ExchangeSpec, timeout: float) -> float:
        """The wait for one exchange with the host: its round trips with room for the server
        to think, never longer than the exchange's own wait. 0 (the exchange's own) when the
        host has not been measured."""
        known = self._rtt.get(host) or self._scan
        ceiling = exchange.wait or timeout
        if known is None:
            return 0.0
        srtt, rttvar = known
        return min(ceiling, max(MIN_ADAPTED_WAIT, 2 * srtt + 8 * rttvar + MIN_ADAPTED_WAIT))


def _folded(known: tuple[float, float] | None, rtt: float) -> tuple[float, float]:
    if known is None:
        return (rtt, rtt / 2)
    srtt, rttvar = known
    return (0.875 * srtt + 0.125 * rtt, 0.75 * rttvar + 0.25 * abs(srtt - rtt))


class HostTurns:
    """At most `limit` follow-up exchanges per host at once; the others queue in order."""

    __slots__ = ("_active", "_limit", "_waiting")

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[PortKey]] = {}

    def set_limit(self, limit: int) -> None:
        """Change the limit (the second pass goes one at a time)."""
        self._limit = max(1, limit)

    def ask(self, key: PortKey) -> bool:
        """Take a turn for the port now (True) or queue it (False)."""
        host = key[0]
        active = self._active.get(host, 0)
        if active < self._limit and not self._waiting.get(host):
            self._active[host] = active + 1
            return True
        self._waiting.setdefault(host, deque()).append(key)
        return False

    def done(self, host: str) -> list[PortKey]:
        """A turn ended: the ports of the host that may go now (their turns are taken)."""
        active = self._active.get(host, 1) - 1
        waiting = self._waiting.get(host)
        released: list[PortKey] = []
        while waiting and active < self._limit:
            released.append(waiting.popleft())
            active += 1
        if waiting is not None and not waiting:
            del self._waiting[host]
        if active:
            self._active[host] = active
        else:
            self._active.pop(host, None)
        return released


def next_target(key: PortKey, ladder: PortLadder, probe: int, wait: float) -> ProbeTarget:
    """The probe a port gets next, as the engine takes it (a fallback datagram once only)."""
    host, port, transport = key
    ladder.inflight = True
    retries = 0 if probe in ladder.fallbacks else -1
    return ProbeTarget(host, ladder.family, port, transport, probe, wait, retries)
