"""Every runbook in runbooks/ keeps the contract (runbooks/README.md)."""
from pathlib import Path

import nbformat
import pytest

from fedcloud_lib.runbooks import list_runbooks

ROOT = Path(__file__).resolve().parents[2]
BOOKS = list_runbooks(ROOT / "runbooks")
pytestmark = pytest.mark.unit


def test_there_are_runbooks():
    assert BOOKS, "runbooks/ holds no runbook"


@pytest.mark.parametrize("rb", BOOKS, ids=[b.name for b in BOOKS])
def test_runbook_contract(rb):
    nb = nbformat.read(rb.path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and rb.title != rb.name and rb.purpose
    assert len(rb.parameters) >= 1  # exactly one tagged cell, parsed with every declaration
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit without outputs"
    assert nb.metadata.get("kernelspec", {}).get("name") == "fedcloud"
    names = {p.name for p in rb.parameters}
    if "approve" in names:
        assert next(p for p in rb.parameters if p.name == "approve").default is False
