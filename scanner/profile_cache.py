"""Validated profiles kept in the user cache, keyed by the content of every file they came
from, so a warm start parses no YAML and builds no validator.

Validating the cached JSON with the pydantic models cost most of a warm start's profile load:
the models' validators are built on first use, a few dozen milliseconds per process, for data
that was validated when it was cached. So a cache entry is written only when rebuilding it
without validation (`_rebuilt`: each field converted by its annotation, enums and nested
models included) gives exactly the validated profiles (compared by repr, which shows every
type), and it carries the sha256 of its JSON: read back, an entry whose digest matches is
that same data, and is rebuilt the same way. Anything else (a damaged or foreign entry, a
shape `_rebuilt` does not know) is a miss: the YAML is loaded and validated again.
"""

from __future__ import annotations

import enum
import hashlib
import json
import types
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, ConfigDict

from scanner import profiles as profiles_module
from scanner.profiles import (
    ProbeModel,
    Profile,
    ServiceModel,
    bundled_profiles_dir,
    load_profiles,
)

M = TypeVar("M", bound=BaseModel)


class _CachedProfile(BaseModel):
    """A Profile as kept in the start-up cache."""

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


class _UnknownError(ValueError):
    """A value or an annotation `_rebuilt` does not handle: the entry is a miss."""


def load_profiles_cached(names: Sequence[str]) -> list[Profile]:
    """load_profiles, through the user cache (scanner/cache.py) when every file the profiles
    were loaded from still has the sha256 it had; a miss, or an entry that does not check,
    loads the YAML again. Errors are load_profiles' own (a failed load is never cached)."""
    from scanner import cache  # noqa: PLC0415 - cache imports registry, which imports us

    try:
        slot = cache.content_key("profiles", str(bundled_profiles_dir()), *names)
        key = cache.content_key(
            "profiles",
            cache.file_digest(profiles_module.__file__),
            cache.file_digest(__file__),
            pydantic.VERSION,
        )
    except OSError:
        return load_profiles(names)
    try:
        kept = _read(cache.fetch("profiles", slot, key))
        if all(cache.file_digest(p) == h for profile in kept for p, h in profile.sources):
            return kept
    except (_UnknownError, TypeError, ValueError, KeyError, OSError):
        pass  # TypeError: no entry (None) or not the shape written
    profiles = load_profiles(names)
    dumped = [
        _CachedProfile(**{f.name: getattr(p, f.name) for f in fields(p)}).model_dump(mode="json")
        for p in profiles
    ]
    entry = {"sha256": _digest(dumped), "profiles": dumped}
    try:
        same = repr(_read(json.loads(json.dumps(entry)))) == repr(profiles)
    except (_UnknownError, TypeError, ValueError, KeyError):
        same = False
    if same:  # only what the JSON round trip and `_rebuilt` give back exactly
        cache.store("profiles", slot, key, entry)
    return profiles


def _read(entry: Any) -> list[Profile]:
    """The profiles of a cache entry whose digest matches its data."""
    dumped = entry["profiles"]
    if entry["sha256"] != _digest(dumped):
        raise _UnknownError("the entry's data is not what was written")
    return [Profile(**dict(_rebuilt(_CachedProfile, item))) for item in dumped]


def _digest(dumped: Any) -> str:
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _rebuilt(model: type[M], data: Any) -> M:
    """`model` from JSON that validated once: every field converted as its annotation says,
    without building the model's validator."""
    rebuild: Callable[[Any], M] = _converter(model)
    return rebuild(data)


_CONVERTERS: dict[Any, Callable[[Any], Any]] = {}


def _converter(annotation: Any) -> Callable[[Any], Any]:
    """What turns a JSON value into the value validating it against `annotation` gives, for
    the kinds of types the profile models use (_UnknownError for anything else); made once
    per annotation."""
    known = _CONVERTERS.get(annotation)
    if known is None:
        known = _CONVERTERS[annotation] = _make_converter(annotation)
    return known


def _make_converter(annotation: Any) -> Callable[[Any], Any]:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        optional = _converter(inner)
        return lambda value: None if value is None and type(None) in args else optional(value)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        each = _converter(args[0])
        return lambda value: tuple(each(v) for v in _of(list, value))
    if origin is tuple:
        items = [_converter(a) for a in args]
        return lambda value: tuple(c(v) for c, v in zip(items, _of(list, value), strict=True))
    if origin is list:
        each = _converter(args[0])
        return lambda value: [each(v) for v in _of(list, value)]
    if origin is dict and args[0] is str:
        each = _converter(args[1])
        return lambda value: {_of(str, k): each(v) for k, v in _of(dict, value).items()}
    if origin is Literal:
        return lambda value: value if value in args else _unknown(annotation, value)
    if annotation is Any:
        return lambda value: value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_converter(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    if annotation is float:
        return lambda value: float(value) if type(value) in (int, float) else _unknown(float, value)
    if annotation in (str, int, bool):
        return lambda value: _of(annotation, value)
    return lambda value: _unknown(annotation, value)


def _model_converter(model: type[M]) -> Callable[[Any], M]:
    names = model.model_fields.keys()
    converters: dict[str, Callable[[Any], Any]] = {}

    def rebuild(data: Any) -> M:
        if not converters:  # on first use: a model's fields may refer back to it
            converters.update({n: _converter(f.annotation) for n, f in model.model_fields.items()})
        if _of(dict, data).keys() != names:
            _unknown(model, data)
        return model.model_construct(**{n: converters[n](data[n]) for n in names})

    return rebuild


def _of(kind: type, value: Any) -> Any:
    """`value`, if it is exactly of `kind` (JSON has no subclasses; bool is not an int)."""
    return value if type(value) is kind else _unknown(kind, value)


def _unknown(annotation: Any, value: Any) -> Any:
    raise _UnknownError(f"{annotation!r}: {str(value)[:80]!r}")
