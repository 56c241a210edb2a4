"""From a port's observations to its result: follow-up probes, classification, the JSON row.

`PortAssembler` is the engine's sink. It gathers the observations of each (host, port,
transport), asks for the follow-up exchanges an open TCP port gets, and classifies the port
once every probe of it has finished.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scanner.classify import (
    RESPONSE_EVIDENCE_LIMIT,
    Knowledge,
    PortClassification,
    classify_port,
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
        return cls(probe_set, Knowledge.build(services, probe_set.infos))


class PortAssembler:
    """Gathers each port's observations, asks for TCP follow-ups on open ports, and classifies
    a port once every probe of it has finished. It is the engine's sink: what it returns are
    the follow-up probes the engine runs next."""

    def __init__(
        self,
        judge: Judge,
        registry: Registry | None,
        hostnames: dict[str, str],
        deliver: Callable[[PortClassification], None],
    ) -> None:
        self._probe_set = judge.probe_set
        self._knowledge = judge.knowledge
        self._registry = registry
        self._hostnames = hostnames
        self._deliver = deliver
        self._pending: dict[tuple[str, int, Transport], tuple[list[PortObservation], int]] = {}

    def add(self, observation: PortObservation) -> list[ProbeTarget] | None:
        """Take one probe's observation; classify the port when it is complete."""
        key = (observation.host, observation.port, observation.transport)
        pending = self._pending.get(key)
        if pending is None:
            follow_ups = self._follow_ups(observation)
            expected = (
                len(self._probe_set.for_udp(observation.port))
                if (observation.transport is Transport.UDP)
                else 1 + len(follow_ups)
            )
            if expected == 1:
                self._complete([observation])
                return None
            self._pending[key] = ([observation], expected)
            return follow_ups
        observations, expected = pending
        observations.append(observation)
        if len(observations) >= expected:
            del self._pending[key]
            self._complete(observations)
        return None

    def _follow_ups(self, observation: PortObservation) -> list[ProbeTarget]:
        if (
            observation.transport is Transport.UDP
            or observation.state is not PortState.OPEN
            or observation.probe
        ):
            return []
        family = socket.AF_INET6 if ":" in observation.host else socket.AF_INET
        return [
            ProbeTarget(observation.host, family, observation.port, Transport.TCP, probe)
            for probe in self._probe_set.tcp_follow_ups(observation.port)
        ]

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
            # The hot path of a sweep: nothing answered, so there is nothing to classify.
            self._deliver(PortClassification(first, None, None, None))
            return
        classified = classify_port(
            observations, self._knowledge, self.registry_ref(first), self.hostname(first)
        )
        self._deliver(classified)
