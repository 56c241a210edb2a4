"""Descriptor limits: how many probes this process can keep in flight at once."""

from __future__ import annotations

import contextlib

from scanner.errors import ScanOptionError

DEFAULT_MAX_INFLIGHT = 4096
MIN_USEFUL_INFLIGHT = 16


def raise_nofile_limit() -> int:
    """Raise the soft descriptor limit to the hard one where allowed; return the soft limit."""
    try:
        import resource  # noqa: PLC0415 - not on Windows
    except ImportError:
        return 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def descriptors_for_probes(limit: int) -> int:
    """Descriptors a scan may hold in flight under a limit: all but a reserve for the
    interpreter, output files and the event loop, scaled to the limit (128 at most)."""
    reserve = min(128, max(12, limit // 8))
    return max(1, limit - reserve)


def inflight_cap(requested: int | None) -> int:
    """The global in-flight cap: the request, or the default, within the descriptor limit.

    An explicit request the limit cannot carry is refused with the reason, never clamped
    silently; the default shrinks to what the limit leaves.
    """
    limit = raise_nofile_limit()
    available = descriptors_for_probes(limit)
    if requested is not None:
        if requested > available:
            raise ScanOptionError(
                f"--max-inflight {requested} needs more descriptors than the limit of {limit} "
                f"leaves ({available}): raise it (ulimit -n) or ask for at most {available}"
            )
        return requested
    return max(1, min(DEFAULT_MAX_INFLIGHT, max(available, min(MIN_USEFUL_INFLIGHT, limit))))
