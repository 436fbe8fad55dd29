"""Runs whose ``fedcloud`` process died: found by any command, archived as ``abandoned``.

:func:`sweep_abandoned` is what ``fedcloud run`` and ``fedcloud runs ...`` call first.  It
needs no notebook machinery: the run's last saved notebook is read as JSON (it was scrubbed
when written), and nbconvert is imported only to render one that was actually found.
Sweeps are serialised by :meth:`~fedcloud_lib.archive.index.Archive.sweep`.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..scrub import Scrubber
from .index import Archive
from .writer import RunWriter

__all__ = ["finalize_abandoned", "sweep_abandoned", "ABANDONED_ERROR"]

ABANDONED_ERROR = ("the fedcloud process ended without finishing this run (killed or crashed); "
                   "the notebook holds what it did until then")


def finalize_abandoned(archive: Archive, folder: Path, rec: dict, scrubber: Scrubber) -> None:
    """Archive a run whose fedcloud process died without finishing it."""
    writer = RunWriter(folder, scrubber, dict(rec))
    # the files the run wrote itself are its own; everything else gets scrubbed
    writer.written |= {"parameters.yaml", "record.json", "events.jsonl", "notebook.ipynb",
                       "notebook.html"}
    writer.written |= {str(p.relative_to(folder)) for p in (folder / "inputs").glob("*.json")}
    try:
        writer.last_nb = json.loads((folder / "notebook.ipynb").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        writer.last_nb = None
    started = _dt.datetime.fromisoformat(rec["started"])
    writer.finish(archive, "abandoned", 1, ABANDONED_ERROR, started)


def sweep_abandoned(archive: Archive, scrubber: Scrubber) -> list[str]:
    """Archive every abandoned run as such; returns their run ids."""
    done = archive.sweep(lambda folder, rec: finalize_abandoned(archive, folder, rec, scrubber))
    for run_id in done:
        archive.log_event({"event": "abandoned", "run_id": run_id})
    return done
