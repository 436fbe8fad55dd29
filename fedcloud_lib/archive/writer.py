"""The run folder writer: every byte of an archived run goes through the scrubber.

:class:`RunWriter` writes ``parameters.yaml``, ``record.json``, ``events.jsonl``,
``notebook.ipynb`` (recorded results gathered into its metadata) and ``notebook.html``.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import threading
from pathlib import Path
from typing import Any

import nbformat

from ..scrub import Scrubber
from .files import write_private
from .results import collect_results

__all__ = ["RunWriter", "warm_html_exporter", "coalesce_streams"]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


_EXPORTER: list = []  # the warmed-up HTML exporter, shared by the runs of this process


def _html_exporter():
    if not _EXPORTER:
        from nbconvert import HTMLExporter

        _EXPORTER.append(HTMLExporter(template_name="lab"))
    return _EXPORTER[0]


def warm_html_exporter() -> None:
    """Import nbconvert and compile its templates while the kernel runs (slow, ~0.7 s)."""
    try:
        _html_exporter().from_notebook_node(nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell("warm-up"), nbformat.v4.new_code_cell("1")]))
    except Exception:  # noqa: BLE001 - rendering reports its own errors later
        pass


class RunWriter:
    """Writes one run's archive folder; every byte goes through the scrubber."""

    def __init__(self, folder: Path, scrubber: Scrubber, record: dict):
        self.folder, self.scrubber, self.record = folder, scrubber, record
        self._events_lock = threading.Lock()
        self.last_nb = None

    def write_text(self, name: str, text: str) -> None:
        write_private(self.folder / name, self.scrubber.text(text))

    def write_record(self, record: dict | None = None) -> None:
        rec = self.scrubber.data(record if record is not None else self.record)
        self.write_text("record.json", json.dumps(rec, indent=2, sort_keys=True) + "\n")

    def event(self, **ev: Any) -> None:
        ev = {"time": _now().isoformat(), **ev}
        line = json.dumps(self.scrubber.data(ev), sort_keys=True) + "\n"
        with self._events_lock:
            fd = os.open(self.folder / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)

    def notebook(self, nb, params_scrubbed: dict, injected_source: str | None) -> None:
        nb = copy.deepcopy(nb)
        coalesce_streams(nb)
        for cell in nb.cells:
            if "injected-parameters" in cell.metadata.get("tags", []) and injected_source is not None:
                cell.source = injected_source
        if "papermill" in nb.metadata:
            nb.metadata.papermill["parameters"] = params_scrubbed
        nb.metadata["fedcloud"] = {"run_id": self.record["run_id"],
                                   "runbook": self.record["runbook"],
                                   "results": collect_results(nb)}
        nb = nbformat.from_dict(self.scrubber.data(nb))
        self.write_text("notebook.ipynb", nbformat.writes(nb))
        self.last_nb = nb

    def html(self) -> str | None:
        if self.last_nb is None:
            return "no notebook to render"
        try:
            body, _ = _html_exporter().from_notebook_node(self.last_nb)
        except Exception as e:  # noqa: BLE001 - a rendering failure must not lose the run
            body = (f"<html><body><h1>{self.record['run_id']}</h1><p>HTML rendering failed: "
                    f"{type(e).__name__}: {e}</p></body></html>")
            self.write_text("notebook.html", body)
            return f"HTML rendering failed: {e}"
        self.write_text("notebook.html", body)
        return None


def coalesce_streams(nb) -> None:
    """Join consecutive stream outputs, so a secret printed in pieces is scrubbed whole."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (merged and out.get("output_type") == "stream" and
                    merged[-1].get("output_type") == "stream" and
                    merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] = merged[-1]["text"] + out["text"]
            else:
                merged.append(out)
        cell["outputs"] = merged
