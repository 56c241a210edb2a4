"""From a port's observations to its result: follow-up probes, classification, the JSON row.

`PortAssembler` is the engine's sink. It gathers the observations of each (host, port,
transport), asks for the follow-up exchanges an open TCP port gets, and classifies the port
once every probe of it has finished.
"""

from __future__ import annotations

import socket
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

from scanner.classify import (
    RESPONSE_EVIDENCE_LIMIT,
    Knowledge,
    PortClassification,
    as_tarpit,
    classify_port,
    hung_up_every_time,
    matched_protocols,
)
from scanner.ladder import (
    HostRtt,
    HostTurns,
    PortKey,
    PortLadder,
    next_target,
)
from scanner.models import (
    PortObservation,
    PortResult,
    PortState,
    ProbeTarget,
    RegistryRef,
    Transport,
)
from scanner.probeset import ProbeSet, build_probe_set
from scanner.profiles import Profile, merged
from scanner.registry import Registry
from scanner.transport import can_bind_privileged


def to_result(
    classified: PortClassification, hostname: str | None, registry: RegistryRef | None
) -> PortResult:
    """The JSON result for one classified port."""
    observation = classified.deciding
    return PortResult(
        host=observation.host,
        hostname=hostname,
        port=observation.port,
        proto=observation.transport,
        state=observation.state,
        reason=observation.reason,
        rtt_ms=round(observation.rtt * 1000, 3) if observation.rtt is not None else None,
        attempts=observation.attempts,
        response_hex=(
            observation.response[:RESPONSE_EVIDENCE_LIMIT].hex()
            if observation.response is not None
            else None
        ),
        error=observation.error,
        service=classified.service,
        verdict=classified.verdict,
        registry=registry,
        note=classified.note,
    )


@dataclass(frozen=True, slots=True)
class Judge:
    """What classification needs from the profiles, built once per scan."""

    probe_set: ProbeSet
    knowledge: Knowledge

    @classmethod
    def of(cls, profiles: Iterable[Profile]) -> Judge:
        probes, services = merged(profiles)
        probe_set = build_probe_set(probes, services)
        knowledge = Knowledge.build(services, probe_set.infos)
        if not can_bind_privileged():
            needy = {
                (Transport.TCP, port)
                for port, own in probe_set.tcp.items()
                if any(probe_set.exchanges[i - 1].privileged_source for i in own)
            }
            knowledge = replace(knowledge, unconfirmable=frozenset(needy))
        return cls(probe_set, knowledge)


ClosedSink = Callable[[list[str], float], None]
"""Closed TCP discovery probes that are only counted: their hosts, and the shortest round
trip among them."""

CANARY_FIRST, CANARY_SPAN = 61000, 1000  # where tarpit canaries knock (no registered service)


class PortAssembler:
    """The engine's sink: gathers each port's observations, walks the identification ladder
    of open ports one exchange at a time, and classifies a port once it is named or its
    ladder is done. What it returns are the probes the engine runs next.

    TCP: a closed or filtered port is done at once (the hot path of a sweep). An open one gets
    the server-first wait, its own services' probes, then the other protocols' probes by
    rarity, until one answer is a hard match. UDP: the port's first probe alone decides a
    closed port; a silent one gets its other probes, then (on a host that answered anything)
    the fallback datagrams. After the sweep, `second_pass` retries open ports still unnamed,
    one exchange per host at a time with the probes' full waits.
    """

    def __init__(  # noqa: PLR0917 - the scan's context, once
        self,
        judge: Judge,
        registry: Registry | None,
        hostnames: dict[str, str],
        deliver: Callable[[PortClassification], None],
        per_host: int = 2,
        timeout: float = 1.0,
        scanned_tcp: Collection[int] = (),
    ) -> None:
        self._probe_set = judge.probe_set
        self._knowledge = judge.knowledge
        self._exchanges = judge.probe_set.exchanges
        self._registry = registry
        self._hostnames = hostnames
        self._deliver = deliver
        self._timeout = timeout
        self._ladders: dict[PortKey, PortLadder] = {}
        self._turns = HostTurns(per_host)
        self._rtt = HostRtt()
        self._alive: set[str] = set()
        self._unnamed: list[PortKey] = []
        self._second = False
        self._scanned_tcp = frozenset(scanned_tcp)
        self._canaries: dict[PortKey, bool] = {}  # key -> answered open
        self._canary_hosts: dict[str, int] = {}  # host -> canaries not yet answered open
        self._tarpits: set[str] = set()

    # ------------------------------------------------------------------ the sink

    def add(self, observation: PortObservation) -> list[ProbeTarget] | None:
        """Take one probe's observation; return the probes to run next."""
        key = (observation.host, observation.port, observation.transport)
        if key in self._canaries:
            self._canary_seen(key, observation)
            return None
        ladder = self._ladders.get(key)
        if ladder is None:
            if observation.state is PortState.CLOSED and observation.transport is Transport.TCP:
                self._alive.add(observation.host)
                self._rtt.sample_scan(observation.rtt)
                self._deliver(PortClassification(observation, None, None, None))
                return None
            return self._first(key, observation)
        ladder.observations.append(observation)
        ladder.inflight = False
        if observation.transport is Transport.UDP and observation.response:
            self._rtt.sample(observation.host, observation.rtt)  # a TCP exchange's is its wait
        released = self._turns.done(observation.host)
        if observation.state is PortState.OPEN and observation.response is None:
            ladder.silent_probes.append(observation.probe)  # nothing came within the wait
        if self._settled(key, ladder, observation):
            self._finish(key, ladder)
        elif self._turns.ask(key):
            released.append(key)
        return self._issue(released)

    def closed_sink(self, count: Callable[[int], None]) -> ClosedSink:
        """A sink for TCP discovery's closed ports when they are only counted (not listed,
        not checkpointed): what `add` does for each, once per batch of hosts with their
        shortest round trip; `count` tallies them."""

        def closed(hosts: list[str], rtt: float) -> None:
            self._alive.update(hosts)
            self._rtt.sample_scan(rtt)
            count(len(hosts))

        return closed

    def _first(self, key: PortKey, observation: PortObservation) -> list[ProbeTarget] | None:
        host, port, transport = key
        state = observation.state
        if state is not PortState.OPEN_FILTERED and state is not PortState.FILTERED:
            self._alive.add(host)
            self._rtt.sample_scan(observation.rtt)
        if state is not PortState.OPEN and (
            transport is Transport.TCP or state is not PortState.OPEN_FILTERED
        ):
            self._deliver(PortClassification(observation, None, None, None))
            return None
        self._rtt.sample(host, observation.rtt)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if transport is Transport.TCP:
            queue = deque(self._probe_set.tcp_follow_ups(port))
        else:
            queue = deque(i for i in self._probe_set.for_udp(port) if i != observation.probe)
        ladder = PortLadder(family, [observation], queue)
        canaries = self._canaries_for(host, family) if transport is Transport.TCP else []
        if self._settled(key, ladder, observation):
            self._finish(key, ladder)
            return canaries or None
        self._ladders[key] = ladder
        return [*canaries, *(self._issue([key] if self._turns.ask(key) else []) or ())] or None

    def _canaries_for(self, host: str, family: int) -> list[ProbeTarget]:
        """On a host's first open TCP port, connects to two ports nothing should hold: a host
        that accepts both accepts everything (a tarpit or a middlebox)."""
        if host in self._canary_hosts:
            return []
        start = CANARY_FIRST + zlib.crc32(host.encode()) % CANARY_SPAN
        ports = [p for p in range(start, start + 8) if p not in self._scanned_tcp][:2]
        targets = []
        wait = self._rtt.settle_wait(host, self._timeout)  # its silence is no tarpit's
        for port in ports:
            self._canaries[host, port, Transport.TCP] = False
            targets.append(ProbeTarget(host, family, port, Transport.TCP, wait=wait))
        self._canary_hosts[host] = len(ports)
        return targets

    def _canary_seen(self, key: PortKey, observation: PortObservation) -> None:
        if observation.state is not PortState.OPEN or self._canaries[key]:
            return
        self._canaries[key] = True
        self._canary_hosts[key[0]] -= 1
        if not self._canary_hosts[key[0]]:
            self._tarpits.add(key[0])

    def _settled(self, key: PortKey, ladder: PortLadder, observation: PortObservation) -> bool:
        """True when the port needs no more probes: named, closed, or out of probes."""
        if key[2] is Transport.TCP and self._wrapped(key, ladder):
            return True
        if observation.state is PortState.OPEN:
            named, softly = self._matches(key, observation)
            carried = self._probe_set.carried
            if named - carried.keys():
                return True
            own = self._probe_set.tcp.get(key[1], ()) if key[2] is Transport.TCP else ()
            if softly and not named and not any(i in own for i in ladder.queue):
                return True  # its own service, known by a weak sign, and its own probes done
            if named and not ladder.carrier:
                # HTTP answered: only what is carried over HTTP can still say more
                ladder.carrier = True
                wanted = frozenset().union(*(carried[p] for p in named))
                ladder.queue = deque(i for i in ladder.queue if i in wanted)
        if observation.state in (PortState.CLOSED, PortState.FILTERED):
            return True  # an ICMP error to a later UDP probe still says closed
        if not ladder.queue and key[2] is Transport.UDP and not ladder.fallbacks:
            ladder.fallbacks = self._probe_set.udp_fallbacks(key[1])
            live = key[0] in self._alive or self._answered(ladder)
            if live and not self._known(key, ladder):
                ladder.queue.extend(ladder.fallbacks)
        return not ladder.queue

    def _wrapped(self, key: PortKey, ladder: PortLadder) -> bool:
        """nmap's tcpwrapped: the server-first wait and every probe of the port's own services
        (at least two exchanges) ended with the server hanging up without a byte. Whatever
        else we sent would meet the same; the other protocols' probes are not sent."""
        if not hung_up_every_time(ladder.observations):
            return False
        own = self._probe_set.tcp.get(key[1], ())
        return not any(i in own for i in ladder.queue)

    @staticmethod
    def _answered(ladder: PortLadder) -> bool:
        return any(o.state is PortState.OPEN for o in ladder.observations)

    def _issue(self, keys: list[PortKey]) -> list[ProbeTarget] | None:
        """Probes for ports that have a turn now (a port whose queue ran dry gives it back)."""
        targets: list[ProbeTarget] = []
        for key in keys:
            ladder = self._ladders.get(key)
            if ladder is None or not ladder.queue or ladder.inflight:
                targets.extend(self._issue(self._turns.done(key[0])) or ())
                continue
            probe = ladder.queue.popleft()
            exchange = self._exchanges[probe - 1] if probe else None
            wait = 0.0
            if exchange is not None:
                wait = (
                    (exchange.wait or self._timeout) * 2
                    if ladder.second_pass
                    else (self._rtt.wait(key[0], exchange, self._timeout))
                )
            targets.append(next_target(key, ladder, probe, wait))
        return targets or None

    def _protocols(self, key: PortKey, observation: PortObservation) -> set[str]:
        return self._matches(key, observation)[0]

    def _matches(self, key: PortKey, observation: PortObservation) -> tuple[set[str], set[str]]:
        owners = self._knowledge.owners.get((key[2], key[1]), ())
        return matched_protocols(observation, self._knowledge, owners)

    def _known(self, key: PortKey, ladder: PortLadder) -> bool:
        """Something matched the port, softly at least (a discard port's silence)."""
        return any(
            any(self._matches(key, o)) for o in ladder.observations if o.state is PortState.OPEN
        ) or any(self._owner_silence(key, o) for o in ladder.observations)

    def _owner_silence(self, key: PortKey, observation: PortObservation) -> bool:
        """A silent UDP port whose own service is known by its silence (discard, a trap
        receiver): its own probes said what it is; no fallback datagrams."""
        if observation.state is not PortState.OPEN_FILTERED:
            return False
        owners = self._knowledge.owners.get((key[2], key[1]), ())
        return any(m.type == "silent" for o in owners for m in o.matchers)

    def _finish(self, key: PortKey, ladder: PortLadder) -> None:
        self._ladders.pop(key, None)
        observations = ladder.observations
        if (
            not self._known(key, ladder)
            and not self._second
            and key[2] is Transport.TCP
            and ladder.silent_probes
            and any(o.state is PortState.OPEN for o in observations)
        ):
            # Open, unnamed, and some exchange got nothing: once more after the sweep, slowly
            self._unnamed.append(key)
            self._ladders[key] = PortLadder(ladder.family, observations, deque())
            return
        self._complete(observations)

    # ------------------------------------------------------------------ after the sweep

    def second_pass(self) -> list[ProbeTarget]:
        """Open ports still unnamed: their server-first wait and own probes again, one
        exchange per host at a time, with the probes' full waits doubled."""
        self._second = True
        self._turns.set_limit(1)
        keys: list[PortKey] = []
        for key in self._unnamed:
            ladder = self._ladders[key]
            own = self._probe_set.tcp.get(key[1], ())
            null = self._probe_set.tcp_null
            ladder.queue = deque(dict.fromkeys(p for p in (null, *own) if p is not None))
            ladder.second_pass = True
            if not ladder.queue:
                self._ladders.pop(key)
                self._complete(ladder.observations)
            elif self._turns.ask(key):
                keys.append(key)
        self._unnamed.clear()
        return self._issue(keys) or []

    def flush(self) -> None:
        """Classify every port still open in the books (the scan ends or was stopped)."""
        for key in list(self._ladders):
            self._complete(self._ladders.pop(key).observations)

    # ------------------------------------------------------------------ results

    def registry_ref(self, observation: PortObservation) -> RegistryRef | None:
        """The registry entry of an observation's port."""
        if self._registry is None:
            return None
        return self._registry.ref(observation.port, observation.transport)

    def hostname(self, observation: PortObservation) -> str | None:
        """The name the observation's address was resolved from, if any."""
        return self._hostnames.get(observation.host)

    def _complete(self, observations: list[PortObservation]) -> None:
        first = observations[0]
        if len(observations) == 1 and first.state is not PortState.OPEN:
            self._deliver(PortClassification(first, None, None, None))
            return
        classified = classify_port(
            observations, self._knowledge, self.registry_ref(first), self.hostname(first)
        )
        if first.host in self._tarpits:
            classified = as_tarpit(classified)
        self._deliver(classified)
