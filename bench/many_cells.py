"""Benchmark: a runbook of many short cells, `fedcloud run` against bare `papermill`.

The per-cell overhead case: a notebook of N (default 300) one-line code cells is written to
a scratch folder, then run by both commands (what an operator types), interleaved, each
`--reps` times, in one run of this script; it prints the median wall time of each and
their ratio.  Target: ratio <= 1.3.

    .venv/bin/python bench/many_cells.py [--cells 300] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

BIN = Path(sys.executable).parent


def make_notebook(folder: Path, cells: int) -> Path:
    params = new_code_cell('name: str = "bench"  # a name')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# Many cells\n\nShort cells, many of them."),
                             params, *[new_code_cell(f"x{i} = {i} * 2") for i in range(cells)]])
    nb.metadata["kernelspec"] = {"name": "fedcloud", "display_name": "fedcloud (Python 3)",
                                 "language": "python"}
    path = folder / "many.ipynb"
    nbformat.write(nb, path)
    return path


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        books = Path(tmp) / "runbooks"
        books.mkdir()
        notebook = make_notebook(books, args.cells)
        env = {**os.environ, "FEDCLOUD_OUTPUTS": f"{tmp}/outputs", "FEDCLOUD_RUNBOOKS": str(books)}
        fedcloud = [str(BIN / "fedcloud"), "run", "many", "--no-progress"]
        papermill = [str(BIN / "papermill"), str(notebook), f"{tmp}/out.ipynb", "-k", "fedcloud",
                     "--no-progress-bar"]
        f_times, p_times = [], []
        for _ in range(args.reps):
            p_times.append(timed(papermill, env))
            f_times.append(timed(fedcloud, env))
    fm, pm = statistics.median(f_times), statistics.median(p_times)
    print(f"{args.cells} short cells")
    print(f"papermill      median {pm:.3f} s  ({', '.join(f'{t:.2f}' for t in p_times)})")
    print(f"fedcloud run   median {fm:.3f} s  ({', '.join(f'{t:.2f}' for t in f_times)})")
    print(f"ratio fedcloud/papermill = {fm / pm:.3f}  (target <= 1.3; {args.reps} reps each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
