"""Progress of long steps, as they happen: one small API for runbooks and the library.

>>> from fedcloud_lib import progress
>>> progress.say("TASK [install packages] changed vm")        # one line
>>> with progress.task(total=20, desc="boot servers") as t:   # a counted task
...     for server in servers:
...         t.advance(text=f"{server.name} ACTIVE")

Where the words go depends on where the code runs:

* **in a kernel** (a ``fedcloud run``, or JupyterLab): each call is a display output whose
  bundle holds the event under :data:`MIME` and a readable line under ``text/plain``.
  The engine (:func:`fedcloud_lib.run.kernel.progress_hook`) picks those outputs up while
  the cell runs and prints the line on the operator's terminal above the cell progress
  bar; the archived notebook keeps them as plain lines.
* **in JupyterLab** (a kernel not under the engine): :mod:`fedcloud_lib.lab.progress`
  renders the same events live — a task is a progress bar updated in place, ending with
  its line as text (kept by the archived interactive run); a ``say`` is its line.
* **in plain Python** (a script, a test): the line is printed.

Events (``MIME``, JSON; version 1) — small on purpose, so other front ends can render them::

    {"v": 1, "type": "say",  "text": "..."}
    {"v": 1, "type": "task", "state": "start",   "id": "3f2a9c1e", "desc": "...", "total": 20, "done": 0}
    {"v": 1, "type": "task", "state": "advance", "id": "3f2a9c1e", "desc": "...", "total": 20, "done": 7, "text": "..."}
    {"v": 1, "type": "task", "state": "end",     "id": "3f2a9c1e", "desc": "...", "total": 20, "done": 20,
     "status": "ok" | "failed", "seconds": 12.5}

``total`` may be null (unknown); ``text`` is optional.  :func:`render` turns an event into
its line.
"""
from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .lab import progress as lab_progress

__all__ = ["MIME", "VERSION", "say", "task", "Task", "render", "emit"]

MIME = "application/vnd.fedcloud.progress+json"
VERSION = 1
_MAX_TEXT = 2000  # characters of one line; a progress line is not a log


def _kernel() -> Any:
    """The running IPython kernel's shell, or None in plain Python."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    return shell if getattr(shell, "kernel", None) is not None else None


def render(event: dict[str, Any]) -> str:
    """The one readable line of a progress event."""
    kind = event.get("type")
    if kind == "say":
        return str(event.get("text", ""))[:_MAX_TEXT]
    if kind != "task":
        return ""
    desc = str(event.get("desc", ""))
    total = event.get("total")
    count = f"{event.get('done', 0)}/{total}" if total is not None else f"{event.get('done', 0)}"
    state = event.get("state")
    if state == "start":
        return f"{desc}: started" + (f" ({total} to do)" if total is not None else "")
    if state == "end":
        secs = event.get("seconds")
        took = f" in {secs:.1f} s" if isinstance(secs, (int, float)) else ""
        return f"{desc}: {'done' if event.get('status') == 'ok' else 'FAILED'} ({count}){took}"
    text = event.get("text")
    return f"{desc}: {count}" + (f" {text}" if text else "")[:_MAX_TEXT]


def emit(event: dict[str, Any]) -> None:
    """Send one event: a display output in a kernel, a printed line elsewhere."""
    event = {"v": VERSION, **event}
    line = render(event)
    shell = _kernel()
    if shell is None:
        print(line, flush=True)
        return
    bundle = {MIME: event, "text/plain": line}
    if lab_progress.active():  # JupyterLab: live widgets
        lab_progress.show(event, line, bundle)
        return
    from IPython.display import display

    display(bundle, raw=True)


def say(text: Any) -> None:
    """Report one line (an ansible task result, a server that came up, a wait)."""
    emit({"type": "say", "text": str(text)[:_MAX_TEXT]})


class Task:
    """A counted piece of work; :meth:`advance` reports each unit done."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.total = total
        self.desc = desc
        self.done = 0
        self._t0 = time.monotonic()

    def _event(self, state: str, **more: Any) -> dict[str, Any]:
        return {"type": "task", "state": state, "id": self.id, "desc": self.desc,
                "total": self.total, "done": self.done, **more}

    def advance(self, n: int = 1, text: str | None = None) -> None:
        """``n`` more units done; ``text`` says which (optional)."""
        self.done += n
        emit(self._event("advance", **({"text": str(text)[:_MAX_TEXT]} if text else {})))

    def _end(self, status: str) -> None:
        emit(self._event("end", status=status,
                         seconds=round(time.monotonic() - self._t0, 1)))


@contextmanager
def task(total: int | None, desc: str) -> Iterator[Task]:
    """A counted task: started on entry, ended (``ok`` or ``failed``) on exit."""
    t = Task(total, desc)
    emit(t._event("start"))
    try:
        yield t
    except BaseException:
        t._end("failed")
        raise
    t._end("ok")
