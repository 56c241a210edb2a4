"""YAML read safely: bounded in bytes, nesting and alias expansion before anything is built.

A profile is local input that may be hostile (a shared file, a downloaded "profile pack").
Its size is checked before reading, and its parser events are counted before the document
is composed, so neither a deep nesting (a recursive composer would overflow the stack) nor an
alias bomb (a few hundred bytes that expand to billions of nodes) costs more than the bytes
of the file. yaml is imported only here, and only when a file is really parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_PROFILE_BYTES = 1 << 20
"""A profile file larger than this (1 MiB; the bundled ones are under 16 KiB) is refused."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and sequences in a profile, aliases expanded (bundled: 6)."""
MAX_YAML_SIZE = 2 * MAX_PROFILE_BYTES
"""Nodes plus scalar characters of a profile with its aliases expanded. Without aliases a
document is about as large as its file, so only aliases that multiply it reach the limit."""
MAX_PROFILE_FILES = 64
"""Profile files one load may read, includes counted (bundled: 3)."""


def _loader() -> type[Any]:
    """libyaml's safe loader when PyYAML has it (ten times faster; its parser is a state
    machine, no recursion), else PyYAML's. yaml is imported only here: a warm profile cache
    never parses YAML (see load_profiles_cached)."""
    import yaml  # noqa: PLC0415

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class _Open:
    """A mapping or sequence the parser is inside of."""

    anchor: str | None
    size_before: int
    height: int = 1  # levels of collections, itself included


def _yaml_shape_problem(raw: bytes) -> str | None:
    """Depth and expanded size of a YAML document, from the parser's events alone.

    Nothing is built yet, so neither a deep nesting (a recursive composer would overflow the
    stack) nor an alias bomb (a few hundred bytes that expand to billions of nodes) costs
    more than the bytes of the file. Returns where and why the document is refused, or None.
    """
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height; scalar: 0)
    inside: list[_Open] = []
    size = 0

    def ended(anchor: str | None, node_size: int, height: int) -> None:
        if anchor is not None:
            anchors[anchor] = (node_size, height)
        if inside:
            inside[-1].height = max(inside[-1].height, height + 1)

    import yaml  # noqa: PLC0415 - as _parse_yaml

    for event in yaml.parse(raw, Loader=_loader()):
        mark = event.start_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        if isinstance(event, yaml.CollectionStartEvent):
            inside.append(_Open(event.anchor, size))
            size += 1
            if len(inside) > MAX_YAML_DEPTH:
                return f"{line}: nested deeper than {MAX_YAML_DEPTH} levels (the limit)"
        elif isinstance(event, yaml.CollectionEndEvent):
            done = inside.pop()
            ended(done.anchor, size - done.size_before, done.height)
        elif isinstance(event, yaml.ScalarEvent):
            size += 1 + len(event.value)
            ended(event.anchor, 1 + len(event.value), 0)
        elif isinstance(event, yaml.AliasEvent):
            if any(open_.anchor == event.anchor for open_ in inside):
                return f"{line}: alias *{event.anchor} refers to a collection that holds it"
            node_size, height = anchors.get(event.anchor or "", (1, 0))
            size += node_size
            ended(None, node_size, height)
            if len(inside) + height > MAX_YAML_DEPTH:
                return (
                    f"{line}: alias *{event.anchor} nests the document deeper than "
                    f"{MAX_YAML_DEPTH} levels (the limit)"
                )
        if size > MAX_YAML_SIZE:
            return (
                f"{line}: with its aliases expanded the document exceeds {MAX_YAML_SIZE:,} "
                "nodes and characters (the limit)"
            )
    return None


def read_limited(path: Path) -> bytes:
    """At most MAX_PROFILE_BYTES + 1 bytes: enough to know a file is too large, never more."""
    with path.open("rb") as handle:
        return handle.read(MAX_PROFILE_BYTES + 1)


def parse_yaml(path: Path, raw: bytes, problems: list[str]) -> object:
    import yaml  # noqa: PLC0415 - only on a cache miss (load_profiles_cached)

    try:
        shape = _yaml_shape_problem(raw)
        if shape is not None:
            problems.append(f"{path}{shape}")
            return None
        return yaml.load(raw, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problems.append(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
    except ValueError as exc:  # a tagged value that does not convert: !!int x, 2001-13-01
        problems.append(f"{path}: not valid YAML: {exc}")
    return None
