"""Payload builders: named recipes that turn a probe's arguments into bytes, once per scan.

scapy builds what it knows (SNMP v1/v2c, TFTP); the rest are small, documented encodings of
their RFCs and specifications. Builders run while the scan is planned, never per probe. Each
declares the model of its arguments, which profiles check when they load (`builder_problems`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from scanner.errors import ProfileError
from scanner.probes.builders import BUILDERS, Builder

__all__ = ["BUILDERS", "Builder", "build_payload", "builder_problems"]


def _args_problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = "args"
        for part in item["loc"]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{where}: {message.removeprefix('Value error, ')}")
    return problems


def builder_problems(builder: str, args: Mapping[str, Any]) -> list[str]:
    """What is wrong with a builder name and its arguments, one message each ([] when fine)."""
    recipe = BUILDERS.get(builder)
    if recipe is None:
        return [f"unknown builder {builder!r} (known: {', '.join(BUILDERS)})"]
    try:
        recipe.args.model_validate(dict(args))
    except ValidationError as exc:
        return [f"builder {builder!r}: {problem}" for problem in _args_problems(exc)]
    return []


def build_payload(builder: str, args: Mapping[str, Any], where: str) -> bytes:
    """Run a named builder; a wrong name or argument is a ProfileError naming the probe.

    Profiles already checked both when they loaded: this check is for other callers.
    """
    problems = builder_problems(builder, args)
    if problems:
        raise ProfileError(f"{where}: {'; '.join(problems)}")
    return BUILDERS[builder].payload(dict(args))
