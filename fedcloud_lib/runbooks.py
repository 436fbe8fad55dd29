"""The runbook catalog: find runbooks, read their title, purpose and parameters."""
from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import nbformat

from .config import settings
from .errors import ParameterError, RunbookError
from .params import ParamSpec, parse_parameters_cell

__all__ = ["Runbook", "list_runbooks", "get_runbook"]


@dataclass(frozen=True)
class Runbook:
    """A runbook notebook: its name (file stem), path, title, purpose, parameters and version."""
    name: str
    path: Path

    @cached_property
    def notebook(self) -> nbformat.NotebookNode:
        """The notebook as read by nbformat (RunbookError if unreadable)."""
        try:
            return nbformat.read(self.path, as_version=4)
        except Exception as e:  # nbformat raises several kinds
            raise RunbookError(f"runbook {self.name}: {self.path} is not a readable notebook: {e}",
                               runbook=self.name) from e

    @cached_property
    def title(self) -> str:
        """The ``# Title`` of the first markdown cell."""
        first = self._first_markdown()
        m = re.search(r"^#\s+(.+)$", first, re.M)
        return m.group(1).strip() if m else self.name

    @cached_property
    def purpose(self) -> str:
        """The first sentence of the paragraph after the title."""
        text = re.sub(r"^#.*$", "", self._first_markdown(), flags=re.M).strip()
        para = re.split(r"\n\s*\n", text)[0] if text else ""
        para = " ".join(para.split())
        m = re.match(r"(.+?[.!?])(\s|$)", para)
        return m.group(1) if m else para

    def _first_markdown(self) -> str:
        cells = self.notebook.cells
        if not cells or cells[0].cell_type != "markdown":
            raise RunbookError(f"runbook {self.name}: the first cell must be markdown with the "
                               f"SOP's title and purpose", runbook=self.name)
        return cells[0].source

    @cached_property
    def parameters_cell(self):
        """The one cell tagged ``parameters`` (RunbookError unless exactly one)."""
        tagged = [c for c in self.notebook.cells if "parameters" in c.metadata.get("tags", [])]
        if len(tagged) != 1:
            raise RunbookError(f"runbook {self.name}: needs exactly one cell tagged 'parameters', "
                               f"found {len(tagged)}", runbook=self.name)
        return tagged[0]

    @cached_property
    def parameters(self) -> list[ParamSpec]:
        """The declared parameters, parsed from the parameters cell."""
        return parse_parameters_cell(self.parameters_cell.source, where=f"runbook {self.name}")

    @cached_property
    def version(self) -> str:
        """The git commit of the runbook if it is committed unchanged, else a content hash."""
        try:
            dirty = subprocess.run(["git", "status", "--porcelain", "--", self.path.name],
                                   cwd=self.path.parent, capture_output=True, text=True, timeout=10)
            commit = subprocess.run(["git", "log", "-1", "--format=%H", "--", self.path.name],
                                    cwd=self.path.parent, capture_output=True, text=True, timeout=10)
            if dirty.returncode == 0 and not dirty.stdout.strip() and commit.stdout.strip():
                return "git:" + commit.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
        return "sha256:" + hashlib.sha256(self.path.read_bytes()).hexdigest()


def list_runbooks(directory: Path | None = None) -> list[Runbook]:
    """Every runbook of the runbook directory (``FEDCLOUD_RUNBOOKS``), sorted by name."""
    d = directory or settings().runbooks
    if not d.is_dir():
        raise RunbookError(f"runbook directory {d} does not exist (set FEDCLOUD_RUNBOOKS)")
    return [Runbook(p.stem, p) for p in sorted(d.glob("*.ipynb"))]


def get_runbook(name: str, directory: Path | None = None) -> Runbook:
    """The runbook called ``name``; ParameterError naming the available ones if there is none."""
    books = {r.name: r for r in list_runbooks(directory)}
    if name not in books:
        raise ParameterError(
            f"runbook: {name!r} is not a runbook; available: {', '.join(books) or '(none)'}",
            runbook=name)
    return books[name]
