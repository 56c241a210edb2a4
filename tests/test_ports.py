"""Port specs in nmap syntax."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import PortSpecError
from scanner.models import Transport
from scanner.ports import compress_ports, parse_port_spec

BOTH = (Transport.TCP, Transport.UDP)


def test_plain_list_applies_to_every_selected_transport() -> None:
    spec = parse_port_spec("23,161,391-392")
    assert spec.tcp == spec.udp == (23, 161, 391, 392)
    assert parse_port_spec("23,161", (Transport.UDP,)).tcp == ()


def test_prefixes_apply_until_the_next_prefix() -> None:
    spec = parse_port_spec("T:23,412,U:161,391")
    assert spec.tcp == (23, 412)
    assert spec.udp == (161, 391)


def test_open_ended_ranges() -> None:
    assert parse_port_spec("-3", (Transport.TCP,)).tcp == (1, 2, 3)
    assert parse_port_spec("65534-", (Transport.TCP,)).tcp == (65534, 65535)
    assert len(parse_port_spec("-", (Transport.TCP,)).tcp) == 65535


def test_restricted_transport_that_selects_nothing_is_an_error() -> None:
    with pytest.raises(PortSpecError, match="selects no tcp port"):
        parse_port_spec("U:161", (Transport.TCP,))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("0", "0"),
        ("70000", "70000"),
        ("5-3", "5-3"),
        ("abc", "abc"),
        ("1,,2", "1,,2"),
        ("S:80", "S:80"),
        ("", "empty"),
        ("T:", "T:"),
        ("22-x", "22-x"),
        ("registry:x", "registry:x"),
        ("²", "'²'"),  # isdigit() is True and int() a ValueError
        ("٣", "'٣'"),  # an Arabic-Indic 3: int() would read it as port 3
        ("T:80,U:\uff11\uff16\uff11", "'\uff11'"),  # fullwidth 161
        ("", "''"),
        ("   ", "'   '"),
        ("-5-3", "'-5-3'"),
        ("1-²", "'1-²'"),
        ("99999999999999999999", "99999"),  # too long for int() to be asked
        ("+5", "'+5'"),
        ("5_0", "'5_0'"),  # int() would take the underscore
    ],
)
def test_invalid_ports_name_the_value(text: str, named: str) -> None:
    with pytest.raises(PortSpecError) as caught:
        parse_port_spec(text)
    assert named in str(caught.value)


port_sets = st.sets(st.integers(min_value=1, max_value=65535), min_size=1, max_size=60)


@given(port_sets, port_sets)
def test_compressed_specs_round_trip(tcp: set[int], udp: set[int]) -> None:
    text = f"T:{compress_ports(tcp)},U:{compress_ports(udp)}"
    spec = parse_port_spec(text, BOTH)
    assert spec.tcp == tuple(sorted(tcp))
    assert spec.udp == tuple(sorted(udp))
    assert parse_port_spec(spec.describe()["tcp"], (Transport.TCP,)).tcp == spec.tcp


@given(st.text(alphabet="0123456789-,TU:", max_size=20))
def test_parser_raises_only_port_spec_errors(text: str) -> None:
    try:
        spec = parse_port_spec(text)
    except PortSpecError:
        return
    assert all(1 <= p <= 65535 for p in spec.tcp + spec.udp)


def test_a_huge_bad_value_is_named_but_not_repeated_whole() -> None:
    # Given a megabyte of digits, the error quotes the start of it, not all of it
    with pytest.raises(PortSpecError) as caught:
        parse_port_spec("7" * 1_000_000)
    message = str(caught.value)
    assert "'7777" in message and len(message) < 200 and "\n" not in message


def test_leading_zeros_are_still_ascii_ports() -> None:
    assert parse_port_spec("00080", (Transport.TCP,)).tcp == (80,)


@given(st.text(max_size=30))
def test_any_text_is_a_spec_or_a_port_spec_error_naming_it(text: str) -> None:
    try:
        spec = parse_port_spec(text)
    except PortSpecError as exc:
        message = str(exc)
        items = [raw.strip() for raw in text.split(",")]
        named = {text, *items, *(item.partition(":")[2].strip() for item in items)}
        named |= {part for item in set(named) for part in item.split("-")}
        assert "\n" not in message
        assert any(repr(value) in message for value in named), message
        return
    assert text.isascii()
    assert all(1 <= p <= 65535 for p in spec.tcp + spec.udp)
