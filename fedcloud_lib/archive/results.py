"""Recorded results: named, JSON-able values a runbook stores in its executed notebook.

Inside a runbook::

    fedcloud_lib.record("plan", plan_dataframe)   # DataFrames are stored as records
    fedcloud_lib.record("server_id", server.id)

The value is displayed in the cell (a table or a short text) and carried in an output of
MIME type :data:`RECORD_MIME`; when the run is archived, the engine gathers those outputs
into the notebook's metadata (``metadata.fedcloud.results``), so that ``fedcloud runs
show`` and later runbooks (:func:`read_results`) read them back without re-running.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, RunbookError
from .index import Archive

__all__ = ["RECORD_MIME", "record", "to_jsonable", "collect_results", "read_results"]

RECORD_MIME = "application/vnd.fedcloud.record+json"


def to_jsonable(value: Any) -> Any:
    """Convert a value to plain JSON types (DataFrames become a list of records)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="records", date_format="iso"))
    if pd is not None and isinstance(value, pd.Series):
        return json.loads(value.to_json(date_format="iso"))

    def default(o: Any) -> Any:
        if hasattr(o, "to_dict") and callable(o.to_dict):  # our records, SDK resources
            return o.to_dict()
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, (_dt.datetime, _dt.date)):
            return o.isoformat()
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "item") and callable(o.item):  # numpy scalars
            return o.item()
        raise TypeError(f"{type(o).__name__} is not JSON-able")

    try:
        return json.loads(json.dumps(value, default=default))
    except (TypeError, ValueError) as e:
        raise RunbookError(f"record: the value cannot be stored as JSON: {e}") from e


def record(name: str, value: Any) -> Any:
    """Record a named result in the notebook being executed, and show it."""
    if not isinstance(name, str) or not name:
        raise RunbookError(f"record: the name must be a non-empty string, got {name!r}")
    data = to_jsonable(value)
    bundle: dict[str, Any] = {RECORD_MIME: {"name": name, "value": data}}
    try:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            bundle["text/html"] = value.to_html(index=False)
            bundle["text/plain"] = f"{name}:\n{value.to_string(index=False)}"
    except ImportError:  # pragma: no cover
        pass
    if "text/html" not in bundle and callable(getattr(value, "_repr_html_", None)):
        bundle["text/html"] = value._repr_html_()  # a Plan shows as its table
        bundle["text/plain"] = f"{name}:\n{value}"
    if "text/plain" not in bundle:
        text = json.dumps(data, indent=1, default=str)
        bundle["text/plain"] = f"{name} = {text if len(text) < 2000 else text[:2000] + ' ...'}"
    try:
        from IPython.display import display

        display(bundle, raw=True)
    except ImportError:  # pragma: no cover - outside a kernel
        pass
    return value


def collect_results(nb) -> dict:
    """Gather recorded results from a notebook's outputs (the last value of a name wins)."""
    results: dict = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            payload = out.get("data", {}).get(RECORD_MIME)
            if isinstance(payload, dict) and "name" in payload:
                results[payload["name"]] = payload.get("value")
    return results


def read_results(run_id: str, outputs: Path | None = None) -> dict:
    """The results recorded by an archived run."""
    run = Archive(outputs).find(run_id)
    nb_path = run.path / "notebook.ipynb"
    try:
        nb = json.loads(nb_path.read_text())
    except (OSError, ValueError) as e:
        raise ArchiveError(f"run {run_id}: cannot read {nb_path}: {e}", run_id=run_id) from e
    return nb.get("metadata", {}).get("fedcloud", {}).get("results", {})
