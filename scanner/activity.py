"""What a scan is doing right now, for an honest progress line.

A scan's last seconds are not spent sending: every probe is out, and the ports still open in
the count are either being identified (the first answer came, follow-up exchanges or the
port's other UDP probes are still running) or silent, waiting out their timeouts and
retries. `ActivityTracker` watches the engine's source and sink to tell these apart; the
terminal reads its `snapshot()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from scanner.engine import EngineOptions, ObservationSink
from scanner.models import PortObservation, PortState, ProbeTarget
from scanner.plan import PortKey


@dataclass(frozen=True, slots=True)
class ScanActivity:
    """The unfinished ports of a scan, by what they wait for."""

    sent_all: bool  # every probe of the plan has been handed to the engine
    identifying: int  # ports that answered, waiting for their other exchanges
    waiting: int  # ports with no answer yet (after `sent_all`: silent probes)
    wait_left_s: float | None  # the most their retries can still take, when known


def worst_probe_wait(options: EngineOptions) -> float:
    """The longest one probe can wait: every attempt's wait, each twice the one before."""
    waits = [options.timeout, options.banner_wait, *(e.wait for e in options.exchanges)]
    return max(w for w in waits if w) * float(2 ** (options.retries + 1) - 1)


class ActivityTracker:
    """Wraps the engine's source and sink; `finished` is called for each classified port."""

    def __init__(self, total: int, worst_wait_s: float) -> None:
        self._total = total
        self._worst = worst_wait_s
        self._answered: set[PortKey] = set()
        self._sent_all_at: float | None = None

    def source(self, probes: Iterable[ProbeTarget]) -> Iterator[ProbeTarget]:
        """The plan, noting the moment its last probe is taken."""
        yield from probes
        self._sent_all_at = time.monotonic()

    def sink(self, sink: ObservationSink) -> ObservationSink:
        """The sink, noting which ports have a first observation."""
        answered = self._answered

        def watch(observation: PortObservation) -> Iterable[ProbeTarget] | None:
            # Noted before the sink runs: a port it completes at once is finished inside it
            if observation.state is PortState.OPEN:
                answered.add((observation.host, observation.port, observation.transport))
            return sink(observation)

        return watch

    def finished(self, key: PortKey) -> None:
        """A port was classified."""
        self._answered.discard(key)

    def snapshot(self, done: int) -> ScanActivity:
        """The activity now, given how many ports are finished."""
        identifying = len(self._answered)
        waiting = max(0, self._total - done - identifying)
        left = None
        if self._sent_all_at is not None:
            left = max(0.0, self._sent_all_at + self._worst - time.monotonic())
        return ScanActivity(self._sent_all_at is not None, identifying, waiting, left)


ActivityProbe = Callable[[int], ScanActivity]
