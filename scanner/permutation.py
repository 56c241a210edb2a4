"""A repeatable pseudo-random permutation of 0..n-1 in O(1) memory (zmap's cyclic-group walk).

Pick the smallest prime p > n and a generator g of the multiplicative group modulo p. Starting
anywhere in the group, x -> x*g mod p visits every element of 1..p-1 exactly once; keeping the
values <= n and subtracting one yields each index of 0..n-1 once, in an order that looks random
and depends only on the seed. Nothing is materialised, whatever the size of n.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3e24 (far above any probe space we accept)."""
    if n < 2:
        return False
    for prime in _SMALL_PRIMES:
        if n % prime == 0:
            return n == prime
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for base in _SMALL_PRIMES:
        x = pow(base, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _pollard_rho(n: int, rng: random.Random) -> int:
    if n % 2 == 0:
        return 2
    while True:
        c = rng.randrange(1, n)
        x = y = rng.randrange(2, n)
        d = 1
        while d == 1:
            x = (x * x + c) % n
            y = (y * y + c) % n
            y = (y * y + c) % n
            d = math.gcd(abs(x - y), n)
        if d != n:
            return d


def prime_factors(n: int) -> set[int]:
    """The distinct prime factors of n."""
    factors: set[int] = set()
    for prime in range(2, 1000):
        while n % prime == 0:
            factors.add(prime)
            n //= prime
    pending = [n] if n > 1 else []
    rng = random.Random(n)
    while pending:
        m = pending.pop()
        if is_prime(m):
            factors.add(m)
        else:
            d = _pollard_rho(m, rng)
            pending += [d, m // d]
    return factors


def _next_prime(n: int) -> int:
    candidate = n + 1
    while not is_prime(candidate):
        candidate += 1
    return candidate


class CyclicPermutation:
    """Iterates 0..size-1 in a seeded pseudo-random order, once each."""

    __slots__ = ("generator", "prime", "seed", "size", "start")

    def __init__(self, size: int, seed: int) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self.seed = seed
        self.prime = _next_prime(max(size, 2))
        rng = random.Random(seed)
        order = self.prime - 1
        factors = prime_factors(order)
        while True:
            candidate = rng.randrange(2, self.prime) if self.prime > 3 else self.prime - 1
            if all(pow(candidate, order // q, self.prime) != 1 for q in factors):
                self.generator = candidate
                break
        self.start = rng.randrange(1, self.prime)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        size, prime, generator = self.size, self.prime, self.generator
        x = self.start
        for _ in range(prime - 1):
            if x <= size:
                yield x - 1
            x = x * generator % prime
