"""`ghostport registry` and `ghostport profiles`: look things up, print them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from scanner.cli import options as opt
from scanner.cli.console import err, out
from scanner.errors import UsageError
from scanner.profiles import bundled_profile_ids, load_profiles
from scanner.registry import IANA_CSV_URL, describe_source, update_cache
from scanner.report.text import (
    one_line,
    registry_facts,
    registry_rows,
    render_profile,
    render_profile_list,
    render_registry_info,
    render_registry_rows,
)

REGISTRY_EXAMPLES = """\
examples:
  ghostport registry 391                 what port 391 is registered to (every transport)
  ghostport registry 3416/udp            one port and transport
  ghostport registry synoptics           words in the name, description or assignee
  ghostport registry 'synotics-*'        a service name or glob
  ghostport registry info                which registry is in use, how big, how recent
  ghostport registry update              download IANA's registry into the user cache
"""


def registry_command(argv: Sequence[str]) -> int:
    """`ghostport registry QUERY | info | update`."""
    parser = opt.Parser(
        prog="ghostport registry",
        description="Look up the IANA port registry; show or update the copy in use.",
        epilog=REGISTRY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "query", nargs="*", help="PORT, PORT/PROTO, NAME, GLOB or words; or info, update"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--registry", metavar="FILE", help="IANA registry CSV to use")
    parser.add_argument("--url", default=IANA_CSV_URL, help="where `update` downloads from")
    parser.add_argument(
        "--timeout", type=opt.positive_float, default=60.0, help="seconds for `update` (60)"
    )
    opt.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.query == ["update"]:
        registry = update_cache(args.url, args.timeout)
        status = "updated"
    else:
        registry = opt.registry_from(args)
        status = "in use"
    if args.query in (["update"], ["info"]):
        facts = registry_facts(registry)
        out(json.dumps(facts, indent=2) if args.json else render_registry_info(registry, status))
        return opt.EXIT_OK
    if not args.query:
        raise UsageError("give a port (391), port/proto (3416/udp), a name, a glob or words")
    rows = registry_rows(registry.query(" ".join(args.query)))
    if args.json:
        out(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    elif rows:
        out(render_registry_rows(rows))
    else:
        err(
            f"nothing in the registry ({one_line(describe_source(registry))}) matches "
            f"{one_line(' '.join(args.query))!r}"
        )
    return opt.EXIT_OK


def profiles_command(argv: Sequence[str]) -> int:
    """`ghostport profiles [ID|FILE ...]`."""
    parser = opt.Parser(
        prog="ghostport profiles",
        description="List the bundled profiles, or show one: services, ports, probes.",
    )
    parser.add_argument("profile", nargs="*", metavar="ID|FILE.yaml")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    opt.add_debug_flag(parser)
    args = parser.parse_args(argv)
    profiles = load_profiles(args.profile or bundled_profile_ids())
    if args.json:
        out(
            json.dumps(
                [
                    {
                        "id": p.id,
                        "title": p.title,
                        "path": p.path,
                        "sha256": p.sha256,
                        "includes": list(p.includes),
                        "services": [s.model_dump(mode="json") for s in p.services],
                        "probes": [q.model_dump(mode="json") for q in p.probes],
                    }
                    for p in profiles
                ],
                indent=2,
            )
        )
    elif args.profile:
        out("\n".join(render_profile(profile) for profile in profiles))
    else:
        out(render_profile_list(profiles))
    return opt.EXIT_OK
