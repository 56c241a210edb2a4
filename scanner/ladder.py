"""The identification ladder's bookkeeping: which probe a port gets next, and when.

Fragile legacy daemons (a single-threaded SNMP agent's SMUX port, an inetd that forks per
connection) stall when many probes arrive at once. So a port gets one exchange at a time,
and a host at most `per_host` follow-up exchanges at once; ports of a busy host wait their
turn in order. Waits adapt to the round trips measured on each host, so a single open port
on a fast network is named in a fraction of a second.
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
    """The shortest round trip measured to each host (and over the scan, for hosts not yet
    measured). The minimum, not a smoothed mean: a busy moment on either end inflates a
    sample, never shrinks one, and the wait that follows only needs the network's share."""

    __slots__ = ("_rtt", "_scan")

    def __init__(self) -> None:
        self._rtt: dict[str, float] = {}
        self._scan: float | None = None

    def sample(self, host: str, rtt: float | None) -> None:
        """Fold one measured round trip into the host's estimate."""
        if rtt is None:
            return
        known = self._rtt.get(host)
        self._rtt[host] = rtt if known is None else min(known, rtt)
        self.sample_scan(rtt)

    def sample_scan(self, rtt: float | None) -> None:
        """Fold a round trip into the scan-wide estimate only (a closed port's reset: cheap,
        and no memory per host)."""
        if rtt is not None:
            self._scan = rtt if self._scan is None else min(self._scan, rtt)

    def wait(self, host: str, exchange: ExchangeSpec, timeout: float) -> float:
        """The wait for one exchange with the host: a few of its round trips plus room for
        the server to think, never longer than the exchange's own wait; 0 (the exchange's
        own) when nothing has been measured."""
        return self.settle_wait(host, exchange.wait or timeout)

    def settle_wait(self, host: str, ceiling: float) -> float:
        """A few of the host's round trips plus room to think, at most `ceiling`; 0 when
        nothing has been measured (the caller's own wait then)."""
        known = self._rtt.get(host, self._scan)
        if known is None:
            return 0.0
        return min(ceiling, MIN_ADAPTED_WAIT + 4 * known)


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
