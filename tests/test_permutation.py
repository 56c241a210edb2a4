"""The cyclic-group walk visits every index once, repeatably, in a scattered order; the plan
built on it yields every probe once."""

from __future__ import annotations

import itertools
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.models import ProbeTarget, Transport
from scanner.permutation import CyclicPermutation, is_prime, prime_factors
from scanner.plan import ProbePlan
from scanner.ports import parse_port_spec
from scanner.targets import AddressBlock, TargetSet


@settings(max_examples=60)
@given(st.integers(min_value=0, max_value=3000), st.integers(min_value=0, max_value=2**32))
def test_every_index_exactly_once(size: int, seed: int) -> None:
    order = list(CyclicPermutation(size, seed))
    assert sorted(order) == list(range(size))


def test_same_seed_same_order_other_seed_other_order() -> None:
    assert list(CyclicPermutation(1000, 7)) == list(CyclicPermutation(1000, 7))
    assert list(CyclicPermutation(1000, 7)) != list(CyclicPermutation(1000, 8))


def test_order_is_scattered() -> None:
    # Given 50 hosts x 20 ports, index // 20 is the host
    order = list(CyclicPermutation(1000, 3))
    same_host_neighbours = sum(1 for a, b in itertools.pairwise(order) if a // 20 == b // 20)
    # Then consecutive probes rarely hit the same host (sequential order would do it 950 times)
    assert same_host_neighbours < 100


def test_huge_space_starts_at_once() -> None:
    walk = iter(CyclicPermutation(2**24 * 65535 * 2, 1))  # a /8, every port, both transports
    first = [next(walk) for _ in range(1000)]
    assert len(set(first)) == 1000
    assert all(0 <= value < 2**24 * 65535 * 2 for value in first)


@given(st.integers(min_value=2, max_value=10**12))
def test_factors_multiply_back(n: int) -> None:
    factors = prime_factors(n)
    assert all(is_prime(f) for f in factors)
    rest = n
    for factor in factors:
        while rest % factor == 0:
            rest //= factor
    assert rest == 1


@pytest.mark.parametrize(
    "blocks",
    [
        [AddressBlock(4, 0x7F010000, 0x7F0100FF)],  # one block: indexed by addition
        [  # several, both families: located by search
            AddressBlock(4, 0x7F000001, 0x7F000003),
            AddressBlock(4, 0x7F000010, 0x7F000011),
            AddressBlock(6, 1, 1),
        ],
    ],
)
def test_the_plan_yields_every_probe_once_as_the_constructor_makes_it(
    blocks: list[AddressBlock],
) -> None:
    # Given targets and a TCP and a UDP port whose datagram has two payloads
    targets = TargetSet(blocks)
    ports = parse_port_spec("T:9,U:161")
    plan = ProbePlan(targets, ports, seed=7, udp_probes=lambda port: (0, 1))
    # When the plan is walked
    probes = list(plan)
    # Then every host, port and payload comes once, each the tuple ProbeTarget() builds
    expected = []
    for host in targets:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        expected.append(ProbeTarget(host, family, 9, Transport.TCP))
        expected += [ProbeTarget(host, family, 161, Transport.UDP, probe) for probe in (0, 1)]
    assert sorted(probes) == sorted(expected)
    assert all(type(probe) is ProbeTarget for probe in probes)
    assert all(type(probe.family) is socket.AddressFamily for probe in probes)
    # and in the scattered order of the permutation, not the targets' own
    assert probes != expected
