"""The JSON Schema of the scan document, generated from the result models.

The committed copy is `scanner/schema/scan-results.schema.json`; a test fails when it drifts
from the models. Regenerate with `python scripts/write_schema.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scanner.models import SCHEMA_VERSION, ScanDocument

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "scan-results.schema.json"


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scan document."""
    schema = ScanDocument.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://ghostport.invalid/schema/scan-results-{SCHEMA_VERSION}.json",
        **schema,
    }


def render_schema() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(results_schema(), indent=2, sort_keys=True) + "\n"
