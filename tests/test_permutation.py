"""The cyclic-group walk visits every index once, repeatably, in a scattered order."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.permutation import CyclicPermutation, is_prime, prime_factors


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
