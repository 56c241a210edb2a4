"""Validated profiles kept in the user cache, keyed by the content of every file they came
from, so a warm start parses no YAML at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

from pydantic import BaseModel, ConfigDict, ValidationError

from scanner import profiles as profiles_module
from scanner.profiles import (
    ProbeModel,
    Profile,
    ServiceModel,
    bundled_profiles_dir,
    load_profiles,
)


class _CachedProfile(BaseModel):
    """A Profile as kept in the start-up cache; reading one back validates it whole again."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str
    title: str
    description: str
    path: str
    sha256: str
    includes: tuple[str, ...]
    probes: tuple[ProbeModel, ...]
    services: tuple[ServiceModel, ...]
    sources: tuple[tuple[str, str], ...]


def load_profiles_cached(names: Sequence[str]) -> list[Profile]:
    """load_profiles, through the user cache (scanner/cache.py) when every file the profiles
    were loaded from still has the sha256 it had; a miss, or a cache that does not validate,
    loads the YAML again. Errors are load_profiles' own (a failed load is never cached)."""
    from scanner import cache  # noqa: PLC0415 - cache imports registry, which imports us

    try:
        slot = cache.content_key("profiles", str(bundled_profiles_dir()), *names)
        key = cache.content_key(
            "profiles", cache.file_digest(profiles_module.__file__), cache.file_digest(__file__)
        )
    except OSError:
        return load_profiles(names)
    data = cache.fetch("profiles", slot, key)
    try:
        kept = [_CachedProfile.model_validate(item) for item in data]
        if all(cache.file_digest(p) == h for item in kept for p, h in item.sources):
            return [Profile(**dict(item)) for item in kept]
    except (TypeError, ValidationError, OSError):  # TypeError: data is None or not a list
        pass
    profiles = load_profiles(names)
    dumped = [
        _CachedProfile(**{f.name: getattr(p, f.name) for f in fields(p)}).model_dump(mode="json")
        for p in profiles
    ]
    if [Profile(**dict(_CachedProfile.model_validate(d))) for d in dumped] == profiles:
        cache.store("profiles", slot, key, dumped)  # only what survives the JSON round trip
    return profiles
