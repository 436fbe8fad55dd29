"""Running one package's build command on a builder.

:class:`Executor` is the small interface the burst needs (a Koji or Copr executor can
follow): ``run(builder, command, timeout_s=...)`` blocks until the command ended, timed
out, or could not be run, and says which in an :class:`ExecResult`; ``forget(builder)``
drops what the executor keeps for a builder that is gone; ``close()`` ends everything
(running commands included).

:class:`SshExecutor` runs the command over SSH (asyncssh, on an event loop of its own in a
background thread, so that the callers are plain threads and the kernel's own loop is left
alone).  The command gets a pseudo-terminal, so that closing the channel on a timeout
hangs the build's process group up on the builder.  Where a builder's SSH goes is its
address (port ``ssh.port``) unless the address map (builder name or glob → ``host[:port]``)
says otherwise: the tests send every builder to a real sshd on loopback.
"""
from __future__ import annotations

import asyncio
import fnmatch
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import asyncssh

from .request import SshSettings

__all__ = ["BuilderRef", "ExecResult", "Executor", "SshExecutor", "Tail"]


class BuilderRef(Protocol):
    name: str
    address: str | None


@dataclass(frozen=True)
class ExecResult:
    """How one command ended on one builder.

    ``exit_status`` is None when the command did not finish (timeout, or the builder
    could not run it: then ``error`` says why — an infrastructure error, not the
    package's fault)."""

    exit_status: int | None
    output: str  # the tail of stdout and stderr
    seconds: float
    timed_out: bool = False
    error: str = ""

    @property
    def infrastructure_error(self) -> bool:
        return bool(self.error) and not self.timed_out


class Executor(Protocol):
    """What the burst needs from a way of running builds."""

    def run(self, builder: BuilderRef, command: str, *, timeout_s: float) -> ExecResult: ...

    def forget(self, builder: BuilderRef) -> None: ...

    def close(self) -> None: ...


class Tail:
    """The last ``lines`` lines (at most ``chars`` characters) of a stream of text."""

    def __init__(self, lines: int = 40, chars: int = 4000):
        self._lines: deque[str] = deque(maxlen=lines)
        self._partial = ""
        self.chars = chars
        self.total = 0

    def feed(self, text: str) -> None:
        self.total += len(text)
        text = self._partial + text.replace("\r\n", "\n").replace("\r", "\n")
        *done, self._partial = text.split("\n")
        self._lines.extend(done)
        if len(self._partial) > self.chars:
            self._partial = self._partial[-self.chars:]

    def text(self) -> str:
        lines = list(self._lines) + ([self._partial] if self._partial else [])
        out = "\n".join(lines)
        return out[-self.chars:]


class SshExecutor:
    """Builds over SSH (asyncssh), one connection per builder, reused between builds."""

    def __init__(self, ssh: SshSettings, *, tail_lines: int = 40, tail_chars: int = 4000):
        self.ssh = ssh
        self.tail_lines, self.tail_chars = tail_lines, tail_chars
        self._key = asyncssh.read_private_key(ssh.key_file)
        self._known_hosts = ssh.known_hosts or None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="burst-ssh",
                                        daemon=True)
        self._thread.start()
        self._conns: dict[str, asyncssh.SSHClientConnection] = {}
        self._procs: set[asyncssh.SSHClientProcess] = set()
        self._closed = False

    # ------------------------------------------------------------------ addressing
    def target(self, builder: BuilderRef) -> tuple[str, int]:
        """(host, port) that ``builder``'s SSH goes to."""
        for pattern, dest in self.ssh.address_map:
            if fnmatch.fnmatchcase(builder.name, pattern):
                host, sep, port = dest.rpartition(":")
                if sep and port.isdigit() and host:
                    return host.strip("[]"), int(port)
                return dest.strip("[]"), self.ssh.port
        if not builder.address:
            raise OSError(f"builder {builder.name} has no address")
        return builder.address, self.ssh.port

    # ------------------------------------------------------------------ the loop side
    async def _connect(self, builder: BuilderRef) -> asyncssh.SSHClientConnection:
        conn = self._conns.get(builder.name)
        if conn is not None and not conn.is_closed():
            return conn
        host, port = self.target(builder)
        conn = await asyncio.wait_for(asyncssh.connect(
            host, port, username=self.ssh.user, client_keys=[self._key],
            known_hosts=self._known_hosts, agent_path=None, keepalive_interval=30,
            keepalive_count_max=4, login_timeout=self.ssh.connect_timeout_s),
            timeout=self.ssh.connect_timeout_s)
        self._conns[builder.name] = conn
        return conn

    async def _run(self, builder: BuilderRef, command: str, timeout_s: float) -> ExecResult:
        t0 = time.monotonic()
        tail = Tail(self.tail_lines, self.tail_chars)
        try:
            conn = await self._connect(builder)
            proc = await conn.create_process(command, term_type="dumb", encoding="utf-8",
                                             errors="replace")
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            self._drop(builder.name)
            return ExecResult(None, tail.text(), time.monotonic() - t0,
                              error=f"cannot run on {builder.name}: {type(exc).__name__}: {exc}")
        self._procs.add(proc)

        async def pump() -> None:
            while True:
                chunk = await proc.stdout.read(65536)
                if not chunk:
                    break
                tail.feed(chunk)
            await proc.wait_closed()

        try:
            await asyncio.wait_for(pump(), timeout=timeout_s)
        except asyncio.TimeoutError:
            proc.close()  # closes the channel: the pty hangs the build up
            return ExecResult(None, tail.text(), time.monotonic() - t0, timed_out=True,
                              error=f"no result after {timeout_s:g} s")
        except (OSError, asyncssh.Error) as exc:
            self._drop(builder.name)
            return ExecResult(None, tail.text(), time.monotonic() - t0,
                              error=f"lost {builder.name}: {type(exc).__name__}: {exc}")
        finally:
            self._procs.discard(proc)
        secs = time.monotonic() - t0
        if proc.exit_status is None or proc.exit_status < 0:
            # no exit status: the connection or the session went away under the build
            self._drop(builder.name)
            sig = proc.exit_signal[0] if proc.exit_signal else "none"
            return ExecResult(None, tail.text(), secs,
                              error=f"the session on {builder.name} ended without an exit "
                                    f"status (signal {sig})")
        return ExecResult(proc.exit_status, tail.text(), secs)

    def _drop(self, name: str) -> None:
        conn = self._conns.pop(name, None)
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------ the thread side
    def run(self, builder: BuilderRef, command: str, *, timeout_s: float) -> ExecResult:
        """Run ``command`` on ``builder``; block until it ends (at most ``timeout_s``)."""
        if self._closed:
            return ExecResult(None, "", 0.0, error="the executor is closed")
        fut = asyncio.run_coroutine_threadsafe(self._run(builder, command, timeout_s), self._loop)
        try:
            return fut.result()
        except (asyncio.CancelledError, RuntimeError) as exc:  # closed meanwhile
            return ExecResult(None, "", 0.0, error=f"interrupted: {type(exc).__name__}")

    def forget(self, builder: BuilderRef) -> None:
        if not self._closed:
            self._loop.call_soon_threadsafe(self._drop, builder.name)

    def close(self) -> None:
        """Close every connection (running builds are hung up) and stop the loop."""
        if self._closed:
            return
        self._closed = True

        async def shut() -> None:
            for p in list(self._procs):
                p.close()
            conns = list(self._conns.values())
            self._conns.clear()
            for c in conns:
                c.close()
            for c in conns:
                try:
                    await asyncio.wait_for(c.wait_closed(), timeout=5)
                except (asyncio.TimeoutError, OSError, asyncssh.Error):
                    pass
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=15)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> "SshExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

