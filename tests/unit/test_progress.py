"""fedcloud_lib.progress: plain-Python lines, the event format, and the engine's hook."""
from __future__ import annotations

import pytest

from fedcloud_lib import progress
from fedcloud_lib.plan import Handlers, Plan, Step, walk
from fedcloud_lib.run import kernel

pytestmark = pytest.mark.unit


def test_plain_python_prints_lines(capsys):
    progress.say("TASK [x] changed vm")
    with progress.task(3, "boot servers") as t:
        t.advance(text="web-1 ACTIVE")
        t.advance(2)
    with pytest.raises(RuntimeError):
        with progress.task(None, "wait for volume") as t:
            raise RuntimeError("gone")
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == ["TASK [x] changed vm", "boot servers: started (3 to do)",
                         "boot servers: 1/3 web-1 ACTIVE", "boot servers: 3/3"]
    assert lines[4].startswith("boot servers: done (3/3) in ")
    assert lines[5] == "wait for volume: started" and lines[6].startswith("wait for volume: FAILED (0)")


def test_events_in_a_kernel_are_display_bundles(monkeypatch):
    """In a kernel each call is a display output: the event under MIME, its line as text."""
    shown = []

    class Shell:
        kernel = object()

    import IPython
    import IPython.display

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, raw=False: shown.append((obj, raw)))
    # the engine's kernel (in JupyterLab the same events are live widgets:
    # tests/unit/test_lab_progress.py)
    monkeypatch.setenv("FEDCLOUD_RUN_ID", "20260101T000000-abcdef")
    with progress.task(2, "copy") as t:
        t.advance(text="a")
    (start, raw), (adv, _), (end, _) = shown
    assert raw is True
    ev = adv[progress.MIME]
    assert ev == {"v": 1, "type": "task", "state": "advance", "id": ev["id"], "desc": "copy",
                  "total": 2, "done": 1, "text": "a"}
    assert adv["text/plain"] == "copy: 1/2 a" and end[progress.MIME]["status"] == "ok"
    assert start[progress.MIME]["id"] == ev["id"] == end[progress.MIME]["id"]


def test_walk_reports_steps_through_progress(capsys):
    handlers = Handlers()
    handlers.on("server", "create")(lambda ctx, step: "made")
    plan = Plan("demo", (Step("create", "server", "web-1"),), planned_at="x")
    walk(plan, handlers, None)
    out = capsys.readouterr().out
    assert "[1/1] create server web-1 ..." in out and "[1/1] create server web-1: done in" in out


def test_engine_hook_prints_progress_outputs_scrubbed(monkeypatch):
    written = []
    from tqdm import tqdm

    monkeypatch.setattr(tqdm, "write", classmethod(lambda cls, s, file=None: written.append(s)))
    hook = kernel.progress_hook(lambda s: s.replace("hunter2", "***"))
    hook({"output_type": "display_data",
          "data": {progress.MIME: {"v": 1, "type": "say", "text": "login hunter2"},
                   "text/plain": "login hunter2"}})
    hook({"output_type": "stream", "name": "stdout", "text": "not progress"})
    hook({"output_type": "display_data", "data": {"text/plain": "a table"}})
    assert written == ["login ***"]


def test_render_is_total_over_odd_events():
    assert progress.render({"type": "nonsense"}) == ""
    assert progress.render({"type": "say", "text": "x" * 5000}) == "x" * 2000
    assert progress.render({"type": "task", "state": "advance", "desc": "d", "done": 4,
                            "total": None}) == "d: 4"
