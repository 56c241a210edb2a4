"""The wheel carries the package, profiles/, templates/, the schema and both commands."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{built.stderr}")
    return next(out.glob("ghostport_scanner-*.whl"))


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scanner/cli/__init__.py" in names
    assert "scanner/profiles/README.md" in names, "profiles/ is installed inside the package"
    assert "scanner/templates/README.md" in names, "templates/ is installed inside the package"
    assert "scanner/schema/scan-results.schema.json" in names
    assert "scanner/data/iana-registry.csv.gz" in names, "the bundled IANA registry snapshot"
    assert "scanner/data/iana-registry.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "scan = scanner.cli:scan_entry" in text
    assert "ghostport = scanner.cli:ghostport_entry" in text


def test_installed_commands_work_from_any_directory(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    scan = bin_dir / "scan"
    if not scan.exists():
        pytest.skip("ghostport is not installed in this interpreter's environment (pip install .)")
    for command in (["scan", "--version"], ["ghostport", "--version"]):
        done = subprocess.run(
            [str(bin_dir / command[0]), *command[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "ghostport" in done.stdout
