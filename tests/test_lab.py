"""The lab, the demo, and accuracy on an impaired network."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import ghostport_main
from scanner.lab.layout import Lab, lab_hosts, lab_map
from scanner.models import ScanDocument
from tests.conftest import REPO, ImpairedLab
from tests.support import score
from tests.test_cli import validate
from tests.test_terminal import nobody_python

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the lab binds privileged ports (23, 69, 161, ...): needs root"
)


def test_lab_only_runs_on_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab_hosts("127.0.10.0")[-1] == "127.0.10.5"
    code = ghostport_main(["lab", "--base", "127.255.255.252"])  # base+5 leaves 127/8
    assert code == 2
    assert "only runs on 127.0.0.0/8" in capsys.readouterr().err
    assert ghostport_main(["demo", "--base", "10.1.2.0"]) == 2


def test_lab_map_lists_every_service_with_an_expectation() -> None:
    services = lab_map()
    assert {s.host for s in services} == set(lab_hosts("127.0.10.0")[:4])
    assert all(s.expect for s in services)
    assert ("127.0.10.4", 412, "tcp") in {(s.host, s.port, s.transport) for s in services}


@needs_root
def test_demo_from_the_installed_command_in_an_empty_directory(tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "ghostport"
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "scanner"]
    # The installed command where there is one (CI), else the source tree
    env = {**os.environ, "PYTHONPATH": "" if installed.exists() else str(REPO)}
    done = subprocess.run(
        [*command, "demo", "--base", "127.0.30.0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ghostport-demo.html",
        "ghostport-demo.json",
    ]
    document = ScanDocument.model_validate_json((tmp_path / "ghostport-demo.json").read_text())
    validate(json.loads((tmp_path / "ghostport-demo.json").read_text()))
    assert score(document.results, lab_map("127.0.30.0"), lab_hosts("127.0.30.0")) == []
    relay = next(r for r in document.results if (r.port, r.proto.value) == (391, "udp"))
    assert relay.verdict is not None and relay.verdict.value == "legacy"
    assert relay.service is not None
    assert relay.service.extracted["sysDescr"].startswith("SynOptics System 3000")
    assert not [r for r in document.results if r.host == "127.0.30.5"]
    html = (tmp_path / "ghostport-demo.html").read_text()
    assert "SynOptics System 3000 Network Management Module" in html
    assert "HTTP answers on 412/tcp" in html
    assert "127.0.30.5</h3>" in html and "Clean: no open port" in html
    assert "report:" in done.stdout and "findings on the emulated lab" in done.stdout


@needs_root
def test_scan_of_the_lab_matches_its_layout(tmp_path: Path) -> None:
    base = "127.0.31.0"
    out = tmp_path / "lab.json"

    async def scan() -> None:
        lab = await Lab(base).start()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "scanner",
                "scan",
                "-q",
                "--json",
                str(out),
                "127.0.31.1-5",
                cwd=REPO,
            )
            await process.wait()
        finally:
            await lab.close()

    asyncio.run(scan())
    document = ScanDocument.model_validate_json(out.read_text())
    assert score(document.results, lab_map(base), lab_hosts(base)) == []


def test_lab_and_demo_need_no_network_beyond_loopback() -> None:
    source = "\n".join(p.read_text() for p in (REPO / "scanner" / "lab").glob("*.py"))
    assert "0.0.0.0" not in source


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (Debian package nftables)")
def test_five_percent_loss_still_finds_every_service(impaired_lab: ImpairedLab) -> None:
    # Given 5% random loss of TCP and UDP packets on the namespace's loopback
    impaired_lab.loss(5)
    impaired_lab.apply()
    # When the legacy-mgmt sweep runs with retries
    code, doc, stderr = impaired_lab.scan("--retries", "2", "--timeout", "1")
    assert code == 0, stderr
    document = ScanDocument.model_validate(doc)
    # Then every service is found as it is, and no open port is reported closed
    assert score(document.results, impaired_lab.services, impaired_lab.hosts) == []


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (Debian package nftables)")
def test_dropped_and_rejected_ports(impaired_lab: ImpairedLab) -> None:
    hub, airmobile = impaired_lab.hosts[0], impaired_lab.hosts[1]
    impaired_lab.drop(hub, "tcp", 23)
    impaired_lab.drop(hub, "udp", 391)
    impaired_lab.reject(airmobile, "tcp", 79)
    impaired_lab.reject(airmobile, "udp", 69)
    impaired_lab.apply()
    code, doc, stderr = impaired_lab.scan("--timeout", "0.5", "--retries", "1")
    assert code == 0, stderr
    states = {(r["host"], r["port"], r["proto"]): (r["state"], r["reason"]) for r in doc["results"]}
    assert states[hub, 23, "tcp"] == ("filtered", "no-response")
    assert states[hub, 391, "udp"] == ("open|filtered", "no-response")
    assert states[airmobile, 79, "tcp"] == ("filtered", "admin-prohibited")
    assert states[airmobile, 69, "udp"] == ("filtered", "admin-prohibited")
    assert {(f["host"], f["port"]) for f in doc["findings"]}.isdisjoint(
        {(hub, 23), (hub, 391), (airmobile, 79), (airmobile, 69)}
    )


def test_demo_as_a_normal_user_runs_in_a_private_namespace(tmp_path: Path) -> None:
    """A normal user cannot bind 23 or 161: the demo moves into a user + network namespace."""
    # This interpreter where user 65534 can run it, else the system one with its packages
    python, env = nobody_python()
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    tmp_path.chmod(0o777)
    done = subprocess.run(
        [*as_nobody, python, "-m", "scanner", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    report = tmp_path / "ghostport-demo.html"
    assert report.stat().st_uid == 65534
    assert "SynOptics System 3000" in report.read_text()
