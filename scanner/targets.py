"""Target specifications -> an indexed, lazily expanded set of addresses.

A target set is a sorted list of disjoint address intervals per family. A /8 is two integers,
never a list of sixteen million addresses; `address_at(i)` turns an index into an address, so
the engine can walk the set in any order (see `permutation`) without materialising it.

Accepted specs, as nmap users write them:
    192.0.2.7          one IPv4 address          2001:db8::1        one IPv6 address
    192.0.2.0/24       CIDR (host bits allowed)  2001:db8::/120     IPv6 CIDR
    192.0.2.1-40       a range in the last octet
    192.0.2.1-192.0.3.5, 2001:db8::1-2001:db8::ff   a full-address range
    host.example       a hostname, resolved once before the scan
A target ending like a file (out.xml, hosts.txt: see FILE_SUFFIXES) is refused, never resolved.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import InputFileError, TargetSpecError
from scanner.models import UnresolvedTargetResult

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_ALL_DIGITS_AND_DOTS = re.compile(r"^[0-9.]+$")
# Endings of output and target-list files, none of them a top-level domain: a target ending in
# one is a file name that lost its flag (`-oX out.xml` read as `-o X` and a target `out.xml`),
# and resolving and scanning it would be an out-of-scope scan.
FILE_SUFFIXES = frozenset(
    {
        "xml",
        "json",
        "txt",
        "html",
        "htm",
        "csv",
        "nmap",
        "gnmap",
        "pdf",
        "yaml",
        "yml",
        "log",
        "lst",
    }
)


@dataclass(frozen=True, slots=True)
class AddressBlock:
    """An inclusive interval of addresses of one family (4 or 6)."""

    family: int
    first: int
    last: int

    @property
    def size(self) -> int:
        """How many addresses the block holds (may exceed sys.maxsize for IPv6)."""
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One parsed target: address blocks, or a hostname still to resolve."""

    text: str
    blocks: tuple[AddressBlock, ...] = ()
    hostname: str | None = None


def _block_of(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> AddressBlock:
    return AddressBlock(
        network.version, int(network.network_address), int(network.broadcast_address)
    )


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise TargetSpecError(f"target {text!r}: scoped IPv6 addresses are not supported")
    return address


def _parse_range(spec: str, left: str, right: str) -> TargetSpec | None:
    start = _parse_address(left)
    if start is None:
        return None  # not a range: a hostname with a dash in it
    if isinstance(start, ipaddress.IPv4Address) and right.isdigit():
        last_octet = int(right)
        if last_octet > 255:
            raise TargetSpecError(f"target {spec!r}: last octet {right} is above 255")
        end_int = (int(start) & ~0xFF) | last_octet
    else:
        end = _parse_address(right)
        if end is None or end.version != start.version:
            raise TargetSpecError(
                f"target {spec!r}: {right!r} is not an IPv{start.version} address"
            )
        end_int = int(end)
    if end_int < int(start):
        raise TargetSpecError(f"target {spec!r}: the range ends before it starts")
    return TargetSpec(spec, (AddressBlock(start.version, int(start), end_int),))


def parse_target_spec(spec: str) -> TargetSpec:
    """Parse one target spec; raise TargetSpecError naming it when it is not valid."""
    text = spec.strip()
    if not text:
        raise TargetSpecError("empty target specification")
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise TargetSpecError(f"target {spec!r} is not a valid CIDR block: {exc}") from None
        return TargetSpec(text, (_block_of(network),))
    address = _parse_address(text)
    if address is not None:
        return TargetSpec(text, (AddressBlock(address.version, int(address), int(address)),))
    if "-" in text and ":" in text:
        left, _, right = text.partition("-")
        parsed = _parse_range(text, left, right)
        if parsed is not None:
            return parsed
    if "-" in text and _ALL_DIGITS_AND_DOTS.match(text.partition("-")[0]):
        left, _, right = text.partition("-")
        parsed = _parse_range(text, left, right)
        if parsed is None:
            raise TargetSpecError(f"target {spec!r}: {left!r} is not a valid IPv4 address")
        return parsed
    if _ALL_DIGITS_AND_DOTS.match(text):
        raise TargetSpecError(f"target {spec!r} is not a valid IPv4 address")
    name = text.rstrip(".")
    if "." in name and name.rsplit(".", 1)[1].lower() in FILE_SUFFIXES:
        raise TargetSpecError(
            f"target {spec!r} looks like a file name, not a host; nothing was sent (write "
            "outputs with -oX/-oN/-oG FILE or -oA BASE, read targets with -iL FILE)"
        )
    if len(name) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in name.split(".")):
        raise TargetSpecError(f"target {spec!r} is neither an address, a range nor a hostname")
    return TargetSpec(text, hostname=name)


def split_specs(text: str) -> list[str]:
    """Split a command-line or file spec list on whitespace and commas."""
    return [part for part in re.split(r"[\s,]+", text) if part]


def read_spec_file(path: str) -> list[str]:
    """Read specs from a file: several a line allowed, `#` starts a comment."""
    try:
        content = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"target file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"target file {path!r} cannot be read: {exc}") from None
    return parse_spec_lines(content)


def parse_spec_lines(content: str) -> list[str]:
    """Specs from the text of a target list (a file, or stdin for `-iL -`)."""
    specs: list[str] = []
    for line in content.splitlines():
        specs.extend(split_specs(line.split("#", 1)[0]))
    return specs


def _merge(blocks: Iterable[AddressBlock]) -> list[AddressBlock]:
    merged: list[AddressBlock] = []
    for block in sorted(blocks, key=lambda b: (b.family, b.first)):
        if merged and merged[-1].family == block.family and block.first <= merged[-1].last + 1:
            if block.last > merged[-1].last:
                merged[-1] = AddressBlock(block.family, merged[-1].first, block.last)
        else:
            merged.append(block)
    return merged


def _subtract(blocks: list[AddressBlock], holes: list[AddressBlock]) -> list[AddressBlock]:
    """Both inputs merged and sorted; the result is too."""
    result: list[AddressBlock] = []
    for block in blocks:
        first = block.first
        for hole in holes:
            if hole.family != block.family or hole.last < first or hole.first > block.last:
                continue
            if hole.first > first:
                result.append(AddressBlock(block.family, first, hole.first - 1))
            first = hole.last + 1
            if first > block.last:
                break
        if first <= block.last:
            result.append(AddressBlock(block.family, first, block.last))
    return result


def format_address(family: int, value: int) -> str:
    """The text form of an address given as an integer."""
    if family == 4:
        return socket.inet_ntoa(value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


class TargetSet:
    """Disjoint address intervals with O(log n) indexing; never expanded in memory."""

    __slots__ = ("_blocks", "_keys", "_offsets", "_size")

    def __init__(self, blocks: Iterable[AddressBlock], exclude: Iterable[AddressBlock] = ()):
        self._blocks = _subtract(_merge(blocks), _merge(exclude))
        self._keys = [(block.family, block.first) for block in self._blocks]
        self._offsets: list[int] = []
        total = 0
        for block in self._blocks:
            self._offsets.append(total)
            total += block.size
        self._size = total

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        """The number of addresses; unlike len(), also beyond sys.maxsize (big IPv6 blocks)."""
        return self._size

    @property
    def blocks(self) -> Sequence[AddressBlock]:
        """The disjoint intervals, sorted by family then address."""
        return self._blocks

    def locate(self, index: int) -> tuple[int, int]:
        """(family, integer address) of the index-th address."""
        if not 0 <= index < self._size:
            raise IndexError(index)
        position = bisect.bisect_right(self._offsets, index) - 1
        block = self._blocks[position]
        return block.family, block.first + index - self._offsets[position]

    def address_at(self, index: int) -> str:
        """The index-th address, as text."""
        return format_address(*self.locate(index))

    def __iter__(self) -> Iterator[str]:
        for block in self._blocks:
            for value in range(block.first, block.last + 1):
                yield format_address(block.family, value)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        parsed = ipaddress.ip_address(address)
        key = (parsed.version, int(parsed))
        position = bisect.bisect_right(self._keys, key) - 1
        return (
            position >= 0
            and self._blocks[position].family == key[0]
            and (key[1] <= self._blocks[position].last)
        )


async def resolve_hostname(name: str, timeout: float) -> str:
    """First address of a hostname (IPv4 preferred, as nmap does); raises OSError on failure."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError:
        raise OSError(f"lookup timed out after {timeout:g} s") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


@dataclass(frozen=True, slots=True)
class ResolvedTargets:
    """The scan's address set, the names behind resolved addresses, and the lookups that failed."""

    addresses: TargetSet
    hostnames: dict[str, str]
    unresolved: tuple[UnresolvedTargetResult, ...]


def parse_scope(specs: Sequence[str]) -> list[AddressBlock]:
    """Address blocks of a scope allow-list; hostnames are not accepted there."""
    blocks: list[AddressBlock] = []
    for spec in specs:
        parsed = parse_target_spec(spec)
        if parsed.hostname:
            raise TargetSpecError(f"scope {spec!r} must be an address, CIDR block or range")
        blocks.extend(parsed.blocks)
    return blocks


def in_scopes(address: str, scopes: Sequence[Sequence[AddressBlock]]) -> bool:
    """True when every scope (none given: no limit) holds the address."""
    if not scopes:
        return True
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    value = int(parsed)
    return all(
        any(b.family == parsed.version and b.first <= value <= b.last for b in scope)
        for scope in scopes
    )


def check_scope(targets: TargetSet, scope: Sequence[AddressBlock]) -> None:
    """Raise TargetSpecError naming the first address outside the scope, if any."""
    outside = TargetSet(targets.blocks, scope)
    if outside.size:
        raise TargetSpecError(
            f"target address {outside.address_at(0)} is outside the allowed scope "
            f"({outside.size:,} addresses are); nothing was sent"
        )


async def build_target_set(
    specs: Sequence[str],
    excludes: Sequence[str],
    timeout: float = 5.0,
    scopes: Sequence[Sequence[AddressBlock]] = (),
) -> ResolvedTargets:
    """Parse and resolve target and exclude specs into one TargetSet.

    A target hostname that fails to resolve is recorded and skipped. An exclude that fails to
    resolve is an error: scanning a host the user meant to exclude is never acceptable.
    Any address outside one of the scopes (also one a hostname resolved to) is an error.
    """
    parsed = [parse_target_spec(spec) for spec in specs]
    parsed_excludes = [parse_target_spec(spec) for spec in excludes]
    names = sorted({p.hostname for p in parsed + parsed_excludes if p.hostname})
    results = await asyncio.gather(
        *(resolve_hostname(name, timeout) for name in names), return_exceptions=True
    )
    resolved: dict[str, str] = {}
    failures: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            failures[name] = str(result) or type(result).__name__
        else:
            resolved[name] = result

    def blocks_of(items: list[TargetSpec]) -> Iterator[AddressBlock]:
        for item in items:
            yield from item.blocks
            if item.hostname in resolved:
                address = ipaddress.ip_address(resolved[item.hostname])
                yield AddressBlock(address.version, int(address), int(address))

    for item in parsed_excludes:
        if item.hostname in failures:
            raise TargetSpecError(
                f"exclude {item.text!r} did not resolve ({failures[item.hostname]}); "
                "refusing to scan without it"
            )
    unresolved = tuple(
        UnresolvedTargetResult(target=item.text, error=failures[item.hostname])
        for item in parsed
        if item.hostname in failures
    )
    hostnames = {address: name for name, address in resolved.items()}
    addresses = TargetSet(blocks_of(parsed), blocks_of(parsed_excludes))
    for scope in scopes:
        check_scope(addresses, scope)
    return ResolvedTargets(addresses, hostnames, unresolved)
