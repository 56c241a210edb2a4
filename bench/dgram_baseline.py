"""UDP sweep with asyncio-dgram, the usual way: a worker pool, one connected stream per probe.

    python bench/dgram_baseline.py FIRST_IPV4 COUNT PORT TIMEOUT LOOP

Prints: probes seconds closed open_filtered open. Run by sweep.py inside its namespace; it
shows why the engine does not use asyncio-dgram on its hot path (rate, and closed ports missed
on the standard loop because recv() does not wake on an ICMP error that arrives while it waits).
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time

import asyncio_dgram


async def sweep(first: str, count: int, port: int, timeout: float) -> tuple[int, int, int]:
    base = int(ipaddress.IPv4Address(first))
    indexes = iter(range(count))
    closed = silent = answered = 0

    async def worker() -> None:
        nonlocal closed, silent, answered
        for index in indexes:
            stream = await asyncio_dgram.connect((str(ipaddress.IPv4Address(base + index)), port))
            try:
                await stream.send(b"")
                await asyncio.wait_for(stream.recv(), timeout)
                answered += 1
            except ConnectionRefusedError:
                closed += 1
            except TimeoutError:
                silent += 1
            finally:
                stream.close()

    await asyncio.gather(*(worker() for _ in range(1024)))
    return closed, silent, answered


def main() -> None:
    first, count, port, timeout, loop = sys.argv[1:6]
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    start = time.perf_counter()
    with asyncio.Runner(loop_factory=factory) as runner:
        closed, silent, answered = runner.run(sweep(first, int(count), int(port), float(timeout)))
    print(int(count), time.perf_counter() - start, closed, silent, answered)


if __name__ == "__main__":
    main()
