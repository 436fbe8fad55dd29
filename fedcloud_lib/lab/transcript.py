"""What this kernel ran and what it showed, captured in the kernel itself.

An interactive run is archived from the kernel's side: every cell the kernel executes
(source, JupyterLab's cell id, start, end, ok or error) and every output it sends for that
cell (streams, displays, results, errors), taken from the kernel's own IOPub messages
as they are sent.  That is exactly what ran — unlike the notebook file, which holds what
the browser last saved (maybe minutes old, maybe edited after the run, maybe never saved).

:func:`install` hooks the kernel once (IPython's ``pre_run_cell``/``post_run_cell`` events
and the kernel session's ``send``); :func:`take` hands the cells recorded since the last
take to the archive; :func:`notebook` makes them a notebook.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from ..context import utcnow
from . import session

__all__ = ["Execution", "install", "installed", "entries", "take", "notebook", "WIDGET_TEXT"]

_OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error", "update_display_data",
                 "clear_output"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_TEXT = "[interactive control: its effect is recorded in the cells that ran after it]"


@dataclass
class Execution:
    """One cell execution: what ran and what it showed."""

    msg_id: str
    source: str
    cell_id: str | None
    started: str
    execution_count: int | None = None
    ended: str | None = None
    status: str = "running"  # running | ok | error
    error: str | None = None
    outputs: list[dict] = field(default_factory=list)

    def to_event(self) -> dict[str, Any]:
        return {"event": "cell", "cell_id": self.cell_id, "execution_count": self.execution_count,
                "start": self.started, "end": self.ended, "status": self.status}


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[Execution] = []
        self.by_msg: dict[str, Execution] = {}
        self.displays: dict[str, list[dict]] = {}  # display_id -> outputs showing it
        self.shell: Any = None

    # IPython events ----------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        parent = self.shell.kernel.get_parent("shell") or {}
        msg_id = (parent.get("header") or {}).get("msg_id") or f"local-{len(self.entries)}"
        entry = Execution(msg_id=msg_id, source=info.raw_cell or "",
                          cell_id=getattr(info, "cell_id", None), started=utcnow().isoformat())
        with self.lock:
            self.entries.append(entry)
            self.by_msg[msg_id] = entry

    def post_run_cell(self, result: Any) -> None:
        with self.lock:
            entry = self.entries[-1] if self.entries else None
        if entry is None or entry.ended is not None:
            return
        entry.execution_count = result.execution_count
        entry.ended = utcnow().isoformat()
        err = result.error_in_exec or result.error_before_exec
        entry.status = "error" if err is not None else "ok"
        entry.error = f"{type(err).__name__}: {err}" if err is not None else None

    # the kernel session's send -----------------------------------------------------
    def sent(self, msg_type: str, content: dict, parent: dict) -> None:
        """The kernel sent ``msg_type`` on behalf of the request ``parent``."""
        if msg_type not in _OUTPUT_TYPES:
            return
        msg_id = (parent or {}).get("msg_id")
        with self.lock:
            entry = self.by_msg.get(msg_id) if msg_id else None
            if entry is None:
                return
            if msg_type == "clear_output":
                entry.outputs.clear()
                return
            if msg_type == "update_display_data":
                did = (content.get("transient") or {}).get("display_id")
                for out in self.displays.get(did, []):
                    out["data"] = _data(content.get("data") or {})
                    out["metadata"] = content.get("metadata") or {}
                return
            out = _output(msg_type, content)
            entry.outputs.append(out)
            did = (content.get("transient") or {}).get("display_id")
            if did:
                self.displays.setdefault(did, []).append(out)


def _data(data: dict) -> dict:
    if WIDGET_MIME in data:
        return {"text/plain": WIDGET_TEXT}
    return copy.deepcopy(data)


def _output(msg_type: str, content: dict) -> dict:
    if msg_type == "stream":
        return {"output_type": "stream", "name": content.get("name", "stdout"),
                "text": content.get("text", "")}
    if msg_type == "error":
        return {"output_type": "error", "ename": content.get("ename", ""),
                "evalue": content.get("evalue", ""), "traceback": list(content.get("traceback", []))}
    out = {"output_type": msg_type, "data": _data(content.get("data") or {}),
           "metadata": copy.deepcopy(content.get("metadata") or {})}
    if msg_type == "execute_result":
        out["execution_count"] = content.get("execution_count")
    return out


_RECORDER = _Recorder()


def installed() -> bool:
    """Whether this kernel records its executions."""
    return _RECORDER.shell is not None


def install() -> bool:
    """Record this kernel's executions from now on (once per kernel); False outside one.

    The cells that ran before (the parameters cell) are taken from IPython's history,
    without outputs.
    """
    sh = session.shell()
    if sh is None or installed():
        return installed()
    rec = _RECORDER
    rec.shell = sh
    history = list(getattr(sh.history_manager, "input_hist_raw", []) or [])
    now = utcnow().isoformat()
    for count, source in enumerate(history[1:-1], 1):  # [0] is empty, [-1] is this cell
        if source.strip():
            rec.entries.append(Execution(msg_id=f"history-{count}", source=source, cell_id=None,
                                         started=now, ended=now, execution_count=count,
                                         status="ok"))
    parent = sh.kernel.get_parent("shell") or {}
    rec.pre_run_cell(_Info(history[-1] if history else "",
                           (parent.get("metadata") or {}).get("cellId")))
    sh.events.register("pre_run_cell", rec.pre_run_cell)
    sh.events.register("post_run_cell", rec.post_run_cell)
    kernel_session = sh.kernel.session
    original = kernel_session.send

    def send(stream, msg_or_type, content=None, parent=None, *args, **kwargs):
        try:
            if isinstance(msg_or_type, dict):
                mtype = (msg_or_type.get("header") or {}).get("msg_type") or msg_or_type.get("msg_type")
                body, head = msg_or_type.get("content") or {}, msg_or_type.get("parent_header") or {}
            else:
                mtype, body = msg_or_type, content or {}
                head = (parent or {}).get("header", parent) if isinstance(parent, dict) else {}
            rec.sent(mtype, body, head or {})
        except Exception:  # noqa: BLE001 - recording must never break the kernel's output
            pass
        return original(stream, msg_or_type, content, parent, *args, **kwargs)

    kernel_session.send = send
    return True


@dataclass
class _Info:
    raw_cell: str
    cell_id: str | None


def entries() -> list[Execution]:
    """The executions recorded since the last :func:`take` (a copy)."""
    with _RECORDER.lock:
        return list(_RECORDER.entries)


def take() -> list[Execution]:
    """The executions recorded since the last take; the next take starts after them
    (a cell still running stays for the next one)."""
    rec = _RECORDER
    with rec.lock:
        done = [e for e in rec.entries if e.ended is not None]
        rec.entries = [e for e in rec.entries if e.ended is None]
        rec.by_msg = {e.msg_id: e for e in rec.entries}
        rec.displays = {}
    return done


def notebook(executions: list[Execution], *, title: str, intro: str):
    """The executions as a notebook: a markdown cell (``title``, ``intro``), then one code
    cell per execution, in the order the kernel ran them."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "fedcloud", "display_name": "fedcloud (Python 3)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\n{intro}"))
    for e in executions:
        cell = nbformat.v4.new_code_cell(e.source, execution_count=e.execution_count)
        cell.outputs = [nbformat.from_dict(o) for o in e.outputs]
        cell.metadata["fedcloud"] = {"cell_id": e.cell_id, "start": e.started, "end": e.ended,
                                     "status": e.status}
        nb.cells.append(cell)
    return nb


def _reset_for_tests() -> None:
    global _RECORDER
    _RECORDER = _Recorder()
