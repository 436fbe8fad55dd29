"""Progress reported by a cell reaches the terminal while the cell runs (a real kernel)."""
from __future__ import annotations

import json
import subprocess
import threading

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from fedcloud_lib import progress
from tests.conftest import FEDCLOUD, ROOT

pytestmark = pytest.mark.runbook


def _runbook(folder, ack):
    params = new_code_cell('ticket: str = ""  # request ticket')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        new_markdown_cell("# Talker\n\nReports progress while it works. A fixture."), params,
        new_code_cell("import pathlib, time\nfrom fedcloud_lib import progress\n"
                      "import fedcloud_lib as fc"),
        # the cell waits for the test to have seen its line on the terminal: a line
        # printed only when the cell ends would make it time out and fail
        new_code_cell(f"progress.say('ping from the kernel')\nack = pathlib.Path({str(ack)!r})\n"
                      "deadline = time.monotonic() + 60\n"
                      "while not ack.exists() and time.monotonic() < deadline:\n"
                      "    time.sleep(0.05)\n"
                      "assert ack.exists(), 'the engine did not show the line while the cell ran'"),
        new_code_cell("with progress.task(3, 'count') as t:\n"
                      "    for i in range(3):\n"
                      "        t.advance(text=f'item {i}')"),
        new_code_cell("h = fc.Handlers()\nh.on('server', 'create')(lambda ctx, step: None)\n"
                      "fc.walk(fc.Plan('p', (fc.Step('create', 'server', 'web-1'),)), h, None)"),
    ])
    nb.metadata["kernelspec"] = {"name": "fedcloud", "display_name": "fedcloud (Python 3)",
                                 "language": "python"}
    nbformat.write(nb, folder / "talker.ipynb")


def test_progress_lines_stream_above_the_bar(outputs, tmp_path, monkeypatch):
    books = tmp_path / "books"
    books.mkdir()
    ack = tmp_path / "ack"
    _runbook(books, ack)
    monkeypatch.setenv("FEDCLOUD_RUNBOOKS", str(books))
    proc = subprocess.Popen([*FEDCLOUD, "run", "talker"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen: list[str] = []

    def read():
        for line in proc.stderr:
            seen.append(line)
            if "ping from the kernel" in line:
                ack.write_text("seen")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert proc.wait(timeout=240) == 0, "".join(seen)
    reader.join(10)
    lines = [x.strip() for x in "".join(seen).replace("\r", "\n").splitlines()]
    assert "ping from the kernel" in lines
    assert "count: 2/3 item 1" in lines and "[1/1] create server web-1 ..." in lines
    assert any(x.startswith("Executing") for x in lines)  # the cell bar is still there
    (folder,) = outputs.glob("talker/*/*")
    nb = json.loads((folder / "notebook.ipynb").read_text())
    bundles = [o["data"] for c in nb["cells"] for o in c.get("outputs", [])
               if o.get("output_type") == "display_data"]
    assert {"type": "say", "text": "ping from the kernel", "v": 1} in [
        b.get(progress.MIME) for b in bundles]
    assert "count: 3/3 item 2" in ["".join(b["text/plain"]) for b in bundles]
