"""Regenerate scanner/schema/scan-results.schema.json from the result models."""

from __future__ import annotations

from scanner.report.schema import SCHEMA_PATH, render_schema

if __name__ == "__main__":
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    print(SCHEMA_PATH)
