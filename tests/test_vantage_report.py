"""The HTML report of a distributed scan: hosts grouped by vantage point when there are
several (one address may sit under two), and the page of one or no vantage as it was."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import TypeVar

from scanner.models import Finding, PortResult, PortState, ScanDocument, Verdict
from scanner.report.html import render_html
from tests.store_child import finding, port_result, scan_info, summary

HOST = "127.0.10.2"
Item = TypeVar("Item", PortResult, Finding)


def seen_from(item: Item, vantage: str | None) -> Item:
    return item.model_copy(update={"vantage": vantage})


class Page(HTMLParser):
    """The page as the test reads it: each vantage section with its heading, and under it
    each host heading with the rows of its table; and the rows of the appendix and of the
    findings table."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, object]] = []
        self.hosts: list[tuple[int | None, str, list[list[str]]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._depth = 0  # open <section class="vantage">: only vantage sections count
        self._text: list[str] | None = None
        self._heading: str | None = None
        self._rows: list[list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = (dict(attrs).get("class") or "").split()
        if tag == "section" and "vantage" in names:
            self.sections.append({"id": dict(attrs).get("id"), "heading": ""})
            self._depth = 1
        elif tag in ("h3", "h4") and ("vantage" in names or "host" in names):
            self._heading = "vantage" if "vantage" in names else "host"
            self._text = []
        elif tag == "table":
            self._rows = []
            table_id = dict(attrs).get("id")
            if table_id:
                self.tables[table_id] = self._rows
            elif "host-summary" in names and self.hosts:
                self._rows = self.hosts[-1][2]
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._depth:
            self._depth = 0
        elif tag in ("h3", "h4") and self._heading and self._text is not None:
            text = " ".join("".join(self._text).split())
            if self._heading == "vantage":
                self.sections[-1]["heading"] = text
            else:
                section = len(self.sections) - 1 if self._depth else None
                self.hosts.append((section, text, []))
            self._heading, self._text = None, None
        elif tag in ("td", "th") and self._rows is not None and self._text is not None:
            self._rows[-1].append(" ".join("".join(self._text).split()))
            self._text = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _document(results: list[PortResult], findings: list[Finding]) -> ScanDocument:
    return ScanDocument(
        scan=scan_info("ffff0000-0000-4000-8000-000000000001", targets=("127.0.10.1-5",)),
        results=results,
        findings=findings,
        summary=summary(len(results), 2),
        complete=True,
    )


def _read(document: ScanDocument) -> tuple[str, Page]:
    html = render_html(document)
    page = Page()
    page.feed(html)
    return html, page


def test_two_vantages_sharing_an_address_get_a_section_each() -> None:
    # Given a distributed scan that saw 127.0.10.2 from a (telnet, a finding) and from b
    # (another port open, telnet closed), and 127.0.10.4 from b only
    results = [
        seen_from(port_result(HOST, 23, service="telnet", verdict=Verdict.LEGACY), "a"),
        seen_from(port_result(HOST, 2323), "b"),
        seen_from(port_result(HOST, 23, state=PortState.FILTERED), "b"),
        seen_from(port_result("127.0.10.4", 5050), "b"),
    ]
    findings = [seen_from(finding(HOST, 23), "a")]

    # When the report is rendered
    _, page = _read(_document(results, findings))

    # Then each vantage has its section, the shared address under both, with its own rows
    assert [s["heading"] for s in page.sections] == ["Seen from vantage a", "Seen from vantage b"]
    header = ["Port", "State", "What answers", "Verdict", "Severity"]
    silent = "accepts connections, sends nothing"
    assert page.hosts == [
        (0, HOST, [header, ["23/tcp", "open", f"{silent} (as telnet does)", "legacy", "high"]]),
        (1, HOST, [header, ["2323/tcp", "open", silent, "-", "-"]]),
        (1, "127.0.10.4", [header, ["5050/tcp", "open", silent, "-", "-"]]),
    ]
    # And the appendix and the findings name the vantage of each row
    appendix = page.tables["results-table"]
    assert appendix[0][:3] == ["Vantage", "Host", "Port"]
    assert [row[:4] for row in appendix[1:]] == [
        ["a", HOST, "23/tcp", "open"],
        ["b", HOST, "23/tcp", "filtered"],
        ["b", HOST, "2323/tcp", "open"],
        ["b", "127.0.10.4", "5050/tcp", "open"],
    ]
    assert [row[1:4] for row in page.tables["findings-table"]] == [
        ["Vantage", "Host", "Port"],
        ["a", HOST, "23/tcp"],
    ]


def test_one_vantage_renders_as_a_local_scan() -> None:
    local = [
        port_result(HOST, 23, service="telnet", verdict=Verdict.LEGACY),
        port_result("127.0.10.4", 5050),
    ]
    findings = [finding(HOST, 23)]
    html, page = _read(_document(local, findings))
    one, _ = _read(
        _document([seen_from(r, "a") for r in local], [seen_from(f, "a") for f in findings])
    )
    # The page of one vantage is the page of no vantage, byte for byte
    assert one == html
    assert page.sections == []
    assert [(section, host) for section, host, _ in page.hosts] == [
        (None, HOST),
        (None, "127.0.10.4"),
    ]
    assert page.tables["results-table"][0][:2] == ["Host", "Port"]
    assert page.tables["findings-table"][0][:2] == ["Severity", "Host"]
