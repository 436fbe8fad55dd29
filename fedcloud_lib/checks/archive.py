"""``fedcloud check archive``: the audit archive verifies (``runs verify``): every run
folder matches its manifest and the index's hash chain is unbroken.  Read only."""
from __future__ import annotations

from pathlib import Path

from nagiosplugin import CheckError, Metric

from ..archive.index import Archive
from .nagios import Probe

__all__ = ["ArchiveProbe"]


class ArchiveProbe(Probe):
    """Counts the archive's problems (a broken chain, an edited or missing run)."""

    name = "archive"
    metric = "problems"
    defaults = (None, 0)

    def __init__(self, outputs: str | Path | None = None) -> None:
        super().__init__()
        self.outputs = Path(outputs) if outputs else None

    def measure(self) -> list[Metric]:
        arch = Archive(self.outputs)
        if not arch.db_path.is_file():
            raise CheckError(f"no archive at {arch.root} (no index.sqlite): set "
                             f"FEDCLOUD_OUTPUTS or --outputs")
        problems = arch.verify()
        runs = len(arch.list())
        if problems:
            first = problems[0]
            self.text = (f"{len(problems)} problem(s) in {runs} run(s) of {arch.root}: "
                         f"{first}" + (f"; and {len(problems) - 1} more" if len(problems) > 1
                                       else ""))
        else:
            self.text = f"{runs} run(s) in {arch.root} verified, chain intact"
        return [Metric("problems", len(problems), min=0, context="problems"),
                Metric("runs", runs, min=0, context="info")]
