"""Target specs: parsing, lazy indexing, excludes, files and hostnames."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import InputFileError, TargetSpecError
from scanner.targets import (
    TargetSet,
    build_target_set,
    parse_target_spec,
    read_spec_file,
)

ipv4_ints = st.integers(min_value=0, max_value=2**32 - 1)


def addresses(specs: list[str], excludes: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    exclude_blocks = [b for spec in excludes for b in parse_target_spec(spec).blocks]
    blocks = [b for spec in specs for b in parse_target_spec(spec).blocks]
    return list(TargetSet(blocks, exclude_blocks))


@pytest.mark.parametrize(
    ("spec", "first", "count"),
    [
        ("127.0.0.1", "127.0.0.1", 1),
        ("127.0.0.0/30", "127.0.0.0", 4),
        ("127.0.0.5/30", "127.0.0.4", 4),  # host bits allowed, as in nmap
        ("127.0.0.1-40", "127.0.0.1", 40),
        ("127.0.0.250-127.0.1.5", "127.0.0.250", 12),
        ("::1", "::1", 1),
        ("2001:db8::/126", "2001:db8::", 4),
        ("2001:db8::1-2001:db8::10", "2001:db8::1", 16),
    ],
)
def test_spec_forms(spec: str, first: str, count: int) -> None:
    result = addresses([spec])
    assert result[0] == first
    assert len(result) == count


@pytest.mark.parametrize(
    "spec",
    [
        "10.0.0.300",
        "127.0.0.1-300",
        "127.0.0.9-3",
        "127.0.0.1-::1",
        "1.2.3.4/33",
        "foo bar!",
        "-host",
        "fe80::1%eth0",
        "",
        "1.2.3",
    ],
)
def test_bad_specs_name_the_value(spec: str) -> None:
    with pytest.raises(TargetSpecError) as caught:
        parse_target_spec(spec)
    assert spec.strip() in str(caught.value) or "empty" in str(caught.value)


def test_hostnames_are_recognised_not_resolved_by_the_parser() -> None:
    assert parse_target_spec("my-host.example.test").hostname == "my-host.example.test"
    assert parse_target_spec("localhost").blocks == ()


def test_a_slash_8_is_indexed_without_expanding() -> None:
    targets = TargetSet(parse_target_spec("127.0.0.0/8").blocks)
    assert len(targets) == 2**24
    assert targets.address_at(0) == "127.0.0.0"
    assert targets.address_at(2**24 - 1) == "127.255.255.255"
    assert targets.address_at(65536 + 258) == "127.1.1.2"
    assert len(targets.blocks) == 1


def test_excludes_and_duplicates() -> None:
    # Given overlapping targets and excludes inside and across their edges
    result = addresses(
        ["127.0.0.0/29", "127.0.0.4-10"], ["127.0.0.0", "127.0.0.3-5", "127.0.0.10/32"]
    )
    # Then every address appears once and none of the excluded ones
    assert result == ["127.0.0.1", "127.0.0.2", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"]


@given(
    st.lists(st.tuples(ipv4_ints, st.integers(0, 300)), min_size=1, max_size=5),
    st.lists(st.tuples(ipv4_ints, st.integers(0, 300)), max_size=5),
)
def test_target_set_matches_a_brute_force_set(
    ranges: list[tuple[int, int]], holes: list[tuple[int, int]]
) -> None:
    def spec(start: int, length: int) -> str:
        end = min(start + length, 2**32 - 1)
        return f"{ipaddress.IPv4Address(start)}-{ipaddress.IPv4Address(end)}"

    expected = {a for s, n in ranges for a in range(s, min(s + n, 2**32 - 1) + 1)}
    expected -= {a for s, n in holes for a in range(s, min(s + n, 2**32 - 1) + 1)}
    targets = TargetSet(
        [b for s, n in ranges for b in parse_target_spec(spec(s, n)).blocks],
        [b for s, n in holes for b in parse_target_spec(spec(s, n)).blocks],
    )
    assert len(targets) == len(expected)
    listed = [int(ipaddress.IPv4Address(a)) for a in targets]
    assert listed == sorted(expected)
    for index in (0, len(targets) // 2, len(targets) - 1) if len(targets) else ():
        assert int(ipaddress.IPv4Address(targets.address_at(index))) == listed[index]
        assert targets.address_at(index) in targets


@given(ipv4_ints, st.integers(min_value=8, max_value=32))
def test_cidr_sizes_and_bounds(address: int, prefix: int) -> None:
    network = ipaddress.IPv4Network((address, prefix), strict=False)
    targets = TargetSet(parse_target_spec(f"{ipaddress.IPv4Address(address)}/{prefix}").blocks)
    assert len(targets) == network.num_addresses
    assert targets.address_at(0) == str(network.network_address)
    assert targets.address_at(len(targets) - 1) == str(network.broadcast_address)


@given(st.text(max_size=40))
def test_parser_never_crashes_on_garbage(text: str) -> None:
    try:
        spec = parse_target_spec(text)
    except TargetSpecError:
        return
    assert spec.blocks or spec.hostname


def test_spec_file_with_comments(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "hosts.txt"  # type: ignore[operator]
    path.write_text("# lab hosts\n127.0.0.1  127.0.0.2 # two\n\n127.0.0.8/31,::1\n")
    assert read_spec_file(str(path)) == ["127.0.0.1", "127.0.0.2", "127.0.0.8/31", "::1"]
    with pytest.raises(InputFileError, match=r"missing\.txt"):
        read_spec_file(str(path.parent / "missing.txt"))  # type: ignore[union-attr]


def test_localhost_resolves_once_and_keeps_its_name() -> None:
    resolved = asyncio.run(build_target_set(["localhost", "127.0.0.1"], []))
    assert list(resolved.addresses) == ["127.0.0.1"]  # merged: one address, scanned once
    assert resolved.hostnames == {"127.0.0.1": "localhost"}
    assert resolved.unresolved == ()


def test_probe_space_above_the_limit_is_refused_before_anything_runs() -> None:
    from scanner.errors import ScanOptionError
    from scanner.plan import ProbePlan
    from scanner.ports import parse_port_spec
    from scanner.targets import AddressBlock

    huge = TargetSet([AddressBlock(6, 0, 2**100)])
    with pytest.raises(ScanOptionError, match="more than the limit"):
        ProbePlan(huge, parse_port_spec("1-65535"), seed=1)


def test_scope_rejects_targets_outside_it() -> None:
    from scanner.targets import parse_scope

    scope = parse_scope(["127.0.0.0/8", "::1"])
    inside = asyncio.run(build_target_set(["127.0.0.1-9", "::1"], [], scopes=[scope]))
    assert len(inside.addresses) == 10
    with pytest.raises(TargetSpecError, match=r"127\.0\.0\.0/8|outside the allowed scope"):
        asyncio.run(build_target_set(["126.255.255.255-127.0.0.3"], [], scopes=[scope]))
    narrower = parse_scope(["127.0.0.0/30"])
    with pytest.raises(TargetSpecError, match=r"127\.0\.0\.4 is outside"):
        asyncio.run(build_target_set(["127.0.0.1-9"], [], scopes=[scope, narrower]))
