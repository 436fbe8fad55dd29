"""Live progress in JupyterLab: the progress events of :mod:`fedcloud_lib.progress` as widgets.

The library reports long steps through ``progress.say`` / ``progress.task`` (one API for
every front end).  Headless, the engine prints each event's line on the terminal; in a
JupyterLab kernel :func:`show` renders them live instead:

* a task (``{"type": "task", "state": "start"|"advance"|"end", "id", "desc", "total",
  "done", "text", "status", "seconds"}``) is a progress bar with its count and latest
  text, updated in place as it advances, green when it ends ``ok``, red when ``failed``;
  its final line is also shown as text, so the archived notebook keeps it;
* a line (``{"type": "say", "text"}``) is shown as text.

:func:`summary` lists the tasks finished since the last summary (the interactive run's
final summary).
"""
from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from typing import Any

from . import session

__all__ = ["active", "show", "summary", "TaskView"]


def active() -> bool:
    """Whether events are rendered here (a JupyterLab kernel, not under the engine)."""
    return session.interactive()


@dataclass
class _Ended:
    desc: str
    done: int
    total: int | None
    status: str
    seconds: float | None


class TaskView:
    """One task's bar and label."""

    def __init__(self, event: dict[str, Any]):
        import ipywidgets as w

        total = event.get("total")
        self.bar = w.IntProgress(value=int(event.get("done") or 0), min=0,
                                 max=max(int(total), 1) if total is not None else 1,
                                 bar_style="info", layout=w.Layout(width="24em"))
        if total is None:
            self.bar.layout.display = "none"  # unknown total: the count says it
        self.label = w.HTML()
        self.widget = w.HBox([self.bar, self.label])
        self.widget.add_class("fedcloud-progress")
        self.update(event)

    def update(self, event: dict[str, Any]) -> None:
        total, done = event.get("total"), int(event.get("done") or 0)
        if total is not None:
            self.bar.max = max(int(total), 1)
            self.bar.value = min(done, self.bar.max)
        count = f"{done}/{total}" if total is not None else str(done)
        desc = html.escape(str(event.get("desc", "")))
        state = event.get("state")
        if state == "end":
            ok = event.get("status") == "ok"
            self.bar.bar_style = "success" if ok else "danger"
            if ok and total is not None:
                self.bar.value = self.bar.max
            secs = event.get("seconds")
            took = f" in {secs:.1f} s" if isinstance(secs, (int, float)) else ""
            self.label.value = f"<b>{desc}</b>: {'done' if ok else 'FAILED'} ({count}){took}"
        else:
            text = event.get("text")
            self.label.value = (f"<b>{desc}</b>: {count}"
                                + (f" — {html.escape(str(text))}" if text else ""))


_lock = threading.Lock()
_views: dict[str, TaskView] = {}
_ended: list[_Ended] = []


def show(event: dict[str, Any], line: str, bundle: dict[str, Any]) -> None:
    """Render one progress event live (``line`` is its text; ``bundle`` the display
    bundle the engine reads headless, shown as it is for lines and task ends)."""
    from IPython.display import display

    if event.get("type") != "task":
        display(bundle, raw=True)
        return
    tid = str(event.get("id"))
    with _lock:
        view = _views.get(tid)
        if view is None:
            view = _views[tid] = TaskView(event)
            new = True
        else:
            view.update(event)
            new = False
        if event.get("state") == "end":
            _views.pop(tid, None)
            _ended.append(_Ended(str(event.get("desc", "")), int(event.get("done") or 0),
                                 event.get("total"), str(event.get("status")),
                                 event.get("seconds")))
    if new:
        display(view.widget)
    if event.get("state") == "end":
        display(bundle, raw=True)


def summary() -> list[str]:
    """One line per task finished since the last summary (and forget them)."""
    with _lock:
        ended, _ended[:] = list(_ended), []
    out = []
    for t in ended:
        count = f"{t.done}/{t.total}" if t.total is not None else str(t.done)
        took = f" in {t.seconds:.1f} s" if isinstance(t.seconds, (int, float)) else ""
        out.append(f"{t.desc}: {'done' if t.status == 'ok' else 'FAILED'} ({count}){took}")
    return out
