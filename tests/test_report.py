"""The HTML report, CSV and nmap XML: content, hostile input, and a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import socket
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
from tests.support import TcpServer, servers

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


# ------------------------------------------------- the auditor's sections, in real Chromium


def _open_in_chromium(browser, report: Path):  # type: ignore[no-untyped-def]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    return page


def test_report_sections_for_auditors_in_chromium(browser, lab_scan: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    document = ScanDocument.model_validate_json(lab_scan.read_text())
    report = tmp_path / "lab.html"
    assert ghostport_main(["report", str(lab_scan), "--html", str(report)]) == 0
    page = _open_in_chromium(browser, report)
    # The contents list links to sections that exist, in the order they appear
    targets = page.eval_on_selector_all(
        "nav#contents a", "links => links.map(a => a.getAttribute('href').slice(1))"
    )
    assert targets[:4] == ["summary", "scope", "hosts", "findings"]
    tops = [page.eval_on_selector(f"#{t}", "e => e.getBoundingClientRect().top") for t in targets]
    assert tops == sorted(tops)
    # The per-host summary: one row per open port of the JSON, above the first finding card
    hosts_of_rows = page.eval_on_selector_all(
        "table.host-summary",
        "tables => tables.map(t => [t.previousElementSibling.previousElementSibling.innerText,"
        " Array.from(t.tBodies[0].rows, r => [r.cells[0].innerText, r.cells[4].innerText])])",
    )
    shown_rows = [(host, where) for host, cells in hosts_of_rows for where, _ in cells]
    open_ports = [
        (r.host, f"{r.port}/{r.proto.value}") for r in document.results if r.state.value == "open"
    ]
    assert sorted(shown_rows) == sorted(open_ports) and len(shown_rows) == len(set(shown_rows))
    severity_of = {
        (f.host, f"{f.port}/{f.proto.value}"): f.severity.value for f in document.findings
    }
    for host, cells in hosts_of_rows:
        for where, severity in cells:
            assert severity == severity_of.get((host, where), "-"), (host, where)
    last_summary = page.eval_on_selector_all(
        "table.host-summary", "t => t[t.length - 1].getBoundingClientRect().bottom"
    )
    first_card = page.eval_on_selector("section.finding", "e => e.getBoundingClientRect().top")
    assert last_summary < first_card
    # A port that accepted and said nothing is said to listen, never to answer
    for finding in document.findings:
        answered = finding.evidence.response_bytes > 0
        assert (" answers on " in finding.title) == answered, finding.title
        assert (" listens on " in finding.title) == (not answered), finding.title
    silent = [f for f in document.findings if f.evidence.response_bytes == 0]
    assert silent, "the lab's discard service accepts and says nothing"
    titles = page.eval_on_selector_all("section.finding h3", "hs => hs.map(h => h.innerText)")
    assert sum(" listens on " in t for t in titles) == len(silent)
    # RTT only where an answer came back; otherwise how long the scan waited
    rtts = page.eval_on_selector_all(
        "#results-table tbody tr",
        "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText, r.cells[4].innerText])",
    )
    rtt_of = {(r.host, f"{r.port}/{r.proto.value}"): r.rtt_ms for r in document.results}
    assert any(v is None for v in rtt_of.values()) and any(v is not None for v in rtt_of.values())
    for host, where, shown in rtts:
        if rtt_of[host, where] is None:
            assert shown.startswith("no answer; waited at least "), shown
        else:
            assert shown.endswith(" ms") and "waited" not in shown, shown
    # References are links, to exactly what the profiles name
    links = page.eval_on_selector_all(
        ".references a", "as => as.map(a => [a.href, a.rel, a.innerText])"
    )
    named = {r for f in document.findings for r in f.references}
    assert links and {href for href, _, _ in links} <= named
    assert all(rel == "noopener noreferrer" and href == text for href, rel, text in links)
    # The scanner's record
    assert page.inner_text("#source-addresses") == "127.0.0.1"
    assert page.inner_text("#scanner-host") == socket.gethostname()
    assert f"ghostport {document.scan.version}" in page.inner_text("#scanner-record")
    assert page.inner_text("#scope-allow-list") == "GHOSTPORT_SCOPE: 127.0.0.0/8,::1"


@pytest.fixture(scope="module")
def scoped_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scan of a server on 127.0.0.1, on IPv4 and IPv6, with two --scope flags and a title
    whose spaces and quote a shell needs quoted (module scope: it runs before Playwright's
    event loop exists)."""
    folder = tmp_path_factory.mktemp("scoped")
    server = TcpServer(banner=b"SSH-2.0-OpenSSH_9.2\r\n")
    with servers(server):
        argv = [
            "-q",
            "--tcp",
            "-p",
            str(server.port),
            "--scope",
            "127.0.0.0/24,::1",
            "--scope",
            "127.0.0.1",
            "--title",
            "Audit of 'lab' hosts",
            "--json",
            str(folder / "s.json"),
            "--html",
            str(folder / "s.html"),
            "127.0.0.1",
            "::1",
        ]
        assert scan_main(argv) == 0
    return folder


def test_scope_command_line_and_sources_recorded(browser, scoped_scan: Path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = scoped_scan
    scan = json.loads((tmp_path / "s.json").read_text())["scan"]
    # Then the JSON keeps each allow-list as written, and where it came from
    assert scan["scope"] == {
        "--scope": ["127.0.0.0/24,::1", "127.0.0.1"],
        "GHOSTPORT_SCOPE": [os.environ["GHOSTPORT_SCOPE"]],
    }
    assert scan["scanner_host"] == socket.gethostname()
    assert scan["source_addresses"] == ["127.0.0.1", "::1"]
    # And the report shows the command line as a shell would take it back
    page = _open_in_chromium(browser, tmp_path / "s.html")
    shown = page.inner_text("#command-line")
    assert shown == shlex.join(scan["command_line"]) and shlex.split(shown) == scan["command_line"]
    assert "'Audit of '\"'\"'lab'\"'\"' hosts'" in shown
    allow = page.inner_text("#scope-allow-list")
    assert "--scope: 127.0.0.0/24,::1; 127.0.0.1" in allow and "every allow-list must hold" in allow
    assert page.inner_text("#source-addresses") == "127.0.0.1, ::1"


def test_hex_dumps_wrap_inside_their_box(browser, hostile_scan: Path) -> None:  # type: ignore[no-untyped-def]
    page = _open_in_chromium(browser, hostile_scan / "h.html")
    page.set_viewport_size({"width": 420, "height": 800})
    overflowing = page.eval_on_selector_all(
        "pre", "ps => ps.filter(p => p.scrollWidth > p.clientWidth + 1).length"
    )
    assert page.eval_on_selector_all("pre", "ps => ps.length") > 0 and overflowing == 0


# ------------------------------------------------------- the printed report, page by page

PAGE_POINTS = {"a4": (595.3, 841.9), "letter": (612.0, 792.0)}
MM = 72 / 25.4
FOOTER_BAND = 16 * MM  # the @page bottom margin: the footer's margin boxes live there
SIDE_MARGIN = 12 * MM
IPV4_LIKE = re.compile(r"127\.[0-9.]*")


def _twenty_findings(lab_scan: Path, folder: Path) -> Path:
    """The lab scan's document with exactly 20 findings. The lab's real findings come first;
    if the lab gives fewer than 20, copies of its findings moved to addresses 127.0.10.x fill
    the rest (copies, not scan results: they exist to fill pages like a bigger audit)."""
    document = ScanDocument.model_validate_json(lab_scan.read_text())
    findings = list(document.findings)[:20]
    for n in range(20 - len(findings)):
        original = document.findings[n % len(document.findings)]
        findings.append(original.model_copy(update={"host": f"127.0.10.{n + 1}"}))
    saved = folder / "twenty.json"
    saved.write_text(document.model_copy(update={"findings": findings}).model_dump_json())
    return saved


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_printed_report_pages(lab_scan: Path, tmp_path: Path, paper: str) -> None:
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian package chromium)")
    pdfplumber = pytest.importorskip("pdfplumber")
    saved = _twenty_findings(lab_scan, tmp_path)
    document = ScanDocument.model_validate_json(saved.read_text())
    pdf_path = tmp_path / f"report-{paper}.pdf"
    assert ghostport_main(["report", str(saved), "--pdf", str(pdf_path), "--paper", paper]) == 0
    addresses = {r.host for r in document.results} | {f.host for f in document.findings}
    with pdfplumber.open(pdf_path) as pdf:
        pages = pdf.pages
        # 20 finding cards do not take a page each
        assert 2 <= len(pages) <= 12, len(pages)
        all_words: list[str] = []
        for number, page in enumerate(pages, 1):
            # The paper asked for
            width, height = PAGE_POINTS[paper]
            assert abs(page.width - width) < 1.5 and abs(page.height - height) < 1.5
            words = page.extract_words(keep_blank_chars=False, use_text_flow=False)
            footer = [w for w in words if w["top"] >= height - FOOTER_BAND]
            content = [w for w in words if w["top"] < height - FOOTER_BAND]
            # The running footer: the scan id and "page N of M" on every page
            footer_text = " ".join(w["text"] for w in footer)
            assert document.scan.id in footer_text, (number, footer_text)
            assert f"page {number} of {len(pages)}" in footer_text, (number, footer_text)
            # ... in the margin: no content reaches into it, no footer word touches another
            assert content and max(w["bottom"] for w in content) <= height - FOOTER_BAND
            for low in footer:
                for other in words:
                    if other is low:
                        continue
                    apart = (
                        low["x1"] <= other["x0"]
                        or other["x1"] <= low["x0"]
                        or low["bottom"] <= other["top"]
                        or other["bottom"] <= low["top"]
                    )
                    assert apart, (number, low["text"], other["text"])
            # Nothing runs off the side of the page (hex dumps wrap inside their box)
            assert all(
                w["x0"] >= SIDE_MARGIN - 2 and w["x1"] <= width - SIDE_MARGIN + 2 for w in words
            ), number
            all_words += [w["text"] for w in words]
        # An address is never split across lines: every address-like word is a whole one
        pieces = [m.group(0).rstrip(".") for w in all_words for m in IPV4_LIKE.finditer(w)]
        assert pieces and all(p.count(".") == 3 for p in pieces), sorted(set(pieces))[:10]
        assert addresses <= set(pieces)
        # Table headers are whole words
        for header in ("Confidence", "Severity", "Verdict", "Registry", "Reason"):
            assert header in all_words, header
        assert not [w for w in all_words if "Confidence".startswith(w) and 4 <= len(w) < 10]
        # And it renders: the first page as a picture (looked at by eye when it changed)
        picture = tmp_path / f"page-1-{paper}.png"
        pages[0].to_image(resolution=40).save(picture)
        assert picture.stat().st_size > 5_000


def test_unknown_paper_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_main(["--paper", "a5", "--html", str(tmp_path / "r.html"), "127.0.0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a5" in err[0] and "letter" in err[0]
    assert not (tmp_path / "r.html").exists()
