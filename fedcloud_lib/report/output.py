"""capacity-report, output: the tables as CSV (and the figures as PNG) next to the run.

In a headless run the directory is the run folder
(``fedcloud_lib.context.current_run().run_dir``), so the files are archived and covered
by the run's manifest.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..context import current_run
from .capacity import Report

__all__ = ["target_dir", "write"]


def _write(path: Path, data: bytes) -> None:
    """Owner-only, atomic (write then rename), like every file of a run folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def target_dir(explicit: str = "") -> Path | None:
    """Where the files go: ``explicit``, else the run folder (None outside a run)."""
    if explicit:
        return Path(explicit)
    return current_run().run_dir


def write(report: Report, directory: str | Path | None,
          images: dict[str, bytes] | None = None) -> list[str]:
    """Write ``<table>.csv`` for every table (and ``<figure>.png``) under
    ``directory/report/``; returns the paths written (none without a directory)."""
    if directory is None:
        return []
    out = Path(directory) / "report"
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, frame in report.tables().items():
        path = out / f"{name}.csv"
        _write(path, frame.to_csv(index=False).encode())
        written.append(str(path))
    for name, data in (images or {}).items():
        path = out / f"{name}.png"
        _write(path, data)
        written.append(str(path))
    return written
