"""The kernel side of a run: a private kernel transport, papermill's engine with our hooks.

:func:`kernel_manager_class` makes the kernel talk over unix sockets in a private
directory; :func:`make_engine` is papermill's nbclient engine whose saves go through the
run's writer (scrubbed, into the archive) and which logs one event per cell;
:func:`progress_hook` prints what a cell reports through :mod:`fedcloud_lib.progress`
on the terminal while the cell runs; :func:`first_error` finds what ended a notebook.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable

from .. import progress
from ..archive.writer import RunWriter

__all__ = ["kernel_manager_class", "make_engine", "first_error", "environ", "progress_hook"]


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


def kernel_manager_class(socket_dir: str):
    """Kernel managers that talk to the kernel over unix sockets in ``socket_dir`` (0700).

    The kernel receives every parameter value, secrets included: IPC sockets in a private
    directory keep that traffic off loopback TCP, where any local user could connect.
    The caller owns the directory and removes it, whatever way the run ends.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode, default

    class PrivateIPCKernelManager(AsyncKernelManager):
        transport = Unicode("ipc")

        @default("ip")
        def _private_ip(self) -> str:
            return os.path.join(socket_dir, "kernel")

    return PrivateIPCKernelManager


def progress_hook(scrub: Callable[[str], str]) -> Callable[[Any], None]:
    """What the engine does with each output a cell produces, as it arrives: a
    :data:`fedcloud_lib.progress.MIME` event is printed (scrubbed) on the terminal above
    the cell progress bar (``tqdm.write``); other outputs are left alone."""
    from tqdm import tqdm

    def hook(output: Any) -> None:
        data = output.get("data") if isinstance(output, dict) else None
        event = data.get(progress.MIME) if isinstance(data, dict) else None
        if isinstance(event, dict):
            line = progress.render(event)
            if line:
                tqdm.write(scrub(line), file=sys.stderr)

    return hook


def make_engine(writer: RunWriter, params_scrubbed: dict, injected_source: str):
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, NotebookExecutionManager

    class Manager(NotebookExecutionManager):
        def save(self, **kwargs):
            writer.notebook(self.nb, params_scrubbed, injected_source)
            self.last_save_time = self.now()

        def cell_complete(self, cell, cell_index=None, **kwargs):
            super().cell_complete(cell, cell_index, **kwargs)
            pm = cell.metadata.get("papermill", {})
            writer.event(event="cell", index=cell_index, id=cell.get("id"),
                         cell_type=cell.get("cell_type"), start=pm.get("start_time"),
                         end=pm.get("end_time"), duration=pm.get("duration"),
                         status=pm.get("status"))

    class Engine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True,
                             log_output=False, autosave_cell_every=30, **kwargs):
            nb_man = Manager(nb, output_path=None, progress_bar=progress_bar,
                             log_output=log_output, autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False,
                                     start_timeout=60, execution_timeout=None, **kwargs):
            """papermill's own, with a client that hands each output to :func:`progress_hook`."""
            show = progress_hook(writer.scrubber.text)

            class Client(PapermillNotebookClient):
                def process_message(self, *args, **kw):
                    output = super().process_message(*args, **kw)
                    if output is not None:
                        show(output)
                    return output

            kwargs = {k: v for k, v in kwargs.items()
                      if k not in ("input_path", "timeout", "startup_timeout")}
            return Client(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                          kernel_name=kernel_name, log=logging.getLogger("papermill"),
                          log_output=log_output, **kwargs).execute()

    return Engine


def first_error(nb) -> tuple[str | None, str | None]:
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return out.get("ename"), f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
    return None, None
