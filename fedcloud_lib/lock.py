"""One run per (runbook, ticket) at a time.

The lock is an ``flock`` on ``<outputs>/.locks/<runbook>@<ticket>-<hash>.lock``: the name
shows a readable (shortened, sanitised) runbook and ticket, and ``<hash>`` is taken from
the exact pair, so tickets ``a/b`` and ``a_b`` never share a lock and a ticket of any
length fits in a file name.  The kernel only
releases it when the process holding it ends, so a lock whose process is gone (killed,
crashed, machine rebooted) is taken over by the next run without anyone cleaning up.  The
file also says who holds it, so a refused run can name the run that holds it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

from .errors import LockError

__all__ = ["RunLock"]


def _safe(s: str, n: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)[:n] or "_"


def lock_name(runbook: str, ticket: str | None) -> str:
    """The lock file's name for (runbook, ticket): readable, bounded, one per exact pair."""
    digest = hashlib.sha256(f"{runbook}\0{ticket or ''}".encode()).hexdigest()[:16]
    return f"{_safe(runbook)}@{_safe(ticket or '-')}-{digest}.lock"


class RunLock:
    def __init__(self, locks_dir: Path, runbook: str, ticket: str | None):
        self.runbook, self.ticket = runbook, ticket or ""
        self.path = Path(locks_dir) / lock_name(runbook, self.ticket)
        self._fd: int | None = None
        self.took_over: dict | None = None  # the stale holder we replaced, if any

    @property
    def what(self) -> str:
        return f"{self.runbook} for ticket {self.ticket}" if self.ticket else self.runbook

    def holder(self) -> dict:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                return json.loads(f.read(4096) or b"{}")
        except (OSError, ValueError):
            return {}

    @property
    def fd(self) -> int | None:
        """The open lock file (whoever holds it open holds the lock)."""
        return self._fd

    def acquire(self, run_id: str) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = self.holder()
            raise LockError(
                f"refused: {self.what} is already running as run {h.get('run_id', '?')} "
                f"(pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('since', '?')}); "
                f"wait for it to finish or stop it", holder=h, lock=str(self.path)) from None
        previous = self.holder()
        if previous.get("run_id"):
            # the file names a holder but nobody holds the flock: its process is gone
            self.took_over = previous
        info = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean release leaves no holder behind
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
