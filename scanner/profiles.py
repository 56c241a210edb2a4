"""Profiles of obsolete services: YAML -> validated, immutable Profile objects.

Loading is strict, after nuclei's templates: an unknown key, a bad regex, a probe that does not
exist, a profile that includes itself... every problem in every file is collected and reported
in one error, each naming the file, the path in the document and the problem. A scan never
starts on a half-understood profile.

A profile is local input that may be hostile, so the limits come before the work: a file over
MAX_PROFILE_BYTES is not read further; the YAML parser's events are checked for nesting deeper
than MAX_YAML_DEPTH and for aliases expanding the document beyond MAX_YAML_SIZE (a 500-byte
"billion laughs") before anything is built; a builder's `args` are checked against that
builder's own model.

A profile holds probes (what to send) and services (what an obsolete service is, where it is
registered, how to recognise its answer, how bad it is, how to fix it). Probes are shared:
identical probes run once per port, and every service that wants the answer gets it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scanner.errors import ProfileError
from scanner.models import Severity, Transport
from scanner.registry import RegistryEntry
from scanner.safe_yaml import (
    MAX_PROFILE_BYTES,
    MAX_PROFILE_FILES,
    parse_yaml,
    read_limited,
)

_PROBLEM_CHARS = 300  # one problem's text at most: a megabyte-long bad value is not repeated

_STRICT = ConfigDict(extra="forbid", frozen=True, defer_build=True)
_ID = r"^[a-z0-9][a-z0-9-]*$"


class ServiceStatus(StrEnum):
    """Why a service is in a profile."""

    OBSOLETE = "obsolete"  # its owner and protocol are gone: anything answering is a finding
    LEGACY_RISK = "legacy-risk"  # still found, but a risk by design (telnet, TFTP, SNMPv1)
    CURRENT = "current"  # a recogniser of a current protocol (HTTP, SSH, TLS) to name squatters


class _BuilderArgsError(ValueError):
    """Every problem of one probe's builder and args: the loader lists each on its own."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ProbeModel(BaseModel):
    """What to send to a port: text, hex, or a named builder with arguments."""

    model_config = _STRICT

    id: str = Field(pattern=_ID)
    transport: Transport
    description: str = ""
    payload: str | None = None
    payload_hex: str | None = None
    builder: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    wait: float = Field(default=2.0, gt=0, le=60)
    retries: int | None = Field(default=None, ge=0, le=10)
    read: bool = True
    any_source_port: bool = False
    privileged_source: bool = Field(
        default=False,
        description="connect from a privileged source port (512-1023), as rlogin and rsh "
        "clients do: their daemons hang up on any other; needs root",
    )
    rarity: int = Field(
        default=5,
        ge=1,
        le=9,
        description="nmap-style: 1 = send first (common protocol, one exchange names it), 9 = last",
    )

    @model_validator(mode="after")
    def _one_payload_source(self) -> ProbeModel:
        given = [n for n in ("payload", "payload_hex", "builder") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of payload, payload_hex, builder (got {', '.join(given)})")
        if self.payload_hex is not None:
            try:
                bytes.fromhex(self.payload_hex)
            except ValueError:
                raise ValueError(f"payload_hex {self.payload_hex!r} is not hex") from None
        if self.args and self.builder is None:
            raise ValueError("args are only for a builder")
        if self.builder is not None:
            from scanner.probes import builder_problems  # noqa: PLC0415 - on a cache miss only

            problems = builder_problems(self.builder, self.args)
            if problems:
                raise _BuilderArgsError(problems)
        return self


MatcherType = Literal[
    "regex",
    "bytes",
    "echo",
    "silent",
    "snmp",
    "tftp",
    "telnet",
    "http",
    "ssh",
    "tls",
    "time",
    "rmcp",
    "agentx",
    "x11",
    "smart-install",
    "rcmd",
    "chargen",
]


class MatcherModel(BaseModel):
    """How to recognise an answer: a pattern or a protocol decoder, hard or soft."""

    model_config = _STRICT

    name: str = Field(pattern=_ID)
    type: MatcherType
    protocol: str = Field(description="IANA service name of what this recognises")
    probes: list[str] = Field(default_factory=list, description="only answers to these probes")
    pattern: str | None = None
    hex: str | None = None
    soft: bool = False
    confidence: float | None = Field(default=None, gt=0, le=1)
    severity: Severity | None = Field(default=None, description="raise the finding to this")
    extract: dict[str, str] = Field(default_factory=dict, description="name: regex with a group")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value.encode("latin-1"))
            except (re.error, UnicodeEncodeError, RecursionError, OverflowError) as exc:
                raise ValueError(f"pattern {value!r} is not a valid regex: {exc}") from None
        return value

    @field_validator("extract")
    @classmethod
    def _extractors_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                compiled = re.compile(pattern.encode("latin-1"))
            except (re.error, UnicodeEncodeError, RecursionError, OverflowError) as exc:
                raise ValueError(
                    f"extract.{name}: {pattern!r} is not a valid regex: {exc}"
                ) from None
            if compiled.groups != 1:
                raise ValueError(f"extract.{name}: {pattern!r} needs exactly one group")
        return value

    @model_validator(mode="after")
    def _needs_what_its_type_needs(self) -> MatcherModel:
        if self.type == "regex" and self.pattern is None:
            raise ValueError("a regex matcher needs a pattern")
        if self.type == "bytes":
            if self.hex is None:
                raise ValueError("a bytes matcher needs hex")
            try:
                bytes.fromhex(self.hex)
            except ValueError:
                raise ValueError(f"hex {self.hex!r} is not hex") from None
        return self


class PortsModel(BaseModel):
    """Registered ports of a service, per transport."""

    model_config = _STRICT

    tcp: list[int] = Field(default_factory=list)
    udp: list[int] = Field(default_factory=list)

    @field_validator("tcp", "udp")
    @classmethod
    def _in_range(cls, value: list[int]) -> list[int]:
        for port in value:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1-65535")
        return value


class ServiceModel(BaseModel):
    """An obsolete or risky service: facts, probes, matchers, severity, remediation."""

    model_config = _STRICT

    id: str = Field(pattern=_ID)
    name: str
    protocol: str = Field(description="IANA service name of the protocol it speaks")
    registry: list[str] = Field(default_factory=list)
    ports: PortsModel = Field(default_factory=PortsModel)
    status: ServiceStatus
    history: str = ""
    severity: Severity = Severity.INFO
    severity_rationale: str = ""
    remediation: str = ""
    references: list[str] = Field(default_factory=list)
    probes: list[str] = Field(default_factory=list)
    matchers: list[MatcherModel] = Field(default_factory=list)
    over: str | None = Field(
        default=None,
        description="the protocol this one is carried over (an HTTP proxy: http): once that "
        "one is named, this service's probes still go out, and its match wins",
    )


class ProfileModel(BaseModel):
    """One YAML profile file."""

    model_config = _STRICT

    id: str = Field(pattern=_ID)
    title: str
    description: str = ""
    include: list[str] = Field(default_factory=list)
    probes: list[ProbeModel] = Field(default_factory=list)
    services: list[ServiceModel] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Profile:
    """A loaded profile with its includes resolved (services and probes of all of them)."""

    id: str
    title: str
    description: str
    path: str
    sha256: str
    includes: tuple[str, ...]
    probes: tuple[ProbeModel, ...]
    services: tuple[ServiceModel, ...]
    sources: tuple[tuple[str, str], ...] = ()  # (path, sha256) of itself and every include


def bundled_profiles_dir() -> Path:
    """profiles/ as installed inside the package, or at the top of a source checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "profiles"
    if installed.is_dir():
        return installed
    return package.parent / "profiles"


def bundled_profile_ids() -> list[str]:
    """Ids of the profiles that ship with ghostport."""
    return sorted(p.stem for p in bundled_profiles_dir().glob("*.yaml"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL in it, names no profile
        return False


def _one_line(problem: str) -> str:
    """A problem as one line of bounded length: control characters shown escaped."""
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in problem)
    return text if len(text) <= _PROBLEM_CHARS else text[: _PROBLEM_CHARS - 3] + "..."


def _location(error: dict[str, Any]) -> str:
    parts: list[str] = []
    for item in error["loc"]:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "(document)"


def _read_profile(path: Path, problems: list[str]) -> tuple[ProfileModel, str] | None:
    try:
        raw = read_limited(path)
    except OSError as exc:
        problems.append(f"{path}: cannot be read: {exc.strerror}")
        return None
    if len(raw) > MAX_PROFILE_BYTES:
        problems.append(f"{path}: larger than {MAX_PROFILE_BYTES:,} bytes, the limit for a profile")
        return None
    known = len(problems)
    document = parse_yaml(path, raw, problems)
    if len(problems) > known:
        return None
    if not isinstance(document, dict):
        problems.append(f"{path}: (document): a profile is a mapping of keys")
        return None
    try:
        model = ProfileModel.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            cause = error.get("ctx", {}).get("error")
            for each in cause.problems if isinstance(cause, _BuilderArgsError) else [message]:
                problems.append(f"{path}: {_location(dict(error))}: {each}")
        return None
    if model.id != path.stem:
        problems.append(f"{path}: id: {model.id!r} must equal the file name {path.stem!r}")
    return model, hashlib.sha256(raw).hexdigest()


def _check_references(
    path: Path, model: ProfileModel, probe_ids: set[str], problems: list[str]
) -> None:
    seen_services: set[str] = set()
    for index, service in enumerate(model.services):
        where = f"{path}: services[{index}]"
        if service.id in seen_services:
            problems.append(f"{where}.id: service {service.id!r} is defined twice")
        seen_services.add(service.id)
        for probe_index, probe in enumerate(service.probes):
            if probe not in probe_ids:
                problems.append(f"{where}.probes[{probe_index}]: no probe named {probe!r}")
        for matcher_index, matcher in enumerate(service.matchers):
            for probe in matcher.probes:
                if probe not in probe_ids:
                    problems.append(
                        f"{where}.matchers[{matcher_index}].probes: no probe named {probe!r}"
                    )


def load_profiles(names: Sequence[str]) -> list[Profile]:
    """Load profiles by bundled id or by path to a YAML file, includes resolved.

    Raises ProfileError listing every problem found, one per line.
    """
    problems: list[str] = []
    bundled = bundled_profiles_dir()
    loaded: dict[str, tuple[ProfileModel, Path, str]] = {}

    def path_of(name: str) -> Path:
        if name.endswith((".yaml", ".yml")) or "/" in name:
            return Path(name)
        return bundled / f"{name}.yaml"

    def visit(name: str, chain: tuple[str, ...]) -> None:
        path = path_of(name)
        key = path.stem
        if key in chain:
            problems.append(f"{path}: include: {' -> '.join((*chain, key))} is a cycle")
            return
        if key in loaded:
            return
        if len(loaded) >= MAX_PROFILE_FILES:
            problems.append(
                f"{path}: more than {MAX_PROFILE_FILES} profile files with their includes "
                "(the limit)"
            )
            return
        if not _is_file(path):
            known = ", ".join(bundled_profile_ids()) or "none"
            problems.append(f"{path}: no such profile (bundled profiles: {known})")
            return
        read = _read_profile(path, problems)
        if read is None:
            return
        model, digest = read
        loaded[key] = (model, path, digest)
        for include in model.include:
            visit(include, (*chain, key))

    top = [path_of(name).stem for name in names]
    for name in names:
        visit(name, ())

    def closure(key: str, seen: set[str]) -> list[str]:
        if key in seen or key not in loaded:
            return []
        seen.add(key)
        order = [key]
        for include in loaded[key][0].include:
            order += closure(path_of(include).stem, seen)
        return order

    profiles: list[Profile] = []
    for key in top:
        if key not in loaded:
            continue
        members = closure(key, set())
        probes: dict[str, ProbeModel] = {}
        services: dict[str, ServiceModel] = {}
        for member in members:
            model, path, _ = loaded[member]
            for probe in model.probes:
                if probe.id in probes and probes[probe.id] != probe:
                    problems.append(
                        f"{path}: probes: probe {probe.id!r} is defined differently elsewhere"
                    )
                probes[probe.id] = probe
            for service in model.services:
                services.setdefault(service.id, service)
        for member in members:
            model, path, _ = loaded[member]
            _check_references(path, model, set(probes), problems)
        model, path, digest = loaded[key]
        profiles.append(
            Profile(
                model.id,
                model.title,
                model.description,
                str(path),
                digest,
                tuple(members[1:]),
                tuple(probes.values()),
                tuple(services.values()),
                tuple((str(loaded[m][1]), loaded[m][2]) for m in members),
            )
        )
    if problems:
        unique = list(dict.fromkeys(_one_line(problem) for problem in problems))
        raise ProfileError(
            f"{len(unique)} problem{'s' if len(unique) > 1 else ''} in profiles: "
            + "; ".join(unique)
        )
    return profiles


def profile_ports(profiles: Iterable[Profile]) -> str:
    """The ports the profiles' services own, as a port spec (the default of `scan`)."""
    _, services = merged(profiles)
    tcp = sorted(
        {p for s in services if s.status is not ServiceStatus.CURRENT for p in s.ports.tcp}
    )
    udp = sorted(
        {p for s in services if s.status is not ServiceStatus.CURRENT for p in s.ports.udp}
    )
    parts = ([f"T:{','.join(map(str, tcp))}"] if tcp else []) + (
        [f"U:{','.join(map(str, udp))}"] if udp else []
    )
    if not parts:
        raise ProfileError("the selected profiles own no port: give ports with -p")
    return ",".join(parts)


def profile_registry_facts() -> list[RegistryEntry]:
    """Registry entries from the bundled profiles' services (a source of the registry)."""
    facts: list[RegistryEntry] = []
    ids = bundled_profile_ids()
    if not ids:
        return facts
    from scanner.profile_cache import load_profiles_cached  # noqa: PLC0415 - it imports us

    _, services = merged(load_profiles_cached(ids))
    for service in services:
        for name in service.registry:
            for transport, ports in (("tcp", service.ports.tcp), ("udp", service.ports.udp)):
                facts.extend(
                    RegistryEntry(name, port, port, transport, service.name) for port in ports
                )
    return facts


def merged(profiles: Iterable[Profile]) -> tuple[tuple[ProbeModel, ...], tuple[ServiceModel, ...]]:
    """All probes and services of several loaded profiles, each id once."""
    probes: dict[str, ProbeModel] = {}
    services: dict[str, ServiceModel] = {}
    for profile in profiles:
        for probe in profile.probes:
            probes.setdefault(probe.id, probe)
        for service in profile.services:
            services.setdefault(service.id, service)
    return tuple(probes.values()), tuple(services.values())
