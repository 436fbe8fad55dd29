"""The run folder writer: every value of an archived run goes through the scrubber.

:class:`RunWriter` writes ``parameters.yaml``, ``record.json``, ``events.jsonl``,
``notebook.ipynb`` (recorded results gathered into its metadata), ``notebook.html`` and
``inputs/*.json``, and finishes a run (:meth:`RunWriter.finish`).

Secrets are replaced in **values before they are serialised**: the strings of a
notebook's cells and outputs, of a record, an event or the parameters are scrubbed, then
written as JSON or YAML, so no scrubbing ever touches syntax (a quote, ``true``) and every
archived file parses.  The run's own metadata (run id, times, status, chain, cell ids and
timings, output and MIME types) is not user data and is never scrubbed: a secret that
happens to equal the year cannot rewrite a run id or a timestamp.

Files the kernel writes into its run folder (a CSV report, say) are archived too: the
finisher scrubs every text file it did not write itself, structured files value by value
(JSON, JSON lines, CSV/TSV, YAML; rewritten only if something was replaced), other text
line by line; a binary file holding a secret's bytes is withheld (removed, noted in the
events), and links or special files are removed (the archive holds regular files only).

This module does not import nbformat: ``fedcloud runs list`` finalises abandoned runs
without notebook machinery (HTML rendering imports nbconvert only when it renders).
"""
from __future__ import annotations

import copy
import csv
import datetime as _dt
import io
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchiveError
from ..scrub import Scrubber
from .files import MANIFEST, append_line, walk_entries, write_private
from .index import Archive, RunEntry
from .results import collect_results

__all__ = ["RunWriter", "warm_html_exporter", "coalesce_streams", "RECORD_METADATA",
           "EVENT_METADATA", "scrub_notebook"]

# record.json keys that are the run's own metadata (never scrubbed); every other value
# (operator, cloud, ticket, error, results, ...) is scrubbed
RECORD_METADATA = frozenset({
    "run_id", "runbook", "runbook_version", "fedcloud_version", "host", "kernel", "approve",
    "started", "ended", "duration", "status", "exit_code", "pid", "pid_started", "chain",
    "plan_of", "took_over_lock_from"})
EVENT_METADATA = frozenset({"time", "event", "status", "run_id", "runbook", "index", "id",
                            "cell_type", "start", "end", "duration", "exit_code", "bytes"})
# notebook metadata that is the run's own (papermill's timings, the kernel, our run id)
_NB_METADATA_KEPT = {"kernelspec", "language_info"}
_PAPERMILL_KEPT = {"start_time", "end_time", "duration", "exception", "version", "input_path",
                   "output_path", "environment_variables", "default_parameters"}
_FEDCLOUD_KEPT = {"run_id", "runbook"}


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
        import nbformat

        _html_exporter().from_notebook_node(nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell("warm-up"), nbformat.v4.new_code_cell("1")]))
    except Exception:  # noqa: BLE001 - rendering reports its own errors later
        pass


# ------------------------------------------------------------------ notebooks
def _scrub_output(s: Scrubber, out: dict) -> dict:
    out = dict(out)
    if "text" in out:  # stream
        out["text"] = s.data(out["text"])
    for key in ("ename", "evalue", "traceback"):
        if key in out:
            out[key] = s.data(out[key])
    if isinstance(out.get("data"), dict):  # MIME type -> value: the types are syntax
        out["data"] = {mime: s.data(v) for mime, v in out["data"].items()}
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: s.data(v) for k, v in out["metadata"].items()}
    return out


def scrub_notebook(s: Scrubber, nb: dict) -> dict:
    """A copy of a notebook (as plain dicts) with every user value scrubbed: cell sources,
    outputs, widget state, recorded results and parameters; not its structure, ids,
    types, timings or kernel."""
    cells = []
    for cell in nb.get("cells", []):
        c = {k: v for k, v in cell.items() if k not in ("source", "outputs", "attachments")}
        c["source"] = s.data(cell.get("source", ""))
        if "outputs" in cell:
            c["outputs"] = [_scrub_output(s, o) for o in cell["outputs"]]
        if "attachments" in cell:
            c["attachments"] = s.data(cell["attachments"], keys=False)
        cells.append(c)
    meta = {}
    for k, v in nb.get("metadata", {}).items():
        if k in _NB_METADATA_KEPT:
            meta[k] = v
        elif k == "papermill" and isinstance(v, dict):
            meta[k] = {pk: (pv if pk in _PAPERMILL_KEPT else s.data(pv)) for pk, pv in v.items()}
        elif k == "fedcloud" and isinstance(v, dict):
            meta[k] = {fk: (fv if fk in _FEDCLOUD_KEPT else s.data(fv)) for fk, fv in v.items()}
        else:  # widget state and anything else a run may have put there
            meta[k] = s.data(v)
    return {**{k: v for k, v in nb.items() if k not in ("cells", "metadata")},
            "cells": cells, "metadata": meta}


def _plain(obj: Any) -> Any:
    """NotebookNode -> dict, shallowly enough for scrubbing (which copies anyway)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def coalesce_streams(nb) -> None:
    """Join consecutive stream outputs, so a secret printed in pieces is scrubbed whole."""
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (merged and out.get("output_type") == "stream" and
                    merged[-1].get("output_type") == "stream" and
                    merged[-1].get("name") == out.get("name")):
                prev = merged[-1]
                text = out["text"] if isinstance(out["text"], str) else "".join(out["text"])
                before = prev["text"] if isinstance(prev["text"], str) else "".join(prev["text"])
                merged[-1] = {**prev, "text": before + text}
            else:
                merged.append(out)
        cell["outputs"] = merged


def notebook_json(nb: dict) -> str:
    """A notebook as nbformat writes it (1-space indent, sorted keys, UTF-8)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ files the kernel wrote
def _scrub_json_text(s: Scrubber, text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return s.text(text)
    clean = s.data(data)
    return text if clean == data else json.dumps(clean, indent=1, ensure_ascii=False) + "\n"


def _scrub_lines_json(s: Scrubber, text: str) -> str:
    return "".join(_scrub_json_text(s, line).rstrip("\n") + "\n" if line.strip() else line
                   for line in text.splitlines(keepends=True))


def _scrub_csv(s: Scrubber, text: str, delimiter: str) -> str:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error:
        return s.text(text)
    clean = [[s.text(c) for c in row] for row in rows]
    if clean == rows:
        return text
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(clean)
    return buf.getvalue()


def _scrub_yaml(s: Scrubber, text: str) -> str:
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return s.text(text)
    clean = s.data(data)
    return text if clean == data else yaml.safe_dump(clean, sort_keys=False, allow_unicode=True)


def scrub_file_text(s: Scrubber, name: str, text: str) -> str:
    """A text file's content with its secrets replaced, keeping its format valid."""
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        return _scrub_json_text(s, text)
    if suffix in (".jsonl", ".ndjson"):
        return _scrub_lines_json(s, text)
    if suffix in (".csv", ".tsv"):
        return _scrub_csv(s, text, "\t" if suffix == ".tsv" else ",")
    if suffix in (".yaml", ".yml"):
        return _scrub_yaml(s, text)
    return s.text(text)


class RunWriter:
    """Writes one run's archive folder; every value goes through the scrubber first."""

    def __init__(self, folder: Path, scrubber: Scrubber, record: dict):
        self.folder, self.scrubber, self.record = folder, scrubber, record
        self._events_lock = threading.Lock()
        self.last_nb: dict | None = None
        self.written: set[str] = set()  # files this writer wrote (relative names)
        self.problems: list[str] = []   # archive writes that failed

    # ---------------------------------------------------------------- plain files
    def _write(self, name: str, text: str) -> None:
        write_private(self.folder / name, text)
        self.written.add(name)

    def write_text(self, name: str, text: str) -> None:
        """Write free text (scrubbed as text: no syntax to keep)."""
        self._write(name, self.scrubber.text(text))

    def write_json(self, name: str, value: Any) -> None:
        self._write(name, json.dumps(self.scrubber.data(value), indent=1, sort_keys=True,
                                     default=str, ensure_ascii=False) + "\n")

    def write_yaml(self, name: str, value: Any) -> None:
        self._write(name, yaml.safe_dump(self.scrubber.data(value), sort_keys=False,
                                         allow_unicode=True))

    # ---------------------------------------------------------------- record and events
    def safe_record(self, record: dict | None = None) -> dict:
        """The record as archived: user values scrubbed, the run's metadata as it is."""
        rec = record if record is not None else self.record
        return {k: (v if k in RECORD_METADATA else self.scrubber.data(v)) for k, v in rec.items()}

    def write_record(self, record: dict | None = None) -> None:
        rec = self.safe_record(record)
        self._write("record.json", json.dumps(rec, indent=2, sort_keys=True, default=str,
                                              ensure_ascii=False) + "\n")

    def event(self, **ev: Any) -> None:
        ev = {"time": _now().isoformat(), **ev}
        ev = {k: (v if k in EVENT_METADATA else self.scrubber.data(v)) for k, v in ev.items()}
        line = json.dumps(ev, sort_keys=True, default=str, ensure_ascii=False)
        with self._events_lock:
            append_line(self.folder / "events.jsonl", line)
            self.written.add("events.jsonl")

    # ---------------------------------------------------------------- the notebook
    def notebook(self, nb, params_scrubbed: dict, injected_source: str | None) -> None:
        """Save the executing notebook: scrubbed, recorded results in its metadata."""
        nb = copy.deepcopy(_plain(nb))
        coalesce_streams(nb)
        for cell in nb["cells"]:
            if "injected-parameters" in cell.get("metadata", {}).get("tags", []) \
                    and injected_source is not None:
                cell["source"] = injected_source
        if "papermill" in nb.get("metadata", {}):
            nb["metadata"]["papermill"]["parameters"] = params_scrubbed
        nb.setdefault("metadata", {})["fedcloud"] = {
            "run_id": self.record["run_id"], "runbook": self.record["runbook"],
            "results": collect_results(nb)}
        nb = scrub_notebook(self.scrubber, nb)
        self._write("notebook.ipynb", notebook_json(nb))
        self.last_nb = nb

    def html(self) -> str | None:
        if self.last_nb is None:
            return "no notebook to render"
        try:
            import nbformat

            body, _ = _html_exporter().from_notebook_node(nbformat.from_dict(self.last_nb))
        except Exception as e:  # noqa: BLE001 - a rendering failure must not lose the run
            body = (f"<html><body><h1>{self.record['run_id']}</h1><p>HTML rendering failed: "
                    f"{type(e).__name__}: {e}</p></body></html>")
            self.write_text("notebook.html", body)
            return f"HTML rendering failed: {e}"
        # rendered from the scrubbed notebook; scrubbed again as text (HTML has no syntax a
        # replacement can break that a browser cares about)
        self.write_text("notebook.html", body)
        return None

    # ---------------------------------------------------------------- the kernel's files
    def scrub_foreign_files(self) -> list[str]:
        """Scrub the files of the run folder this writer did not write (see the module
        docstring); returns what was done, one line per file touched."""
        notes = []
        for rel, p, st in walk_entries(self.folder):
            if rel in self.written or rel == MANIFEST:
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = "link" if stat.S_ISLNK(st.st_mode) else "special file"
                os.unlink(p)
                notes.append(f"{rel}: removed (a {kind}; the archive holds regular files only)")
                continue
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                data = f.read()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                if any(sec.encode() in data for sec in self.scrubber.secrets if len(sec) >= 4):
                    os.unlink(p)
                    notes.append(f"{rel}: withheld (a binary file holding a secret)")
                continue
            clean = scrub_file_text(self.scrubber, rel, text)
            if clean != text:
                write_private(p, clean)
                notes.append(f"{rel}: secrets replaced")
        return notes

    # ---------------------------------------------------------------- finishing
    def _attempt(self, what: str, fn, *args) -> Any:
        try:
            return fn(*args)
        except OSError as e:
            self.problems.append(f"{what}: {e.strerror or e}")
            return None

    def finish(self, archive: Archive, status: str, exit_code: int, error: str | None,
               started: _dt.datetime, results: dict | None = None) -> RunEntry:
        """Render, scrub the kernel's files, seal the record and give the run its place in
        the chain.  A write that fails (disk full, file too large) does not lose the run:
        it ends ``failed`` with the failure named in its error, as far as the disk allows.
        """
        rec = self.record
        ended = _now()
        if results is None:
            results = (self.last_nb or {}).get("metadata", {}).get("fedcloud", {}).get("results", {})
        html_problem = self._attempt("notebook.html", self.html)
        if html_problem:
            self.problems.append(html_problem)
        for note in self._attempt("scrubbing the run folder", self.scrub_foreign_files) or []:
            self._attempt("events.jsonl", lambda n=note: self.event(event="file", message=n))
        if self.problems and status in ("succeeded", "planned"):
            status, exit_code = "failed", 1
        if self.problems:
            error = "; ".join(x for x in (error, "the archive could not be completely written: "
                                          + "; ".join(self.problems)) if x)
        rec.update(status=status, exit_code=exit_code, error=error or None,
                   ended=ended.isoformat(),
                   duration=round((ended - started).total_seconds(), 3), results=results)
        safe = self.safe_record()
        self._attempt("events.jsonl", lambda: self.event(
            event="run", status=status, exit_code=exit_code, error=safe["error"]))
        try:
            entry = archive.append(self.folder, safe, self.write_record)
        except OSError as e:
            raise ArchiveError(f"run {rec['run_id']} could not be archived: {e.strerror or e}; "
                               f"its folder {self.folder} holds what was written",
                               run_id=rec["run_id"]) from e
        rec.update(chain=safe.get("chain"))
        return entry
