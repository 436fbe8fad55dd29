"""migrate-instances: the recorded state machine of each server, and earlier runs.

Each server goes ``planned → snapshotted → transferred → created → verified → cleaned``
(or ``rolled back``).  Apply writes every transition, as it happens, to
``migration-journal.jsonl`` in the run folder (one JSON line, flushed and fsynced), so a
run killed at any step still leaves an archived record of how far each server got; the
finished run also records the table of final states (``fedcloud_lib.record``).

A re-run reads the earlier runs of the same migration id (:func:`earlier_runs`: their
recorded results through :func:`fedcloud_lib.read_results`, and their journals) to learn
what the resources cannot say themselves — which source servers an earlier run stopped,
so that a rollback starts them again.  What exists is read from the clouds (:mod:`.tags`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.index import Archive
from ..archive.results import read_results
from ..context import current_run, utcnow
from ..errors import ArchiveError

__all__ = ["STATES", "ROLLED_BACK", "JOURNAL", "RUNBOOK", "Journal", "EarlierRun",
           "earlier_runs", "stopped_by_earlier_runs"]

STATES = ("planned", "snapshotted", "transferred", "created", "verified", "cleaned")
ROLLED_BACK = "rolled back"
JOURNAL = "migration-journal.jsonl"
RUNBOOK = "migrate-instances"
#: run states in which a run never applied its plan
_NOT_APPLIED = ("planned", "stale-plan", "refused")


class Journal:
    """Where apply writes each server's transitions (the run folder, when there is one)."""

    def __init__(self, run_dir: Path | None = None) -> None:
        run_dir = run_dir if run_dir is not None else current_run().run_dir
        self.path = Path(run_dir) / JOURNAL if run_dir else None
        self.entries: list[dict[str, Any]] = []

    def write(self, server: str, source_id: str, state: str, detail: str = "") -> None:
        """Record that ``server`` reached ``state`` (or a step like ``stopped``), durably."""
        entry = {"time": utcnow().isoformat(), "server": server, "source_id": source_id,
                 "state": state, "detail": detail}
        self.entries.append(entry)
        if self.path is None:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def last_states(self) -> dict[str, str]:
        """The last state written for each source server id."""
        return {e["source_id"]: e["state"] for e in self.entries}


@dataclass(frozen=True)
class EarlierRun:
    """What an earlier run of the same migration recorded."""

    run_id: str
    status: str
    stopped: tuple[str, ...] = ()        # source server ids its plan stopped
    journal: tuple[dict, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON (what the plan shows)."""
        return {"run_id": self.run_id, "status": self.status, "stopped": list(self.stopped),
                "journal_entries": len(self.journal)}


def _read_journal(folder: Path) -> tuple[dict, ...]:
    path = folder / JOURNAL
    if not path.is_file():
        return ()
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut by the kill: the rest is still good
            continue
    return tuple(out)


def _stopped_in_plan(plan: Any) -> tuple[str, ...]:
    if not isinstance(plan, dict):
        return ()
    return tuple(s.get("inputs", {}).get("id", "") for s in plan.get("steps", [])
                 if s.get("kind") == "source server" and s.get("action") == "update"
                 and s.get("inputs", {}).get("stop"))


def earlier_runs(migration_id: str, outputs: Path | None = None) -> list[EarlierRun]:
    """The archived runs of migration ``migration_id`` that applied (or began to apply)
    their plan, oldest first (the current run excluded)."""
    me = current_run().run_id
    try:
        entries = Archive(outputs).list(runbook=RUNBOOK)
    except ArchiveError:
        return []
    out = []
    for e in entries:
        if e.run_id == me or e.status in _NOT_APPLIED:
            continue
        try:
            results = read_results(e.run_id, outputs)
        except ArchiveError:
            continue
        req = results.get("request") or {}
        if req.get("migration_id") != migration_id:
            continue
        out.append(EarlierRun(run_id=e.run_id, status=e.status,
                              stopped=_stopped_in_plan(results.get("plan")),
                              journal=_read_journal(Path(e.path))))
    return out


def stopped_by_earlier_runs(runs: list[EarlierRun]) -> set[str]:
    """Source server ids an earlier run of this migration stopped (its plan said so, or
    its journal recorded it)."""
    ids: set[str] = set()
    for r in runs:
        ids.update(i for i in r.stopped if i)
        ids.update(e.get("source_id", "") for e in r.journal if e.get("state") == "stopped")
    return ids
