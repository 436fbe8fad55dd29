"""Benchmark: `fedcloud run` against bare `papermill` on the same fixture notebook.

Both are run as commands (what an operator types), interleaved, N times each, in one
run of this script; it prints the median wall time of each and their ratio.
Target: ratio <= 1.15.

    .venv/bin/python bench/engine_overhead.py [--reps 7]
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

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "tests/fixtures/runbooks/ok.ipynb"
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FEDCLOUD_OUTPUTS": f"{tmp}/outputs",
               "FEDCLOUD_RUNBOOKS": str(NOTEBOOK.parent)}
        fedcloud = [str(BIN / "fedcloud"), "run", "ok", "-p", "name", "bench", "--no-progress"]
        papermill = [str(BIN / "papermill"), str(NOTEBOOK), f"{tmp}/out.ipynb", "-k", "fedcloud",
                     "-p", "name", "bench", "--no-progress-bar"]
        timed(fedcloud, env), timed(papermill, env)  # warm the page cache once each
        f_times, p_times = [], []
        for _ in range(args.reps):
            p_times.append(timed(papermill, env))
            f_times.append(timed(fedcloud, env))
    fm, pm = statistics.median(f_times), statistics.median(p_times)
    print(f"papermill      median {pm:.3f} s  ({', '.join(f'{t:.2f}' for t in p_times)})")
    print(f"fedcloud run   median {fm:.3f} s  ({', '.join(f'{t:.2f}' for t in f_times)})")
    print(f"ratio fedcloud/papermill = {fm / pm:.3f}  (target <= 1.15; {args.reps} reps each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
