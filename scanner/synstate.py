"""What `scan --syn` keeps while SYNs await their answers (the engine: scanner/syn.py): one
small flight per probe, the deadlines of each attempt in batches, and the adaptive wait."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from scanner.ladder import MIN_ADAPTED_WAIT
from scanner.models import ProbeTarget
from scanner.packets import Route


class SynFlight:
    """One SYN probe awaiting its answer."""

    __slots__ = ("attempt", "cookie", "first", "route", "sent", "target")

    def __init__(
        self, target: ProbeTarget, route: Route, cookie: int, attempt: int = 0, sent: float = 0.0
    ) -> None:
        self.target = target
        self.route = route
        self.cookie = cookie
        self.attempt = attempt
        self.first = sent
        self.sent = sent


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


class Deadlines:
    """The SYNs sent, per attempt, in the order sent and in batches (sent by, keys, attempt):
    the wait is applied when the queues are read, so a wait that adapts down settles older
    silence at once. A batch is stamped with its last send: none of it is expired early."""

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: dict[int, deque[tuple[float, list[int], int]]] = {}

    def add(self, sent_by: float, keys: list[int], attempt: int) -> None:
        """SYNs of one attempt, the last of them sent at `sent_by`."""
        queue = self._queues.get(attempt)
        if queue is None:
            queue = self._queues[attempt] = deque()
        queue.append((sent_by, keys, attempt))

    def expired(self, now: float, timer: SynTimer) -> Iterator[tuple[int, int]]:
        """(key, attempt) of every send whose wait ran out by `now`, taken off the queues."""
        for attempt_of_queue, queue in self._queues.items():
            sent_by = now - timer.attempt_wait(attempt_of_queue)
            while queue and queue[0][0] <= sent_by:
                _, keys, attempt = queue.popleft()
                for key in keys:
                    yield key, attempt
