"""Every runbook shows its parameter form: the cell right after the parameters cell is the
one-line form call (runbooks/README.md), marked for nbval as the expected stop."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOKS = sorted((ROOT / "runbooks").glob("*.ipynb"))
FORM_CELL = "# NBVAL_RAISES_EXCEPTION\nimport fedcloud_lib\nfedcloud_lib.form(globals())"
pytestmark = pytest.mark.unit


def form_problem(path: Path) -> str | None:
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        return "no single parameters cell"
    nxt = nb.cells[tagged[0] + 1] if tagged[0] + 1 < len(nb.cells) else None
    if nxt is None or nxt.cell_type != "code" or nxt.source.strip() != FORM_CELL:
        return f"the cell after the parameters cell must be exactly:\n{FORM_CELL}"
    if "raises-exception" in nxt.metadata.get("tags", []):
        return "no raises-exception tag: JupyterLab's Run All would run past the form"
    calls = sum(c.source.count("fedcloud_lib.form(") for c in nb.cells if c.cell_type == "code")
    return None if calls == 1 else f"{calls} form calls"


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_every_runbook_calls_the_form_right_after_its_parameters(path):
    assert form_problem(path) is None, f"{path.name}: {form_problem(path)}"


def test_the_check_finds_a_runbook_without_the_form(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T\n\nDoes."),
                nbformat.v4.new_code_cell("x: int = 1  # x", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import fedcloud_lib")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    assert "must be exactly" in form_problem(tmp_path / "bad.ipynb")
    nb.cells.insert(2, nbformat.v4.new_code_cell(FORM_CELL, metadata={"tags": ["raises-exception"]}))
    nbformat.write(nb, tmp_path / "tagged.ipynb")
    assert "raises-exception" in form_problem(tmp_path / "tagged.ipynb")
    del nb.cells[2].metadata["tags"]
    nbformat.write(nb, tmp_path / "good.ipynb")
    assert form_problem(tmp_path / "good.ipynb") is None
