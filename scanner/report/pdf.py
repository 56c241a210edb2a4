"""The HTML report printed to PDF by headless Chromium, where Chromium is installed.

The page is laid out by the report's own print stylesheet: `@page { size }` (from --paper)
sets the paper, which `--print-to-pdf` follows, and the running footer (scan id, "page N of
M") is drawn in CSS @page margin boxes, which Chromium prints since version 131. Margin boxes
sit in the page margin, outside the content area, so the footer can never overlap a table or
a hex dump (a `position: fixed` footer did), and the same footer appears when a reader prints
the HTML from a browser. Chromium's own header and footer (date, file URL) are turned off.
Driving the DevTools protocol for Page.printToPDF's footerTemplate would do the same with a
hundred lines of protocol code; Chromium older than 131 prints no footer (the report is
otherwise the same).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from scanner.errors import MissingToolError, OutputFileError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_GET_CHROMIUM = (
    "--pdf prints the report with headless Chromium, which is not installed: install it "
    "(Debian/Ubuntu: apt-get install chromium; Fedora: dnf install chromium; macOS: brew "
    "install --cask chromium), or set GHOSTPORT_CHROMIUM to its path, or open the HTML "
    "report in a browser and print it to PDF"
)


def find_chromium() -> str | None:
    """Path of a Chromium-family browser, or None."""
    explicit = os.environ.get("GHOSTPORT_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_path: str, pdf_path: str, timeout: float = 120) -> None:
    """Print an HTML file to PDF; MissingToolError says how to get Chromium where it is missing."""
    chromium = find_chromium()
    if chromium is None:
        raise MissingToolError(HOW_TO_GET_CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="ghostport-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={Path(pdf_path).resolve()}",
            Path(html_path).resolve().as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise OutputFileError(
                f"Chromium did not print {pdf_path!r} within {timeout:g} s"
            ) from None
    if done.returncode != 0 or not Path(pdf_path).is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise OutputFileError(f"Chromium could not print {pdf_path!r}: {last}")
