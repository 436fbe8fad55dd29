"""Build results of a burst: one CSV row per package as it comes, read back to resume.

Every run writes ``burst-results.csv`` in its run folder
(:func:`fedcloud_lib.context.current_run` ``.run_dir``; a temporary folder outside the
engine), one line per package with its final status, flushed as soon as the package is
done, so that a run killed at any moment leaves what it finished behind.  The engine
archives the file with the run.  A later run of the same burst (the same ticket) reads the
CSVs of the earlier runs (:func:`previous_results`) and skips the packages already
attempted: built, FTBFS or timed out — an infrastructure error was not the package's
fault, so those are tried again.
"""
from __future__ import annotations

import csv
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..archive.index import Archive
from ..context import current_run
from ..errors import ArchiveError

__all__ = ["STATUSES", "ATTEMPTED", "CSV_NAME", "RUNBOOK", "BuildResult", "ResultsFile",
           "Previous", "previous_results", "read_csv", "run_dir"]

RUNBOOK = "mass-rebuild-burst"
CSV_NAME = "burst-results.csv"
#: the final status of a package in one run
STATUSES = ("built", "ftbfs", "timeout", "infra-error")
#: statuses a later run of the same burst does not try again
ATTEMPTED = ("built", "ftbfs", "timeout")
FIELDS = ["package", "status", "duration_s", "builder", "attempts", "started", "ended",
          "exit_status", "expected_s", "run_id", "log_tail"]


@dataclass(frozen=True)
class BuildResult:
    """The final status of one package in one run."""

    package: str
    status: str  # built | ftbfs | timeout | infra-error
    duration_s: float
    builder: str
    attempts: int
    started: str
    ended: str
    exit_status: int | None
    expected_s: float
    run_id: str
    log_tail: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_dir() -> Path:
    """Where this run's files go: the run folder, or a private temporary folder."""
    d = current_run().run_dir
    if d is None:
        d = Path(tempfile.mkdtemp(prefix="fedcloud-burst-"))
    return d


class ResultsFile:
    """The run's CSV, appended one flushed row per finished package (thread-safe)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / CSV_NAME
        self._lock = threading.Lock()
        self.rows: list[BuildResult] = []
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._f = os.fdopen(fd, "a", newline="", encoding="utf-8")
        self._w = csv.DictWriter(self._f, fieldnames=FIELDS)
        if new:
            self._w.writeheader()
            self._f.flush()

    def add(self, result: BuildResult) -> None:
        with self._lock:
            self.rows.append(result)
            self._w.writerow({k: ("" if v is None else v) for k, v in result.to_dict().items()})
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.close()


def read_csv(path: Path) -> list[BuildResult]:
    """The rows of a results CSV (a truncated last line, from a killed run, is ignored)."""
    out: list[BuildResult] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    out.append(BuildResult(
                        package=row["package"], status=row["status"],
                        duration_s=float(row["duration_s"] or 0), builder=row["builder"],
                        attempts=int(row["attempts"] or 1), started=row["started"],
                        ended=row["ended"],
                        exit_status=int(row["exit_status"]) if row["exit_status"] not in ("", None) else None,
                        expected_s=float(row["expected_s"] or 0), run_id=row["run_id"],
                        log_tail=row.get("log_tail") or ""))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError as exc:
        raise ArchiveError(f"cannot read the burst results {path}: {exc}", path=str(path)) from exc
    return out


@dataclass(frozen=True)
class Previous:
    """What earlier runs of the same burst did."""

    runs: tuple[str, ...]  # run ids read, oldest first
    results: tuple[BuildResult, ...]  # the last final status of each package

    @property
    def attempted(self) -> dict[str, BuildResult]:
        """Packages not to try again (built, FTBFS, timeout), by name."""
        return {r.package: r for r in self.results if r.status in ATTEMPTED}


def previous_results(ticket: str, archive: Archive | None = None,
                     exclude: Iterable[str] = ()) -> Previous:
    """The results of the archived runs of this burst (runbook mass-rebuild-burst, same
    ticket), from their CSVs; the latest status of a package wins."""
    archive = archive or Archive()
    skip = set(exclude)
    try:
        entries = [e for e in archive.list(runbook=RUNBOOK, ticket=str(ticket))
                   if e.run_id not in skip]
    except sqlite3.Error as exc:
        raise ArchiveError(f"cannot read the archive index {archive.db_path}: {exc}") from exc
    latest: dict[str, BuildResult] = {}
    runs = []
    for e in entries:
        p = Path(e.path) / CSV_NAME
        if not p.is_file():
            continue
        runs.append(e.run_id)
        for r in read_csv(p):
            latest[r.package] = r
    return Previous(runs=tuple(runs), results=tuple(latest.values()))
