"""The house rules that hold the layout together, and the user mistakes that once leaked.

Only `scanner/cli/` prints, exits, execs or writes to the terminal; everything else returns
values or raises a ScannerError. Each leak below once ended as "internal error", exit 3.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from scanner.cli import ghostport_main, scan_main
from tests.conftest import REPO, run_python

PACKAGE = REPO / "scanner"


def _terminal_uses(path: Path) -> list[str]:
    """`print(...)`, `sys.exit`, `os.exec*`, `sys.stdout`, `sys.stderr` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("print", "exit", "quit")
        ):
            found.append(f"{node.func.id}() at line {node.lineno}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, name = node.value.id, node.attr
            if (owner == "sys" and name in ("exit", "stdout", "stderr", "__stdout__")) or (
                owner == "os" and (name.startswith("exec") or name in ("_exit", "abort"))
            ):
                found.append(f"{owner}.{name} at line {node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module in ("sys", "os"):
            for alias in node.names:
                if alias.name in ("exit", "stdout", "stderr") or alias.name.startswith("exec"):
                    found.append(f"from {node.module} import {alias.name} at line {node.lineno}")
    return found


def test_only_the_cli_prints_exits_or_execs() -> None:
    offenders = {
        str(path.relative_to(REPO)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if "cli" not in path.relative_to(PACKAGE).parts[:1]
        and path.name != "__main__.py"
        and (uses := _terminal_uses(path))
    }
    assert offenders == {}


def test_the_checker_sees_what_it_looks_for(tmp_path: Path) -> None:
    # Given a module that does each forbidden thing once
    module = tmp_path / "bad.py"
    module.write_text(
        "import os, sys\nprint('x')\nsys.stdout.write('x')\nsys.stderr.flush()\n"
        "sys.exit(2)\nos.execv('/bin/true', ['true'])\n"
    )
    # Then every one of them is reported
    assert len(_terminal_uses(module)) == 5


def test_every_module_fits_in_a_few_screens() -> None:
    # The engine's hot-path state machines may stay long (its docstring says why)
    allowed = {"engine.py": 700}
    long = {
        str(path.relative_to(REPO)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > allowed.get(path.name, 500)
    }
    assert long == {}


def _one_line_error(stderr: str, needle: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert needle in lines[0]
    assert "Traceback" not in stderr and "internal error" not in stderr


def test_loop_uvloop_without_uvloop_is_a_clear_error() -> None:
    # Given an interpreter where uvloop cannot be imported
    code = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from scanner.cli import scan_main\n"
        "raise SystemExit(scan_main(['--loop', 'uvloop', '-q', '-p', '1', '--tcp', '127.0.0.1']))"
    )
    done = run_python(code, timeout=60, check=False)
    # Then it is one line naming uvloop, exit 2
    assert done.returncode == 2, done.stderr
    _one_line_error(done.stderr, "uvloop")


def test_registry_update_with_an_uncreatable_cache_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", "/proc/version/ghostport")
    assert ghostport_main(["registry", "update", "--url", "http://127.0.0.1:9/x.csv"]) == 2
    _one_line_error(capsys.readouterr().err, "/proc/version")


def test_demo_into_an_unwritable_directory_fails_before_the_lab_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if os.geteuid() != 0:
        pytest.skip("as a normal user the demo re-runs itself in a namespace first")
    # Given a base no lab uses, and an output directory that cannot exist
    code = ghostport_main(["demo", "--base", "127.0.77.0", "--out", "/proc/version/out"])
    assert code == 2
    _one_line_error(capsys.readouterr().err, "/proc/version/out")


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "/nonexistent/dir/r.json"],
        ["--json", "/proc"],
        ["--html", "/nonexistent/dir/r.html"],
        ["-o", "/nonexistent/base"],
        ["--csv", "/proc"],
    ],
)
def test_output_paths_are_checked_before_the_first_probe(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert scan_main(["-q", "-p", "1", "--tcp", *argv, "127.0.0.1"]) == 2
    captured = capsys.readouterr()
    _one_line_error(captured.err, argv[1])
    assert "probes" not in captured.err  # no scan summary: nothing was sent
