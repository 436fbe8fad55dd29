"""`pytest --nbval-lax runbooks/`: every runbook, top to bottom with its defaults in a fresh
kernel, stops cleanly at its parameter form — no traceback, no cloud call, nothing written."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.runbook


def nbval(target: Path, tmp_path: Path) -> tuple[int, dict[str, list[tuple[str, str, str]]], str]:
    """Run nbval on ``target``; (exit code, notebook -> [(cell, outcome, message)], output)."""
    report = tmp_path / f"nbval-{target.name}.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCLOUD_RUN")}
    env["FEDCLOUD_OUTPUTS"] = str(tmp_path / "outputs")
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", str(target),
                        "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    cells: dict[str, list[tuple[str, str, str]]] = {}
    for tc in ET.parse(report).getroot().iter("testcase"):
        child = next(iter(tc), None)
        outcome = "passed" if child is None else child.tag
        msg = "" if child is None else child.attrib.get("message", "")
        cells.setdefault(tc.attrib["classname"], []).append((tc.attrib["name"], outcome, msg))
    return r.returncode, cells, r.stdout + r.stderr


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file()}


def test_every_runbook_stops_at_its_form(tmp_path):
    books = sorted((ROOT / "runbooks").glob("*.ipynb"))
    before = digest(ROOT / "runbooks")
    code, cells, out = nbval(ROOT / "runbooks", tmp_path)
    assert code == 0, out[-3000:]
    assert {f"runbooks.{b.name}" for b in books} == set(cells)
    for book, results in cells.items():
        # Cell 0 is the parameters cell, Cell 1 the form: it stops there, the rest is skipped
        assert results[0][:2] == ("Cell 0", "passed") and results[1][:2] == ("Cell 1", "passed")
        later = results[2:]
        assert later and all(o == "skipped" and "stopped at its parameter form" in m
                             for _, o, m in later), (book, later)
    assert digest(ROOT / "runbooks") == before  # nothing written next to the runbooks
    assert not (tmp_path / "outputs").exists()  # and nothing archived


def test_a_runbook_without_its_form_would_run_on_and_fail(tmp_path):
    d = tmp_path / "books"
    d.mkdir()
    shutil.copy(ROOT / "runbooks" / "conftest.py", d)
    nb = nbformat.read(ROOT / "runbooks" / "instance-retire.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "fedcloud_lib.form(" not in c.source]
    nbformat.write(nb, d / "no-form.ipynb")
    code, cells, out = nbval(d, tmp_path)
    assert code == 1, out[-2000:]
    outcomes = [o for _, o, _ in next(iter(cells.values()))]
    assert "failure" in outcomes and "skipped" not in outcomes
