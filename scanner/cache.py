"""Start-up caches: data derived from files, kept in the user cache dir, keyed by content.

A `scan` spends most of its start-up deriving the same data again: the profiles' YAML parsed
and validated, the probes' payloads built (scapy, for SNMP and TFTP), the IANA CSV parsed.
Each of those is kept here as one small JSON file per slot (what was asked for: these profile
names, this registry file), holding the key it was derived under: a sha256 over the inputs'
content, the code that derives them and ghostport's version. A different key is a miss and
the data is derived again and stored over the old file. The owners (profiles.py, probeset.py,
registry.py) compute keys and rebuild their values; this module only stores and fetches.

Trust. The cache dir ($GHOSTPORT_CACHE_DIR, else $XDG_CACHE_HOME/ghostport) may be shared or
writable by someone else, so nothing read back is trusted blindly:
- JSON only, never pickle or marshal: reading a hostile JSON file runs no code and cannot
  crash the interpreter, and every value read is checked again by its owner (profiles must
  match the digest of what was validated and are rebuilt type by type, payloads must be hex,
  registry rows must have the row's shape). A corrupt, truncated or foreign file is a miss,
  never an error.
- A file is used only when it is a regular file owned by this user and writable by no one
  else (the rule ssh applies to its keys): a file someone else wrote, or could have changed,
  is a miss.
- Files are written with mode 0600 into a 0700 directory, under a temporary name then renamed,
  so a reader sees a whole file or none.

A cache never makes a command fail: any error reading or writing one is a miss or a skipped
write (a read-only home, a full disk and /proc/... all just cost the time of deriving again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scanner import __version__

FORMAT = 1  # bump when the layout of any cached value changes


def content_key(*parts: str | bytes) -> str:
    """A sha256 over ghostport's version, the cache format and the parts (length-prefixed,
    so no two different part lists give the same key)."""
    digest = hashlib.sha256(f"ghostport {__version__} cache {FORMAT}".encode())
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's content (OSError if it cannot be read)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _folder() -> Path:
    from scanner.registry import cache_dir  # noqa: PLC0415 - registry imports this module

    return cache_dir()


def slot_path(kind: str, slot: str) -> Path:
    """The file of one slot: `<cache dir>/<kind>-<slot>.json` (slot: a content_key)."""
    return _folder() / f"{kind}-{slot[:32]}.json"


def _mine_and_private(info: os.stat_result) -> bool:
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def fetch(kind: str, slot: str, key: str) -> Any:
    """The data stored in the slot under `key`, or None: missing, unreadable, not ours, not
    JSON, another format or another key. The caller still checks the data's shape."""
    try:
        fd = os.open(slot_path(kind, slot), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not _mine_and_private(os.fstat(handle.fileno())):
                return None
            envelope = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):  # ValueError: bad JSON or UTF-8
        return None
    if (
        not isinstance(envelope, dict)
        or envelope.get("format") != FORMAT
        or envelope.get("key") != key
    ):
        return None
    return envelope.get("data")


def store(kind: str, slot: str, key: str, data: Any) -> None:
    """Keep JSON-able `data` in the slot under `key`, replacing what was there; best effort."""
    try:
        target = slot_path(kind, slot)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "key": key, "data": data}, separators=(",", ":"))
        handle, temporary = tempfile.mkstemp(prefix=f".{kind}-", dir=target.parent)
    except (OSError, TypeError, ValueError):  # unwritable dir; data that is not JSON-able
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def checked_columns(data: Any, kinds: Sequence[type | types.UnionType]) -> list[list[Any]] | None:
    """Table data kept as columns (one JSON list per field), when there is one column per kind,
    all of one length, each value of its column's kind (`int | None`: an int or null); else
    None. Checked a column at a time: 14,000 rows in a few milliseconds."""
    if not (isinstance(data, list) and len(data) == len(kinds) and data):
        return None
    for column, kind in zip(data, kinds, strict=True):
        allowed = set(kind.__args__) if isinstance(kind, types.UnionType) else {kind}
        if not isinstance(column, list) or len(column) != len(data[0]):
            return None
        if not set(map(type, column)) <= allowed:
            return None
    return data
