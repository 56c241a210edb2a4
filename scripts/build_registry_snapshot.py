"""Build the IANA registry snapshot that ships inside the package.

    python3 scripts/build_registry_snapshot.py [CSV] [--out DIR] [--source-url URL]

Reads IANA's "Service Name and Transport Protocol Port Number Registry" CSV, checks it with the
same strict parser the scanner uses, and writes into DIR (default scanner/data/):

    iana-registry.csv.gz   the CSV byte for byte, gzip-compressed deterministically (no file
                           name, mtime 0, level 9), so a rebuild from the same CSV gives
                           identical bytes
    iana-registry.json     where it came from: source URL, snapshot date, sha256 and size of the
                           CSV, entry count

The snapshot date is the newest Registration or Modification Date in the data (what IANA last
changed), not the day the copy was taken: it is the only date the file itself vouches for.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scanner.errors import RegistryError  # noqa: E402
from scanner.registry import (  # noqa: E402
    BUNDLED_REGISTRY,
    BUNDLED_REGISTRY_INFO,
    IANA_CSV_URL,
    newest_date,
    parse_iana_csv,
)

DEFAULT_CSV = REPO.parent / "shared" / "registry" / "service-names-port-numbers.csv"
# Where the shared copy was taken from (see ../shared/registry/README.md): the newest of about
# 40 public copies of IANA's export, taken byte for byte.
DEFAULT_SOURCE_URL = (
    "https://raw.githubusercontent.com/EliteLoser/PSnmap/"
    "07a7138cab4cf0e22e7c1bc3cdf7bd0aee20222b/service-names-port-numbers.csv"
)


def compress(data: bytes) -> bytes:
    """gzip with nothing that varies between runs: no file name, mtime 0, fixed level."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def build(csv_path: Path, out_dir: Path, source_url: str) -> dict[str, object]:
    """Check the CSV, write the two files into out_dir, return the metadata written."""
    entries = parse_iana_csv(csv_path)
    data = csv_path.read_bytes()
    date = newest_date(entries)
    info: dict[str, object] = {
        "registry": "IANA Service Name and Transport Protocol Port Number Registry",
        "registry_url": IANA_CSV_URL,
        "source_url": source_url,
        "snapshot_date": date,
        "snapshot_date_basis": "newest Registration or Modification Date in the data",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "entries": len(entries),
        "entries_with_port": sum(1 for e in entries if e.port_low is not None),
        "file": BUNDLED_REGISTRY.name,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / BUNDLED_REGISTRY.name).write_bytes(compress(data))
    (out_dir / BUNDLED_REGISTRY_INFO.name).write_text(
        json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=BUNDLED_REGISTRY.parent)
    parser.add_argument("--source-url", default=DEFAULT_SOURCE_URL)
    args = parser.parse_args()
    try:
        info = build(args.csv, args.out, args.source_url)
    except RegistryError as exc:
        print(f"build_registry_snapshot: {exc}", file=sys.stderr)
        return 2
    size = (args.out / BUNDLED_REGISTRY.name).stat().st_size
    print(
        f"{info['entries']:,} entries, snapshot date {info['snapshot_date']}, "
        f"{info['bytes']:,} bytes -> {size:,} bytes gzip in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
