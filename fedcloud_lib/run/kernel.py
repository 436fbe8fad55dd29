"""The kernel side of a run: a private, contained kernel and papermill's engine with our hooks.

* :func:`kernel_manager_class` starts the kernel talking over unix sockets in a private
  directory, with IPython's history off (:data:`KERNEL_ARGS`: the injected parameters
  would otherwise be kept in ``history.sqlite``), its own stdout/stderr going to a private
  file instead of ``fedcloud run``'s terminal (a child process's raw output, e.g.
  ``os.system``, is not scrubbed there), and its process group handed to a
  :class:`KernelGroup`.
* :class:`KernelGroup` kills the kernel's process group (the kernel and every process it
  started) on every way a run ends: at the end of the run, when the kernel died, and —
  through a tiny watchdog process that holds the run's lock — when ``fedcloud run``
  itself is killed.  A process that starts its own session (a daemon) leaves the group
  on purpose and is not killed.
* :class:`RunEngine` executes the notebook with papermill's client: one event per cell in
  ``events.jsonl``, notebook saves at a bounded rate (:data:`SAVE_SHARE`), the failing
  cell taken from the kernel's execute reply (a traceback a cell only *shows* is not a
  failure), and every output passing through :meth:`RunClient.handle_output`, which caps
  what one cell keeps (:data:`STREAM_HEAD` / :data:`STREAM_TAIL`, :data:`OUTPUT_LIMIT`).
* :func:`progress_hook` is what the engine gives :class:`RunEngine` as ``on_output``: what a
  cell reports through :mod:`fedcloud_lib.progress` is printed on the terminal, above the
  cell progress bar, while the cell runs.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from .. import progress
from ..archive.writer import RunWriter
from ..errors import ArchiveError

__all__ = ["kernel_manager_class", "RunEngine", "KernelGroup", "environ", "KERNEL_ARGS",
           "STREAM_HEAD", "STREAM_TAIL", "OUTPUT_LIMIT", "SAVE_SHARE", "progress_hook"]

log = logging.getLogger("fedcloud")

# IPython keeps nothing of a run: no history database (it would hold the parameters)
KERNEL_ARGS = ["--HistoryManager.enabled=False", "--HistoryManager.hist_file=:memory:"]
# What one cell keeps of a stream (stdout, stderr): the first STREAM_HEAD characters and
# the last STREAM_TAIL, with the size of what was left out; one rich output (an HTML
# table, an image) larger than OUTPUT_LIMIT is replaced by a note; at most MAX_OUTPUTS.
STREAM_HEAD = 1 << 20
STREAM_TAIL = 256 << 10
OUTPUT_LIMIT = 8 << 20
MAX_OUTPUTS = 2000
# Saving the notebook may take at most this share of the run's time (and happens at most
# once a second); events.jsonl records every cell as it completes in any case.
SAVE_SHARE = 0.05
MIN_SAVE_INTERVAL = 1.0
KERNEL_OUTPUT = "kernel-output.log"


@contextmanager
def environ(**values: str | None):
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------- the process group
_WATCHDOG = r"""
import os, signal, sys
armed = set()
for line in sys.stdin:  # EOF: the fedcloud process is gone, however it ended
    line = line.strip()
    if line[:1] == "+":
        armed.add(int(line[1:]))
    elif line[:1] == "-":
        armed.discard(int(line[1:]))
for pgid in armed:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class KernelGroup:
    """The kernel's process group, killed however the run ends.

    A watchdog process (``python -I -S``, a few lines, its own session) reads the group id
    from a pipe; when the pipe closes without the group being disarmed — ``fedcloud run``
    was killed — it kills the group.  It also holds the run's lock file open (``lock_fd``),
    so the lock is free for the next run only once the group is gone.
    """

    def __init__(self, lock_fd: int | None = None):
        r, self._w = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG], stdin=r,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                pass_fds=(lock_fd,) if lock_fd is not None else ())
        finally:
            os.close(r)
        self.pgid: int | None = None

    def arm(self, pgid: int) -> None:
        self.pgid = pgid
        os.write(self._w, f"+{pgid}\n".encode())

    def kill(self) -> None:
        """Kill every process left in the kernel's group (idempotent)."""
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.write(self._w, f"-{self.pgid}\n".encode())
        except OSError:
            pass
        self.pgid = None

    def close(self) -> None:
        self.kill()
        try:
            os.close(self._w)
        except OSError:
            pass
        try:
            self._watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - it only reads a pipe
            self._watchdog.kill()


def kernel_manager_class(socket_dir: str, group: KernelGroup | None = None):
    """Kernel managers for a run (see the module docstring).

    The kernel receives every parameter value, secrets included: IPC sockets in a private
    directory keep that traffic off loopback TCP, where any local user could connect.
    The caller owns the directory and removes it, whatever way the run ends.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode, default

    class RunKernelManager(AsyncKernelManager):
        transport = Unicode("ipc")

        @default("ip")
        def _private_ip(self) -> str:
            return os.path.join(socket_dir, "kernel")

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            return cmd + [a for a in KERNEL_ARGS if a not in cmd]

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            fd = os.open(os.path.join(socket_dir, KERNEL_OUTPUT),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                kw.update(stdout=fd, stderr=fd, stdin=subprocess.DEVNULL)
                await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                os.close(fd)
            pgid = getattr(self.provisioner, "pgid", None)
            if group is not None and pgid:
                group.arm(pgid)

    return RunKernelManager


def kernel_output_tail(socket_dir: str, lines: int = 15) -> str:
    """The last lines the kernel process wrote to its own stdout/stderr (unscrubbed)."""
    try:
        with open(os.path.join(socket_dir, KERNEL_OUTPUT), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def progress_hook(scrub: Callable[[str], str]) -> Callable[[Any], None]:
    """The engine's ``on_output``: an output carrying a :data:`fedcloud_lib.progress.MIME`
    event is printed (scrubbed) on the terminal above the cell progress bar
    (``tqdm.write``) as it arrives; other outputs are left alone."""
    from tqdm import tqdm

    def hook(output: Any) -> None:
        data = output.get("data") if isinstance(output, dict) else None
        event = data.get(progress.MIME) if isinstance(data, dict) else None
        if isinstance(event, dict):
            line = progress.render(event)
            if line:
                tqdm.write(scrub(line), file=sys.stderr)

    return hook


# ---------------------------------------------------------------------- papermill with our hooks
class _StreamCap:
    __slots__ = ("kept", "omitted", "tail")

    def __init__(self):
        self.kept, self.omitted, self.tail = 0, 0, ""


def _client_class():
    from nbclient.util import run_sync
    from nbformat.v4 import new_output
    from papermill.clientwrap import PapermillNotebookClient

    class RunClient(PapermillNotebookClient):
        """papermill's client; kernel outputs pass through :meth:`handle_output`."""

        def __init__(self, nb_man, on_capped: Callable[..., None] | None = None,
                     on_output: Callable[[Any], None] | None = None, **kw):
            super().__init__(nb_man, **kw)
            self.iopub_timeout = max(self.iopub_timeout, 60)  # a big backlog is not a hang
            self._caps: dict[tuple[int, str], _StreamCap] = {}
            self._dropped: dict[int, int] = {}
            self._on_capped = on_capped
            self._on_output = on_output

        def output(self, outs, msg, display_id, cell_index):
            out = self.handle_output(outs, msg, display_id, cell_index)
            if out is not None and self._on_output is not None:
                self._on_output(out)  # e.g. live progress on the terminal
            return out

        def handle_output(self, outs, msg, display_id, cell_index):
            """The one place every output message of the kernel passes through: keeps at
            most the head and tail of each stream of a cell, caps rich outputs.  Returns the
            output as kept (None when nothing was kept)."""
            parent = msg["parent_header"].get("msg_id")
            if self.output_hook_stack[parent]:  # an Output widget captures it
                return super().output(outs, msg, display_id, cell_index)
            content = msg["content"]
            if msg["msg_type"] == "stream" and isinstance(content.get("text"), str):
                return self._keep_stream(outs, msg, display_id, cell_index)
            if len(outs) >= MAX_OUTPUTS:
                self._dropped[cell_index] = self._dropped.get(cell_index, 0) + 1
                return None
            data = content.get("data")
            if isinstance(data, dict):
                size = sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())
                if size > OUTPUT_LIMIT:
                    content["data"] = {"text/plain": f"[fedcloud: an output of {size} characters "
                                                     f"({', '.join(data)}) is not kept]"}
                    content["metadata"] = {}
                    if self._on_capped:
                        self._on_capped(cell_index, "display", size)
            return super().output(outs, msg, display_id, cell_index)

        def _keep_stream(self, outs, msg, display_id, cell_index):
            content = msg["content"]
            name, text = content.get("name", "stdout"), content["text"]
            cap = self._caps.setdefault((cell_index, name), _StreamCap())
            room = STREAM_HEAD - cap.kept
            if room > 0:
                head, text = text[:room], text[room:]
                cap.kept += len(head)
                if outs and not self.clear_before_next_output and \
                        outs[-1].get("output_type") == "stream" and outs[-1].get("name") == name:
                    outs[-1]["text"] += head  # coalesce on the fly: one output per stream run
                    out = outs[-1]
                else:
                    content["text"] = head
                    out = super().output(outs, msg, display_id, cell_index)
                if not text:
                    return out
            cap.omitted += len(text)
            cap.tail = (cap.tail + text)[-STREAM_TAIL:]
            return None

        def close_cell_output(self, cell, cell_index):
            """At the end of a cell: append what was kept of capped streams' tails."""
            outs = cell.get("outputs")
            for (index, name), cap in list(self._caps.items()):
                if index != cell_index:
                    continue
                del self._caps[(index, name)]
                if cap.omitted and outs is not None:
                    left_out = cap.omitted - len(cap.tail)
                    note = (f"\n[fedcloud: {left_out} characters of {name} left out here; this "
                            f"cell wrote {cap.kept + cap.omitted} in all: the first {cap.kept} "
                            f"and the last {len(cap.tail)} are kept]\n")
                    outs.append(new_output("stream", name=name, text=note + cap.tail))
                    if self._on_capped:
                        self._on_capped(cell_index, name, cap.kept + cap.omitted)
            dropped = self._dropped.pop(cell_index, 0)
            if dropped and outs is not None:
                outs.append(new_output("stream", name="stderr",
                                       text=f"[fedcloud: {dropped} more outputs not kept]\n"))

        async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                     store_history=True):
            try:
                return await super().async_execute_cell(cell, cell_index, execution_count,
                                                        store_history)
            finally:
                self.close_cell_output(cell, cell_index)

        execute_cell = run_sync(async_execute_cell)

    return RunClient


def _manager_class():
    from papermill.engines import NotebookExecutionManager

    class RunManager(NotebookExecutionManager):
        """papermill's execution manager: saves through the run's writer at a bounded rate,
        one event per cell, and the failure as the kernel reported it."""

        def __init__(self, nb, engine: "RunEngine", **kw):
            self.engine = engine
            self._last_save = 0.0
            self._save_cost = 0.0
            self._force = True
            super().__init__(nb, output_path=None, **kw)

        def save(self, **kwargs):
            now = time.monotonic()
            interval = max(MIN_SAVE_INTERVAL, self._save_cost / SAVE_SHARE)
            if self._force or now - self._last_save >= interval:
                self._force = False
                self.engine.save(self.nb)
                self._last_save = time.monotonic()
                self._save_cost = self._last_save - now
            self.last_save_time = self.now()

        def cell_exception(self, cell, cell_index=None, **kwargs):
            super().cell_exception(cell, cell_index, **kwargs)
            exc = kwargs.get("exception")
            self.engine.failure = (cell_index, getattr(exc, "ename", type(exc).__name__),
                                   getattr(exc, "evalue", str(exc)))
            self._force = True

        def cell_complete(self, cell, cell_index=None, **kwargs):
            super().cell_complete(cell, cell_index, **kwargs)
            pm = cell.metadata.get("papermill", {})
            self.engine.event(event="cell", index=cell_index, id=cell.get("id"),
                              cell_type=cell.get("cell_type"), start=pm.get("start_time"),
                              end=pm.get("end_time"), duration=pm.get("duration"),
                              status=pm.get("status"))

        def notebook_complete(self, **kwargs):
            self._force = True
            super().notebook_complete(**kwargs)

    return RunManager


class RunEngine:
    """Executes one run's notebook (papermill's client and manager with our hooks)."""

    def __init__(self, writer: RunWriter, params_scrubbed: dict, injected_source: str,
                 on_output: Callable[[Any], None] | None = None):
        self.writer, self.params_scrubbed, self.injected = writer, params_scrubbed, injected_source
        self.on_output = on_output  # called with every output kept, as it arrives
        self.failure: tuple[int, str, str] | None = None  # (cell, ename, evalue) from the kernel
        self.nb = None

    def save(self, nb) -> None:
        try:
            self.writer.notebook(nb, self.params_scrubbed, self.injected)
        except OSError as e:
            raise ArchiveError(f"the archive could not be written (notebook.ipynb: "
                               f"{e.strerror or e}); the run was stopped") from e

    def event(self, **ev: Any) -> None:
        try:
            self.writer.event(**ev)
        except OSError as e:
            raise ArchiveError(f"the archive could not be written (events.jsonl: "
                               f"{e.strerror or e}); the run was stopped") from e

    def _capped(self, cell_index: int, stream: str, size: int) -> None:
        self.event(event="output-capped", index=cell_index, stream=stream, bytes=size)

    def execute(self, nb, kernel_name: str, *, progress: bool, timeout: float | None,
                start_timeout: float, kernel_manager_class) -> Any:
        from papermill.log import logger

        manager = _manager_class()(nb, self, progress_bar=progress, autosave_cell_every=30)
        self.nb = manager.nb
        manager.notebook_start()
        done = False
        try:
            client = _client_class()(
                manager, on_capped=self._capped, on_output=self.on_output,
                timeout=timeout, startup_timeout=start_timeout,
                kernel_name=kernel_name, log=logger, kernel_manager_class=kernel_manager_class)
            client.execute()
            done = True
        finally:
            manager.cleanup_pbar()
            try:
                manager.notebook_complete()
            except ArchiveError:
                if done:  # otherwise the exception already on its way says more
                    raise
        self.nb = manager.nb
        return manager.nb
