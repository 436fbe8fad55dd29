"""The watchdog: deletes a run's builders when the process that made them dies.

A run's own ``finally`` deletes its builders on success, failure, Ctrl-C and SIGTERM; it
cannot when the kernel is killed (SIGKILL, out of memory, the engine shutting it down).
So before the first builder is created the run starts this small process in a session of
its own, with a pipe on its standard input.  The run writes ``done`` when it has deleted
its builders itself; if the pipe closes without it — whatever way the run died — the
watchdog lists the servers carrying the run's id in their metadata and deletes them (twice,
a little apart, for creates that were in flight).  It logs to
``<archive>/.burst/watchdog-<run>.log``, outside the run's folder, whose manifest the engine
computes when the run ends.

If the watchdog dies too (the machine went away), the next run of the burst deletes the
leftovers in its plan, and ``fedcloud burst sweep`` does it by hand.

    fedcloud_lib.burst.watchdog.main(["--run-id", RUN, "--cloud", NAME])   (what spawn() starts)
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ..cloud import connect
from ..config import settings
from .connections import ThreadConnections, factory_for
from .sweep import delete_servers, run_builders

__all__ = ["Watchdog", "spawn", "main"]

DONE = b"done\n"


class Watchdog:
    """The run's side of the watchdog."""

    def __init__(self, proc: subprocess.Popen, pipe: IO[bytes]):
        self.proc, self._pipe = proc, pipe

    @property
    def pid(self) -> int:
        return self.proc.pid

    def done(self) -> None:
        """The run deleted its builders itself: the watchdog may end without a sweep."""
        try:
            self._pipe.write(DONE)
            self._pipe.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=2)  # it ends as soon as it reads the pipe
        except subprocess.TimeoutExpired:
            pass


def spawn(run_id: str, cloud: str | None, log_dir: Path | None = None) -> Watchdog:
    """Start the watchdog of ``run_id`` (its own session: signals to the run's process
    group do not reach it)."""
    log_dir = log_dir or settings().outputs / ".burst"
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    args = [sys.executable, "-c", "import sys; from fedcloud_lib.burst.watchdog import main; "
            "sys.exit(main(sys.argv[2:]))", "fedcloud-burst-watchdog", "--run-id", run_id]
    if cloud:
        args += ["--cloud", cloud]
    with open(log_dir / f"watchdog-{run_id}.log", "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                cwd=str(Path(__file__).resolve().parents[2]))
    assert proc.stdin is not None
    return Watchdog(proc, proc.stdin)


def _say(msg: str) -> None:
    print(f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="delete a burst run's builders when the run dies")
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--cloud", default=None)
    ap.add_argument("--again-after", type=float, default=15.0)
    a = ap.parse_args(argv)
    _say(f"watching run {a.run_id} (pid {os.getppid()})")
    data = sys.stdin.buffer.read()  # until the run closes the pipe, however it ends
    if data.endswith(DONE):
        _say("the run tore its builders down itself")
        return 0
    _say("the run ended without tearing down: deleting its builders")
    conns = ThreadConnections(factory_for(connect(a.cloud)))
    problems: list[str] = []
    for attempt in range(2):
        servers = run_builders(conns.get(), a.run_id)
        _say(f"sweep {attempt + 1}: {len(servers)} builder(s): "
             + ", ".join(s.name for s in servers))
        problems = delete_servers(conns, [s.id for s in servers], wait=600)
        if attempt == 0:
            time.sleep(a.again_after)
    for p in problems:
        _say(f"problem: {p}")
    conns.close()
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
