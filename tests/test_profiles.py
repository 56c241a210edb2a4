"""Profiles: strict loading, every service recognised from a real answer, and only by itself."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.classify import Knowledge, classify_port
from scanner.cli import ghostport_main, scan_main
from scanner.errors import ProfileError
from scanner.match import match
from scanner.models import PortObservation, PortState, Reason, Transport, Verdict
from scanner.probeset import build_probe_set
from scanner.profiles import bundled_profile_ids, load_profiles, merged
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
        f"T:{s.port}" for _, s in replayed if (s.transport, s.port) not in KNOWLEDGE.owners
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
    assert findings == owned


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
