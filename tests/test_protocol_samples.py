"""The protocol ladder's knowledge: every current-protocol recogniser claims its own samples
(recorded from real daemons, or constructed and labelled), and no matcher of any bundled
profile claims another protocol's sample: the cross-claim matrix, replayed as pure matching."""

from __future__ import annotations

import struct

import pytest

from scanner.match import match
from scanner.models import Transport
from scanner.probeset import build_probe_set
from scanner.profiles import ServiceStatus, bundled_profile_ids, load_profiles, merged
from tests.samples import ECHO, SAMPLES, SILENT, Sample, recorded
from tests.samples.protocols import NEGATIVES

PROBES, SERVICES = merged(load_profiles(bundled_profile_ids()))
PROBE_SET = build_probe_set(PROBES, SERVICES)
TRANSPORT = {p.id: p.transport for p in PROBES}
# probes with the same bytes on the same transport are one exchange: an answer belongs to all
EXCHANGE_IDS = {name: set(info.ids) for info in PROBE_SET.infos for name in info.ids}
PAYLOAD = {name: info.payload for info in PROBE_SET.infos for name in info.ids}
CURRENT = [s for s in SERVICES if s.status is ServiceStatus.CURRENT]
PROTOCOL_SAMPLES = [s for s in SAMPLES if s.service in {c.id for c in CURRENT}]


def _response(sample: Sample) -> bytes:
    if sample.response == ECHO:
        return PAYLOAD[sample.probe]
    return b"" if sample.response == SILENT else sample.response


def _claims(response: bytes, probe: str) -> set[tuple[str, str, str, bool]]:
    """(service, matcher, protocol, soft) of every matcher that recognises this answer."""
    ids = EXCHANGE_IDS[probe]
    return {
        (service.id, matcher.name, matcher.protocol, matcher.soft)
        for service in SERVICES
        for matcher in service.matchers
        if matcher.type != "silent"
        and (not matcher.probes or ids.intersection(matcher.probes))
        and match(matcher, response, PAYLOAD[probe]) is not None
    }


def _sample_id(sample: Sample) -> str:
    return f"{sample.service}-{sample.transport}-{sample.port}-{sample.probe}"


def test_the_ladder_knows_at_least_30_tcp_and_15_udp_protocols() -> None:
    protocols = {
        transport: {
            m.protocol
            for s in SERVICES
            for m in s.matchers
            if m.type != "silent"
            and any(TRANSPORT.get(p) is transport for p in m.probes or s.probes)
        }
        for transport in (Transport.TCP, Transport.UDP)
    }
    assert len(protocols[Transport.TCP]) >= 30, sorted(protocols[Transport.TCP])
    assert len(protocols[Transport.UDP]) >= 15, sorted(protocols[Transport.UDP])


def test_every_current_recogniser_has_a_sample_for_each_of_its_probes() -> None:
    sampled = {(s.service, s.probe) for s in PROTOCOL_SAMPLES}
    missing = [
        (service.id, probe)
        for service in CURRENT
        for matcher in service.matchers
        for probe in matcher.probes
        if (service.id, probe) not in sampled
        and not any((service.id, other) in sampled for other in EXCHANGE_IDS[probe])
    ]
    assert missing == []
    for sample in PROTOCOL_SAMPLES:
        assert sample.source.startswith(("recorded from", "constructed per")), sample
        assert TRANSPORT[sample.probe] is sample.transport, sample


@pytest.mark.parametrize("sample", PROTOCOL_SAMPLES, ids=_sample_id)
def test_a_sample_is_claimed_hard_by_its_own_service(sample: Sample) -> None:
    claims = _claims(_response(sample), sample.probe)
    own = {c for c in claims if c[0] == sample.service and c[2] == sample.protocol}
    assert any(not soft for *_, soft in own), claims


@pytest.mark.parametrize("sample", SAMPLES, ids=_sample_id)
def test_no_matcher_of_another_protocol_claims_a_sample(sample: Sample) -> None:
    claims = _claims(_response(sample), sample.probe)
    assert {c for c in claims if c[2] != sample.protocol} == set()


@pytest.mark.parametrize(("key", "probe", "protocol"), NEGATIVES)
def test_recorded_negatives_name_nothing(key: str, probe: str, protocol: str) -> None:
    # Given a real daemon of another kind answering the probe (an echo service, a web server)
    response, _ = recorded(key)
    # Then nothing claims it as the probe's protocol
    claims = _claims(response, probe)
    assert {c for c in claims if c[2] == protocol} == set()


def test_an_echo_service_is_never_a_shell() -> None:
    request = PAYLOAD["shell-echo"]
    for echoed in (request, request.replace(b"\n", b"\r\n"), b"> " + request):
        assert "shell" not in {c[2] for c in _claims(echoed, "shell-echo")}, echoed
    # while a shell's output, bare or behind a terminal's escape sequences, is a shell
    for output in (b"GHOSTPORT_Zq7Xk2Rv\n", b"$ \x1b[?2004l\rGHOSTPORT_Zq7Xk2Rv\r\n$ "):
        assert ("bind-shell", "shell-ran-echo", "shell", False) in _claims(output, "shell-echo")


def test_the_shell_finding_is_critical() -> None:
    shell = next(s for s in SERVICES if s.id == "bind-shell")
    assert shell.protocol == "shell"
    assert {m.severity for m in shell.matchers} == {"critical"}


def test_length_prefixed_payloads_are_consistent() -> None:
    p = PAYLOAD
    assert (
        struct.unpack(">H", p["dns-version-bind-tcp"][:2])[0] == len(p["dns-version-bind-tcp"]) - 2
    )
    assert p["dns-version-bind-tcp"][2:] == p["dns-version-bind-udp"]
    assert struct.unpack(">I", p["postgres-startup"][:4])[0] == len(p["postgres-startup"])
    assert struct.unpack("<i", p["mongodb-hello"][:4])[0] == len(p["mongodb-hello"])
    assert int.from_bytes(p["smb2-negotiate"][1:4], "big") == len(p["smb2-negotiate"]) - 4
    assert struct.unpack(">H", p["rdp-x224-cr"][2:4])[0] == len(p["rdp-x224-cr"])
    assert struct.unpack(">I", p["ike-main-mode"][24:28])[0] == len(p["ike-main-mode"])
    assert p["mqtt-connect"][1] == len(p["mqtt-connect"]) - 2
    assert p["ldap-bind"][1] == len(p["ldap-bind"]) - 2
    assert int(p["git-upload-pack"][:4], 16) == len(p["git-upload-pack"])
    assert struct.unpack(">I", p["rpc-null-tcp"][:4])[0] == 0x80000000 | 40
    assert p["rpc-null-tcp"][4:] == p["rpc-null-udp"]
    record, hello = struct.unpack(">H", p["tls-client-hello"][3:5])[0], p["tls-client-hello"][5:]
    assert record == len(hello) and int.from_bytes(hello[1:4], "big") == len(hello) - 4
    assert len(p["ntp-client"]) == 48 and p["ntp-client"][0] & 7 == 3
    assert p["memcached-version-udp"][8:] == p["memcached-version"]


def test_every_recogniser_probe_has_a_rarity() -> None:
    current_probes = {p for s in CURRENT for m in s.matchers for p in m.probes}
    for probe in PROBES:
        if probe.id in current_probes:
            assert 1 <= probe.rarity <= 9
