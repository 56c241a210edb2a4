"""Profiles: strict loading, every service recognised from a real answer, and only by itself."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scanner.classify import Knowledge, classify_port
from scanner.cli import ghostport_main, scan_main
from scanner.errors import ProfileError
from scanner.match import match
from scanner.models import PortObservation, PortState, Reason, Transport, Verdict
from scanner.probes import BUILDERS, build_payload
from scanner.probeset import build_probe_set
from scanner.profiles import bundled_profile_ids, load_profiles, merged
from scanner.safe_yaml import MAX_PROFILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_SIZE
from tests.samples import ECHO, PORT_OWNERS_ONLY, SAMPLES, SILENT, Sample
from tests.test_cli import validate

PROBES, SERVICES = merged(load_profiles(["legacy-mgmt"]))
PROBE_SET = build_probe_set(PROBES, SERVICES)
KNOWLEDGE = Knowledge.build(SERVICES, PROBE_SET.infos)
INDEX = {name: i for i, info in enumerate(PROBE_SET.infos) for name in info.ids}
PAYLOAD = {name: info.payload for info in PROBE_SET.infos for name in info.ids}


def response_of(sample: Sample) -> bytes | None:
    if sample.response == ECHO:
        return PAYLOAD[sample.probe]
    if sample.response == SILENT:
        return None
    return sample.response


def observations_for(sample: Sample) -> list[PortObservation]:
    answer = PortObservation(
        "127.0.0.1",
        sample.port,
        sample.transport,
        PortState.OPEN,
        Reason.SYN_ACK if sample.transport is Transport.TCP else Reason.UDP_RESPONSE,
        0.001,
        1,
        response_of(sample),
        None,
        INDEX[sample.probe],
    )
    if sample.transport is Transport.UDP:
        return [answer]
    connect = PortObservation(
        "127.0.0.1", sample.port, Transport.TCP, PortState.OPEN, Reason.SYN_ACK, 0.001, 1
    )
    return [connect, answer]


def test_every_bundled_service_has_a_positive_sample() -> None:
    _, services = merged(load_profiles(bundled_profile_ids()))
    sampled = {s.service for s in SAMPLES}
    assert {s.id for s in services} == sampled | PORT_OWNERS_ONLY
    assert all(
        s.source.startswith(("recorded from", "constructed per", "inetutils", "net-snmp"))
        for s in SAMPLES
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.service}-{s.port}-{s.transport}")
def test_sample_is_recognised_as_its_service(sample: Sample) -> None:
    classified = classify_port(observations_for(sample), KNOWLEDGE, None)
    assert classified.service is not None
    assert (classified.service.id, classified.service.protocol) == (sample.service, sample.protocol)
    owned = (sample.transport, sample.port) in KNOWLEDGE.owners
    if sample.service == "bind-shell":
        # A shell that runs our command is a critical finding on any port (issue 12)
        assert classified.verdict is Verdict.SQUATTER
        assert classified.finding is not None and classified.finding.severity == "critical"
        return
    assert classified.verdict is (Verdict.LEGACY if owned else None)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.service}-{s.port}-{s.transport}")
def test_no_other_protocol_claims_a_sample(sample: Sample) -> None:
    response = response_of(sample) or b""
    request = PAYLOAD[sample.probe]
    claims = {
        (service.id, matcher.name, matcher.protocol)
        for service in SERVICES
        for matcher in service.matchers
        if matcher.type != "silent"
        and (not matcher.probes or sample.probe in matcher.probes)
        and match(matcher, response, request) is not None
        and matcher.protocol != sample.protocol
    }
    assert claims == set()


def test_snmp_answer_on_a_synoptics_port_is_legacy_and_critical() -> None:
    sample = next(s for s in SAMPLES if s.service == "synoptics-relay" and s.transport == "udp")
    classified = classify_port(observations_for(sample), KNOWLEDGE, None)
    assert classified.finding is not None
    assert classified.finding.severity == "critical"  # the public community works
    assert classified.finding.evidence.decoded["sysDescr"].startswith("SynOptics Model 3030")
    assert classified.finding.evidence.decoded["sysName"] == "hub-3f"


def test_echoed_snmp_request_is_echo_not_snmp() -> None:
    # Given an echo service on an SNMP port: the SNMP request comes back unchanged
    request = PAYLOAD["snmp-v1-public"]
    echoed = PortObservation(
        "127.0.0.1",
        391,
        Transport.UDP,
        PortState.OPEN,
        Reason.UDP_RESPONSE,
        0.001,
        1,
        request,
        None,
        INDEX["snmp-v1-public"],
    )
    classified = classify_port([echoed], KNOWLEDGE, None)
    # Then it is echo squatting on the SynOptics port, never SNMP
    assert classified.service is not None and classified.service.protocol == "echo"
    assert classified.verdict is Verdict.SQUATTER


def test_unknown_banner_on_an_orphan_port_is_a_squatter_and_silence_unidentified() -> None:
    for port in (3333, 412):
        banner = PortObservation(
            "127.0.0.1",
            port,
            Transport.TCP,
            PortState.OPEN,
            Reason.SYN_ACK,
            0.001,
            1,
            b"\x07\x13backdoor v2 ready",
            None,
            INDEX["tcp-null"],
        )
        classified = classify_port([banner], KNOWLEDGE, None)
        assert classified.verdict is Verdict.SQUATTER
        assert classified.finding is not None and "unrecognised" in classified.finding.title
    quiet = PortObservation(
        "127.0.0.1", 45000, Transport.TCP, PortState.OPEN, Reason.SYN_ACK, 0.001, 1
    )
    assert classify_port([quiet], KNOWLEDGE, None).verdict is Verdict.UNIDENTIFIED


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from(sorted(PAYLOAD)))
def test_hostile_bytes_never_break_a_matcher(response: bytes, probe: str) -> None:
    for service in SERVICES:
        for matcher in service.matchers:
            found = match(matcher, response, PAYLOAD[probe])
            assert found is None or found.protocol == matcher.protocol


# ---------------------------------------------------------------- replayed over real sockets


class _Replayer(threading.Thread):
    """Serves every sample on its own 127.0.61.N address and the service's real port."""

    def __init__(self, samples: list[tuple[str, Sample]]) -> None:
        super().__init__(daemon=True)
        self.selector = selectors.DefaultSelector()
        self.stop_event = threading.Event()
        self.sockets: list[socket.socket] = []
        for host, sample in samples:
            kind = socket.SOCK_STREAM if sample.transport is Transport.TCP else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, sample.port))
            if kind == socket.SOCK_STREAM:
                sock.listen(64)
            sock.setblocking(False)
            self.sockets.append(sock)
            self.selector.register(sock, selectors.EVENT_READ, ("listen", sample, None))

    def run(self) -> None:
        while not self.stop_event.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                with contextlib.suppress(OSError):
                    self._handle(key)

    def _handle(self, key: selectors.SelectorKey) -> None:
        role, sample, _ = key.data
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        if sample.transport is Transport.UDP:
            data, peer = sock.recvfrom(65535)
            reply = data if sample.response == ECHO else sample.response
            if sample.service == "tftp":  # TFTP answers from a new port
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    other.bind((sock.getsockname()[0], 0))
                    other.sendto(reply, peer)
            else:
                sock.sendto(reply, peer)
            return
        if role == "listen":
            conn, _ = sock.accept()
            conn.setblocking(False)
            self.sockets.append(conn)
            self.selector.register(conn, selectors.EVENT_READ, ("conn", sample, None))
            if sample.response not in (ECHO, SILENT) and sample.probe == "tcp-null":
                conn.sendall(sample.response)  # speaks first
            return
        data = sock.recv(65535)
        if not data:
            self.selector.unregister(sock)
            sock.close()
            return
        if sample.response == ECHO:
            sock.sendall(data)
        elif sample.response != SILENT and sample.probe != "tcp-null":
            sock.sendall(sample.response)

    def close(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        for sock in self.sockets:
            sock.close()
        self.selector.close()


@pytest.fixture
def replayed() -> Iterator[list[tuple[str, Sample]]]:
    if os.geteuid() != 0:
        pytest.skip("binding the services' real ports below 1024 needs root")
    placed = [(f"127.0.61.{n}", sample) for n, sample in enumerate(SAMPLES, start=1)]
    server = _Replayer(placed)
    server.start()
    try:
        yield placed
    finally:
        server.close()


def test_samples_replayed_by_servers_are_recognised_end_to_end(
    replayed: list[tuple[str, Sample]], tmp_path: Path
) -> None:
    out = tmp_path / "samples.json"
    extra = ",".join(
        f"{str(s.transport)[0].upper()}:{s.port}"
        for _, s in replayed
        if (s.transport, s.port) not in KNOWLEDGE.owners
    )
    from scanner.profiles import profile_ports

    ports = f"{profile_ports(load_profiles(['legacy-mgmt']))},{extra}"
    code = scan_main(
        ["-q", "--json", str(out), "--timeout", "1", "-p", ports, f"127.0.61.1-{len(replayed)}"]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    validate(doc)
    listed = {(r["host"], r["port"], r["proto"]): r for r in doc["results"]}
    for host, sample in replayed:
        result = listed[host, sample.port, str(sample.transport)]
        assert result["service"]["id"] == sample.service, (host, sample)
        others = [
            k
            for k, r in listed.items()
            if k[0] == host
            and k[1:] != (sample.port, str(sample.transport))
            and r["state"] == "open"
        ]
        assert others == [], f"{sample.service}: other open ports on its host"
    findings = {(f["host"], f["port"]) for f in doc["findings"]}
    owned = {(h, s.port) for h, s in replayed if (s.transport, s.port) in KNOWLEDGE.owners}
    shells = {(h, s.port) for h, s in replayed if s.service == "bind-shell"}  # on any port
    assert findings == owned | shells


# ---------------------------------------------------------------- loading and CLI


BAD_PROFILE = """
id: broken-profile
title: Broken on purpose
colour: blue
include: [no-such-profile]
probes:
  - {id: ok-probe, transport: tcp, payload: "hi"}
  - {id: both, transport: udp, payload: "a", payload_hex: "61"}
services:
  - id: thing
    name: Thing
    protocol: thing
    status: obsolete
    probes: [ok-probe, missing-probe]
    matchers:
      - {name: bad-regex, type: regex, protocol: thing, pattern: "(unclosed"}
      - {name: typo, type: regex, protocol: thing, pattern: "x", sofft: true}
"""


def test_bad_profile_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "wrong-name.yaml"
    path.write_text(BAD_PROFILE)
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    message = str(caught.value)
    for expected in (
        "colour: unknown key",
        "probes[1]: give one of payload, payload_hex, builder",
        "services[0].matchers[0].pattern: pattern '(unclosed' is not a valid regex",
        "services[0].matchers[1].sofft: unknown key",
    ):
        assert f"{path}: {expected}" in message, message


def test_reference_problems_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "refs.yaml"
    path.write_text(
        BAD_PROFILE.replace("id: broken-profile", "id: refs")
        .replace("colour: blue\n", "")
        .replace('  - {id: both, transport: udp, payload: "a", payload_hex: "61"}\n', "")
        .replace('pattern: "(unclosed"', 'pattern: "ok"')
        .replace(", sofft: true", "")
    )
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    message = str(caught.value)
    assert "no-such-profile.yaml: no such profile" in message
    assert f"{path}: services[0].probes[1]: no probe named 'missing-probe'" in message


def test_cycle_and_file_name_mismatch(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"id: a\ntitle: A\ninclude: [{tmp_path}/b.yaml]\n")
    (tmp_path / "b.yaml").write_text(f"id: not-b\ntitle: B\ninclude: [{tmp_path}/a.yaml]\n")
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(tmp_path / "a.yaml")])
    message = str(caught.value)
    assert "a -> b -> a is a cycle" in message
    assert "'not-b' must equal the file name 'b'" in message


def test_a_bad_profile_stops_the_scan_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BAD_PROFILE.replace("broken-profile", "broken"))
    out = tmp_path / "never.json"
    code = scan_main(["--profile", str(path), "--json", str(out), "127.0.0.1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "problems in profiles" in err[0] and "colour" in err[0]
    assert not out.exists()


def test_profiles_listing_and_detail(capsys: pytest.CaptureFixture[str]) -> None:
    assert ghostport_main(["profiles"]) == 0
    listing = capsys.readouterr().out
    assert "legacy-mgmt" in listing and "registry-orphans" in listing
    assert ghostport_main(["profiles", "legacy-mgmt"]) == 0
    detail = capsys.readouterr().out
    assert "synoptics-relay  [obsolete, high]" in detail
    assert "ports: tcp/391, udp/391" in detail
    assert "probe snmp-v1-public: udp snmp-get" in detail
    assert "airmobile-commandport" in detail


def test_fail_on_sets_exit_code_1(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("echo's real port 7 needs root")
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.62.1", 7))

    def serve() -> None:
        with contextlib.suppress(OSError):
            data, peer = echo.recvfrom(4096)
            echo.sendto(data, peer)

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    try:
        high = scan_main(["-q", "--udp", "-p", "7", "--fail-on", "high", "127.0.62.1"])
        worker.join(timeout=5)
        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        medium = scan_main(["-q", "--udp", "-p", "7", "--fail-on", "medium", "127.0.62.1"])
    finally:
        echo.close()
        worker.join(timeout=5)
    assert (high, medium) == (0, 1)  # echo is a medium finding


def test_identical_probes_share_one_exchange_and_keep_every_id() -> None:
    from scanner.profiles import ProbeModel

    one = ProbeModel(id="ask-a", transport=Transport.UDP, payload="same bytes")
    two = ProbeModel(id="ask-b", transport=Transport.UDP, payload_hex=b"same bytes".hex())
    other = ProbeModel(id="ask-c", transport=Transport.TCP, payload="same bytes")
    probe_set = build_probe_set([one, two, other], [])
    assert len(probe_set.exchanges) == 2  # the same bytes on the same transport run once
    assert [info.ids for info in probe_set.infos] == [
        ("discovery",),
        ("ask-a", "ask-b"),
        ("ask-c",),
    ]


# ---------------------------------------------------------------- limits on hostile profiles


def billion_laughs(profile_id: str) -> str:
    """Nine levels of nine aliases inside a builder's args: 9**9 strings once expanded."""
    levels = ["      a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for below, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"      {name}: &{name} [{','.join([f'*{below}'] * 9)}]")
    return (
        f"id: {profile_id}\ntitle: t\nprobes:\n  - id: p\n    transport: udp\n"
        "    builder: snmp-get\n    args:\n" + "\n".join(levels) + "\n"
    )


def test_an_alias_bomb_is_one_problem_naming_the_file_and_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs("bomb"))
    assert path.stat().st_size <= 501  # the profile was 501 bytes
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    message = str(caught.value)
    assert message.startswith("1 problem in profiles: ")
    assert f"{path}:" in message and f"{MAX_YAML_SIZE:,}" in message and "aliases" in message


@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ("{a: ", "}"), ("- ", "")])
def test_deep_nesting_is_one_problem_not_a_recursion_error(
    tmp_path: Path, opener: str, closer: str
) -> None:
    # Given 20,000 levels of flow sequences, flow mappings or compact block sequences
    path = tmp_path / "deep.yaml"
    nested = opener * 20_000 + "x" + closer * 20_000
    path.write_text(f"id: deep\ntitle:\n  {nested}\n")
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    assert f"{path}:3: nested deeper than {MAX_YAML_DEPTH} levels" in str(caught.value)


def test_an_alias_that_nests_too_deep_is_refused(tmp_path: Path) -> None:
    # Given 40 levels anchored, then used 40 levels down: 80 levels once expanded
    forty = "[" * 40 + "x" + "]" * 40
    path = tmp_path / "alias-deep.yaml"
    path.write_text(
        f"id: alias-deep\ntitle: t\ndescription: {forty.replace('[', '&a [', 1)}\n"
        f"services: {'[' * 40}*a{']' * 40}\n"
    )
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    assert f"{path}:4: alias *a nests the document deeper than 64 levels" in str(caught.value)


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("id: loop\ntitle: t\nservices: &s [*s]\n")
    with pytest.raises(ProfileError, match="alias \\*s refers to a collection that holds it"):
        load_profiles([str(path)])


def test_a_profile_over_the_size_limit_is_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("id: big\ntitle: t\ndescription: " + "x" * MAX_PROFILE_BYTES + "\n")
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    assert str(caught.value) == (
        f"1 problem in profiles: {path}: larger than {MAX_PROFILE_BYTES:,} bytes, "
        "the limit for a profile"
    )


def test_anchors_within_the_limits_still_load(tmp_path: Path) -> None:
    # Anchors are YAML's way to share a matcher list; modest use is welcome
    path = tmp_path / "shared.yaml"
    path.write_text(
        "id: shared\ntitle: t\nprobes:\n  - {id: hello, transport: tcp, payload: hi}\n"
        "services:\n"
        "  - {id: one, name: One, protocol: one, status: obsolete, ports: {tcp: [1]},\n"
        "     probes: &probes [hello], matchers: &m [{name: m, type: regex, protocol: x,"
        " pattern: ok}]}\n"
        "  - {id: two, name: Two, protocol: two, status: obsolete, ports: {tcp: [2]},\n"
        "     probes: *probes, matchers: *m}\n"
    )
    (profile,) = load_profiles([str(path)])
    assert [s.matchers[0].pattern for s in profile.services] == ["ok", "ok"]


def test_tags_that_do_not_convert_are_profile_errors(tmp_path: Path) -> None:
    path = tmp_path / "tags.yaml"
    path.write_text("id: tags\ntitle: t\ndescription: 2001-13-45\n")  # month 13: ValueError
    with pytest.raises(ProfileError, match=r"not valid YAML: month must be in 1\.\.12"):
        load_profiles([str(path)])


def test_problems_are_one_line_with_control_characters_escaped(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text('id: ctl\ntitle: t\n"bad\\nkey\\e[31m": 1\n')
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert "bad\\nkey\\x1b[31m: unknown key" in message


# ---------------------------------------------------------------- builder arguments at load


BAD_BUILDERS = """
id: builders
title: t
colour: red
probes:
  - {id: a, transport: udp, builder: snmp-got}
  - {id: b, transport: udp, builder: snmp-get, args: {version: 3, comunity: x}}
  - {id: c, transport: udp, builder: snmp-get, args: {oids: [1.3.6.1.2.1.1.1.0, "1.3.x"]}}
  - {id: d, transport: tcp, builder: x11-setup, args: {anything: 1}}
  - {id: e, transport: tcp, builder: finger, args: {query: "a\\r\\nb"}}
  - {id: f, transport: udp, builder: rmcp-ping, args: {tag: 256}}
"""


def test_bad_builders_are_listed_with_the_profiles_other_problems(tmp_path: Path) -> None:
    path = tmp_path / "builders.yaml"
    path.write_text(BAD_BUILDERS)
    with pytest.raises(ProfileError) as caught:
        load_profiles([str(path)])
    message = str(caught.value)
    for expected in (
        "colour: unknown key",
        "probes[0]: unknown builder 'snmp-got' (known: null, text, snmp-get,",
        "probes[1]: builder 'snmp-get': args.version: Input should be '1' or '2c'",
        "probes[1]: builder 'snmp-get': args.comunity: unknown key",
        "probes[2]: builder 'snmp-get': args.oids[1]: String should match pattern",
        "probes[3]: builder 'x11-setup': args.anything: unknown key",
        "probes[4]: builder 'finger': args.query: '\\r' is not allowed here",
        "probes[5]: builder 'rmcp-ping': args.tag: Input should be less than or equal to 255",
    ):
        assert f"{path}: {expected}" in message, (expected, message)
    assert message.startswith("8 problems in profiles")


def test_ghostport_profiles_fails_on_a_bad_builder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "builders.yaml"
    path.write_text(BAD_BUILDERS.replace("colour: red\n", ""))
    code = ghostport_main(["profiles", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "unknown builder 'snmp-got'" in err and "args.tag" in err


def test_every_builder_builds_from_its_defaults_and_refuses_unknown_args() -> None:
    for name, builder in BUILDERS.items():
        required = [f for f, info in builder.args.model_fields.items() if info.is_required()]
        args = {field: "x" for field in required}  # only text's value is required
        assert isinstance(build_payload(name, args, "probe"), bytes), name
        with pytest.raises(ProfileError, match=f"builder {name!r}: args.surplus: unknown key"):
            build_payload(name, {**args, "surplus": 1}, "probe")


def test_loading_profiles_does_not_import_scapy() -> None:
    # Given a fresh interpreter, loading every bundled profile checks the builders' args...
    code = (
        "import sys; from scanner.profiles import load_profiles, bundled_profile_ids;"
        "load_profiles(bundled_profile_ids()); print('scapy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # ...without paying for scapy, which only the payload builders import
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------- chargen by its structure


CHARGEN = next(s for s in SAMPLES if s.service == "chargen" and s.transport is Transport.TCP)
CHARGEN_MATCHER = next(
    m for s in SERVICES if s.id == "chargen" for m in s.matchers if m.type == "chargen"
)
RING = bytes(range(0x20, 0x7F))


def chargen_stream(start: int, width: int, lines: int, cut: int) -> bytes:
    """`lines` lines of RFC 864's rotation, then `cut` bytes of the next one."""
    body = b"".join(
        bytes(RING[(start + line + i) % len(RING)] for i in range(width)) + b"\r\n"
        for line in range(lines + 1)
    )
    return body[: lines * (width + 2) + cut]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 94),
    st.integers(32, 132),
    st.integers(2, 12),  # 64 characters of the ring at least: what the matcher asks
    st.integers(0, 30),
)
def test_any_chargen_stream_is_chargen(start: int, width: int, lines: int, cut: int) -> None:
    stream = chargen_stream(start, width, lines, min(cut, width + 1))
    found = match(CHARGEN_MATCHER, stream, b"")
    assert found is not None and found.protocol == "chargen"
    assert found.extracted["width"] == str(width)


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\x01\xfe junk ABCDEFGHIJKLMNOPQRSTUVWXYZ more junk\xff" * 3,
        b"HTTP/1.0 200 OK\r\n\r\nABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\r\n",
        RING[:40],  # too little of the ring to say
        b"garbage\r\n" + CHARGEN.response,  # a chargen stream after something else
        CHARGEN.response[:148] + CHARGEN.response[:74],  # the same line twice: no rotation
        CHARGEN.response[:74] + b"\x00" + CHARGEN.response[74:],
    ],
)
def test_junk_holding_the_alphabet_is_not_chargen(junk: bytes) -> None:
    assert match(CHARGEN_MATCHER, junk, b"") is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.integers(16, 95), st.integers(0, 3))
def test_the_ring_inside_binary_junk_is_not_chargen(
    before: bytes, after: bytes, size: int, copies: int
) -> None:
    # Given runs of the ring among bytes chargen never sends (neither printable nor a line end)
    junk = before + after
    assume(any(byte > 0x7E or (byte < 0x20 and byte not in b"\r\n") for byte in junk))
    response = before + (RING[:size] + b"\r\n") * copies + after
    # Then the alphabet inside does not make it chargen
    assert match(CHARGEN_MATCHER, response, b"") is None
