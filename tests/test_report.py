"""The HTML report, CSV and nmap XML: content, hostile input, and a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scanner.cli import ghostport_main, scan_main
from scanner.models import ScanDocument
from scanner.report.csvfile import COLUMNS, render_csv
from scanner.report.html import render_html, visible
from scanner.report.xmlfile import render_nmap_xml
from tests.conftest import REPO

NMAP_DTD = Path("/usr/share/nmap/nmap.dtd")
HOSTILE = (
    '<script>window.__pwned=1</script></style></textarea>"><img src=x '
    'onerror="window.__pwned=2">javascript:alert(1) \x00\x1b[31m\u202eevil\u202c '
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab binds privileged ports")


@pytest.fixture(scope="module")
def lab_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo scan of the emulated lab: its JSON document."""
    if os.geteuid() != 0:
        pytest.skip("the lab binds privileged ports: needs root")
    folder = tmp_path_factory.mktemp("lab-report")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "demo",
            "-q",
            "--base",
            "127.0.40.0",
            "--out",
            str(folder),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return folder / "ghostport-demo.json"


class _HostileServers:
    """A squatter sending hostile bytes on DEC Notes' port, and a web server with a hostile
    Server header on the SynOptics trap port: untrusted input arriving over real sockets."""

    def __init__(self, host: str) -> None:
        import socket

        self.sockets = []
        for port, payload in (
            (3333, HOSTILE.encode() + b"\xff\xfe invalid utf-8 " + b"A" * 1_000_000),
            (412, b"HTTP/1.0 200 OK\r\nServer: " + HOSTILE.encode() + b"\r\n\r\n"),
        ):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(16)
            self.sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock, payload), daemon=True).start()

    @staticmethod
    def _serve(sock: object, payload: bytes) -> None:
        import contextlib
        import socket

        assert isinstance(sock, socket.socket)
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(1)
                conn.sendall(payload)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture(scope="module")
def hostile_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("port 412 is privileged: needs root")
    folder = tmp_path_factory.mktemp("hostile")
    servers = _HostileServers("127.0.41.1")
    try:
        code = scan_main(
            [
                "-q",
                "--tcp",
                "-p",
                "412,3333",
                "--json",
                str(folder / "h.json"),
                "--html",
                str(folder / "h.html"),
                "127.0.41.1",
            ]
        )
    finally:
        servers.close()
    assert code == 0
    return folder


def test_report_of_a_lab_scan(lab_scan: Path, tmp_path: Path) -> None:
    html = render_html(ScanDocument.model_validate_json(lab_scan.read_text()), "Audit", "ACME")
    for expected in (
        "<h1>Audit</h1>",
        "ACME",
        "Executive summary",
        "<svg",
        "findings-table",
        "SynOptics System 3000 Network Management Module",
        "synotics-relay",
        "SynOptics Communications",
        "Remediation",
        "Coverage",
        "Methodology",
        "Appendix: all listed results",
        "open|filtered",
        "sha256",
        "127.0.40.5</h3>",
    ):
        assert expected in html, expected
    # Nothing is fetched: no external source; references are links a reader may follow
    assert not re.search(r"""src=["']?(https?:|//)""", html), "nothing is fetched"
    assert "<link" not in html and "url(" not in html
    external = re.findall(r"""<[^>]*href=["']?(?:https?:|//)[^>]*>""", html)
    assert external and all(
        tag.startswith("<a ") and 'rel="noopener noreferrer"' in tag for tag in external
    )
    assert (
        "incomplete"
        not in html.lower().split("<style>")[0] + html.split("</style>")[1].split("Executive")[0]
    )


def test_hostile_responses_render_inert_and_capped(hostile_scan: Path) -> None:
    html = (hostile_scan / "h.html").read_text()
    body = html.split("<body>", 1)[1]
    scripts = re.findall(r"<script>(.*?)</script>", body, re.S)
    assert len(scripts) == 1 and "__pwned" not in scripts[0]  # only our own script
    assert "<img" not in body and "</textarea>" not in body
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body  # shown, as text
    assert "\u202e" not in body  # the override never reaches the page active
    assert "\x00" not in body and "\x1b" not in body
    assert len(html) < 400_000, "1 MB of response is capped in the report"
    doc = json.loads((hostile_scan / "h.json").read_text())
    assert {f["port"] for f in doc["findings"]} == {412, 3333}


def test_hostile_saved_document_renders_inert(tmp_path: Path) -> None:
    # Given a tampered results file (ghostport report renders any saved scan)
    base = {
        "scan": {
            "id": HOSTILE,
            "version": "0",
            "command_line": [HOSTILE],
            "started_at": "x",
            "finished_at": None,
            "targets": [HOSTILE],
            "excludes": [],
            "ports": {"tcp": "1"},
            "options": {
                "timeout_s": 1,
                "retries": 0,
                "rate": None,
                "max_inflight": 1,
                "per_host": 1,
                "seed": 1,
                "all_states": False,
                "event_loop": "x",
            },
        },
        "results": [],
        "complete": False,
        "findings": [
            {
                "host": "127.0.0.1",
                "port": 1,
                "proto": "tcp",
                "service_id": HOSTILE,
                "protocol": HOSTILE,
                "verdict": "squatter",
                "severity": "high",
                "confidence": 0.5,
                "title": HOSTILE * 50,
                "evidence": {
                    "probe": HOSTILE,
                    "request_hex": None,
                    "response_hex": ("ff" * 5000),
                    "response_bytes": 5000,
                    "decoded": {HOSTILE: HOSTILE * 20_000},
                },
            }
        ],
        "summary": {
            "hosts": 1,
            "probes_total": 1,
            "probes_done": 0,
            "states": {"open": 0, "closed": 0, "filtered": 0, "open|filtered": 0},
            "states_by_proto": {
                "tcp": {"open": 0, "closed": 0, "filtered": 0, "open|filtered": 0},
                "udp": {"open": 0, "closed": 0, "filtered": 0, "open|filtered": 0},
            },
            "duration_s": 0,
        },
    }
    saved = tmp_path / "tampered.json"
    saved.write_text(json.dumps(base))
    out = tmp_path / "tampered.html"
    assert ghostport_main(["report", str(saved), "--html", str(out)]) == 0
    body = out.read_text().split("<body>", 1)[1]
    assert "<img" not in body and body.count("<script>") == 1
    assert "Incomplete scan" in body
    assert "\\u202e" in body and "\u202e" not in body  # shown as an escape, not active
    assert len(body) < 200_000


def test_visible_caps_and_shows_controls() -> None:
    assert visible("a\x00b\u202ec" + "x" * 1000, limit=10).startswith("a\\x00b\\u202ec")
    assert "more characters" in visible("y" * 600)


def test_csv_one_row_per_finding_and_xml_valid_against_nmap_dtd(lab_scan: Path) -> None:
    document = ScanDocument.model_validate_json(lab_scan.read_text())
    rows = list(csv.DictReader(io.StringIO(render_csv(document))))
    assert len(rows) == len(document.findings) > 0
    assert set(rows[0]) == set(COLUMNS)
    relay = next(r for r in rows if r["port"] == "391" and r["proto"] == "udp")
    assert relay["verdict"] == "legacy" and "sysDescr=SynOptics System 3000" in relay["decoded"]
    xml = render_nmap_xml(document)
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml.split("-->", 1)[1])
    assert root.tag == "nmaprun" and root.get("xmloutputversion") == "1.05"
    port = root.find("./host/ports/port[@portid='391'][@protocol='udp']")
    assert port is not None
    assert port.find("state").get("state") == "open"  # type: ignore[union-attr]
    assert port.find("service").get("name") == "snmp"  # type: ignore[union-attr]
    if not NMAP_DTD.is_file():
        pytest.skip("nmap's DTD not installed (Debian package nmap-common)")
    from lxml import etree

    dtd = etree.DTD(str(NMAP_DTD))
    assert dtd.validate(etree.fromstring(xml.encode())), dtd.error_log.filter_from_errors()


def test_csv_neutralises_formulas() -> None:
    from scanner.report.csvfile import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell("-1+2") == "'-1+2" and _cell("plain") == "plain"


def test_output_base_writes_all_four(tmp_path: Path) -> None:
    base = tmp_path / "audit"
    assert scan_main(["-q", "--tcp", "-p", "9", "-o", str(base), "127.0.0.1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.csv",
        "audit.html",
        "audit.json",
        "audit.xml",
    ]


def test_pdf_without_chromium_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("GHOSTPORT_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert scan_main(["--pdf", str(tmp_path / "r.pdf"), "127.0.0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install chromium" in err[0]


# ---------------------------------------------------------------- real headless Chromium


CHROMIUM = shutil.which("chromium")


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian package chromium), which .ci/run installs")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def test_report_in_headless_chromium(browser, hostile_scan: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    report = hostile_scan / "h.html"
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    # No console error, no request but the report itself, no injected script ran
    assert errors == []
    assert requests == [report.as_uri()]
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The hostile banner is visible as text
    assert "<script>window.__pwned=1</script>" in page.inner_text("body")
    # Sorting: the port column sorts numerically both ways
    ports = lambda: page.eval_on_selector_all(  # noqa: E731
        "#findings-table tbody tr td:nth-child(3)", "cells => cells.map(c => c.innerText)"
    )
    page.click("#findings-table th:nth-child(3)")
    ascending = ports()
    page.click("#findings-table th:nth-child(3)")
    assert ports() == list(reversed(ascending)) and ascending == sorted(
        ascending, key=lambda t: int(t.split("/")[0])
    )
    # Filtering hides the rows that do not match
    page.fill("#finding-filter", "3333")
    shown = page.eval_on_selector_all(
        "#findings-table tbody tr", "rows => rows.filter(r => r.style.display !== 'none').length"
    )
    assert shown == 1
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    # With JavaScript off it still reads
    page_without_js = browser.new_page(java_script_enabled=False)
    page_without_js.goto(report.as_uri())
    assert "Findings" in page_without_js.inner_text("body")


def test_pdf_of_a_large_scan_has_several_pages(lab_scan: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian package chromium)")
    pdf = tmp_path / "report.pdf"
    assert ghostport_main(["report", str(lab_scan), "--pdf", str(pdf)]) == 0
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert pages > 1, pages


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "not a ghostport scan document"),
        ('{"schema_version": "1.0"}', "scan"),
        (b"\xff\xfe".decode("latin-1"), "ghostport"),
    ],
)
def test_broken_results_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, named: str
) -> None:
    saved = tmp_path / "broken.json"
    saved.write_text(content, encoding="latin-1")
    assert ghostport_main(["report", str(saved), "--html", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "broken.json" in err[0]
