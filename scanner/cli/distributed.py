"""One scan as shards: `scan --workers N` (local processes), `scan --broker URL` (Celery
workers) and `ghostport worker`. Celery is imported only on the --broker and worker paths."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from scanner.cli import nmapflags
from scanner.cli import options as opt
from scanner.cli.recording import FinishingObserver, History
from scanner.cli.scan_parser import build_scan_parser
from scanner.errors import UsageError
from scanner.models import PortResult, ScanSummary
from scanner.scan import ScanConfig
from scanner.shards import (
    ShardRunner,
    ShardSpec,
    finished_shards,
    plan_shards,
    plan_totals,
    ran_through_broker,
    run_sharded,
)

AUTO_MIN_PROBES = 16_384
"""Below this many probes a scan without --workers runs in this process (start-up of worker
processes would cost more than it saves)."""

# Flags of the coordinator only: never sent to a worker (a broker URL holds credentials).
_COORDINATOR_FLAGS = {
    "--broker": 1,
    "--vantage": 1,
    "--shards": 1,
    "--shard-timeout": 1,
    "--workers": 1,
    "--resume": 1,
    "--db": 1,
    "-iL": 1,
    "--exclude-file": 1,
    "--seed": 1,
}


def broker_url(args: argparse.Namespace, resuming: bool = False) -> str | None:
    """--broker, else $GHOSTPORT_BROKER (where credentials stay out of the command line).
    A resumed scan's recorded URL lost its password ("***"): $GHOSTPORT_BROKER, or none."""
    env = os.environ.get("GHOSTPORT_BROKER") or None
    url: str | None = args.broker or env
    if resuming and url and "***" in url:
        url = env
    return url


def vantages_from(args: argparse.Namespace) -> dict[str, str]:
    """--vantage NAME=TARGETS, each name once."""
    vantages: dict[str, str] = {}
    for item in args.vantage:
        name, sep, targets = item.partition("=")
        if not sep or not name or not targets or name in vantages:
            raise UsageError(
                f"--vantage {item!r}: expected NAME=TARGETS (e.g. site-a=10.1.0.0/24), "
                "each name once"
            )
        if not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"--vantage {item!r}: a name is letters, digits, - and _")
        vantages[name] = targets
    return vantages


def shard_argv(argv: Sequence[str]) -> list[str]:
    """The scan's own flags (ports, profiles, timing) as a worker rebuilds its config from;
    the coordinator's flags (broker, outputs' database, target files) left out."""
    return opt.without_flags(argv, _COORDINATOR_FLAGS)


def shard_config(
    argv: Sequence[str], seed: int, spec: ShardSpec, worker_scope: Sequence[str] = ()
) -> ScanConfig:
    """A shard's config, rebuilt from the scan's flags where it runs; a worker's own --scope
    narrows it further (a shard outside it is refused before any probe)."""
    from scanner.cli.scanning import config_from_args  # noqa: PLC0415

    args = nmapflags.parse_scan_args(build_scan_parser("scan"), list(argv))
    args.targets, args.input_list, args.exclude_file = list(spec.targets), None, None
    args.exclude = list(spec.excludes)
    config = config_from_args(args, ["scan", *argv])
    scopes = opt.scopes_from(worker_scope) if worker_scope else ()
    return replace(config, seed=seed, scopes=config.scopes + scopes)


def prepare_targets(args: argparse.Namespace) -> None:
    """With --vantage and no positional target, the vantages' targets are the scan's."""
    if args.vantage and not args.targets and not args.input_list:
        seen: dict[str, None] = {}
        for targets in vantages_from(args).values():
            seen.update(dict.fromkeys(t for t in targets.split(",") if t))
        args.targets = list(seen)


def sharded_scan(
    args: argparse.Namespace,
    argv: Sequence[str],
    config: ScanConfig,
    observer: FinishingObserver,
    history: History,
) -> Callable[[str], Coroutine[Any, Any, object]] | None:
    """The scan coroutine when the scan runs as shards; None to run it in this process.
    `argv`: the scan's own arguments (no program name)."""
    resume = config.resume
    stored = None
    if resume is not None and history.store is not None:
        stored = history.store.checkpoint(resume.scan_id).checkpoint
    url = broker_url(args, resuming=resume is not None)
    if (
        url is None
        and resume is not None
        and (args.vantage or args.shards or ran_through_broker(stored))
    ):
        raise UsageError(
            f"scan {resume.scan_id} ran on broker workers and a broker URL is never recorded "
            f"(it may hold credentials): `ghostport resume {resume.scan_id} --broker URL` "
            "(or $GHOSTPORT_BROKER)"
        )
    if url is None and (args.vantage or args.shards):
        raise UsageError("--vantage and --shards need --broker URL (or $GHOSTPORT_BROKER)")
    if url is not None and args.workers is not None:
        raise UsageError(
            "--workers starts local processes; with --broker the workers are "
            "`ghostport worker` processes: use --shards N instead"
        )
    if url is None and args.workers == 1:
        return None
    parts_done, finished = 0, dict[int, ScanSummary]()
    if resume is not None and history.store is not None:
        parts_done, finished = finished_shards(stored)
        if not parts_done and url is None:
            return None  # a scan that ran in one process resumes in one process
    seen: list[PortResult] = list(history.replay.results) if history.replay else []
    for_workers = shard_argv(argv)
    vantages = vantages_from(args)
    local: ShardRunner | None = None
    shards: list[ShardSpec] = []
    if url is None:
        parts = parts_done or args.workers or os.cpu_count() or 1
        shards = plan_shards(parts, config.targets, config.excludes, {})
        if not parts_done and args.workers is None:
            # Decided before the scan's loop starts (on a loop of its own), so that the
            # workers can be forked with everything loaded (scanner/workers.py)
            _, total, _ = asyncio.run(plan_totals(config, shards[:1]))
            if parts < 2 or total < AUTO_MIN_PROBES:
                return None
        from scanner.workers import ProcessRunner  # noqa: PLC0415

        local = ProcessRunner(
            partial(shard_config, tuple(for_workers), config.seed), config.event_loop
        )
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        local.fork([s for s in shards if s.shard not in finished], config)

    async def coordinate(event_loop: str) -> object:
        runner, planned = local, shards
        if url is not None:
            from scanner.cluster.runner import CeleryRunner  # noqa: PLC0415 - Celery here only

            parts = parts_done or args.shards or 2
            planned = plan_shards(parts, config.targets, config.excludes, vantages)
            celery = CeleryRunner(url, for_workers, config.seed, args.shard_timeout)
            await celery.check()
            runner = celery
        assert runner is not None  # local, or the broker's
        await run_sharded(
            config, observer, event_loop, planned, runner, finished, seen, url is not None
        )
        return None

    return coordinate


def _worker_parser() -> argparse.ArgumentParser:
    parser = opt.Parser(
        prog="ghostport worker",
        description="Run shards of distributed scans (Celery) from this vantage point.",
    )
    parser.add_argument("--broker", metavar="URL", help="broker URL (also $GHOSTPORT_BROKER)")
    parser.add_argument(
        "--vantage", default="default", metavar="NAME", help="take this vantage's shards"
    )
    parser.add_argument(
        "--concurrency", type=opt.count(1), metavar="N", help="shards at once (default: cores)"
    )
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SPEC[,SPEC]",
        help="refuse any shard with a target outside these blocks (also $GHOSTPORT_SCOPE)",
    )
    parser.add_argument(
        "--redeliver-after",
        type=opt.positive_float,
        default=3600.0,
        metavar="S",
        help="hand a vanished worker's shard to another worker after S seconds (3600); "
        "keep it above the longest shard",
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    opt.add_debug_flag(parser)
    return parser


def worker_command(argv: Sequence[str]) -> int:
    """`ghostport worker`: take shards from the broker until stopped."""
    args = _worker_parser().parse_args(argv)
    url = args.broker or os.environ.get("GHOSTPORT_BROKER")
    if not url:
        raise UsageError("ghostport worker needs --broker URL (or $GHOSTPORT_BROKER)")
    vantages_from(argparse.Namespace(vantage=[f"{args.vantage}=x"]))  # the name's syntax
    opt.scopes_from(args.scope)  # a bad scope is a mistake now, not in every shard
    _ping(url)
    from scanner.cluster.app import make_app, queue_name, set_builder  # noqa: PLC0415

    set_builder(partial(shard_config, worker_scope=tuple(args.scope)))
    app = make_app(url, args.redeliver_after)
    app.worker_main(
        [
            "worker",
            "--queues",
            queue_name(args.vantage),
            "--concurrency",
            str(args.concurrency or os.cpu_count() or 1),
            "--hostname",
            f"ghostport-{args.vantage}-{os.getpid()}@%h",
            "--loglevel",
            args.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return opt.EXIT_OK


def _ping(url: str) -> None:
    from scanner.cluster.stream import ping  # noqa: PLC0415 - kombu on this path only

    ping(url)
