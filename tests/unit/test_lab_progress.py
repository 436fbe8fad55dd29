"""Live progress in JupyterLab: progress events (fedcloud_lib.progress's format, v1)
rendered as a bar updated in place; a task's last line kept as text; a final summary."""
from __future__ import annotations

import pytest

from fedcloud_lib.lab import progress

pytestmark = pytest.mark.unit
MIME = "application/vnd.fedcloud.progress+json"


@pytest.fixture
def shown(monkeypatch):
    out = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: out.append(obj))
    progress.summary()  # start from nothing
    return out


def ev(state, done, **more):
    return {"v": 1, "type": "task", "state": state, "id": "t1", "desc": "boot servers",
            "total": 3, "done": done, **more}


def bundle(event, line):
    return {MIME: event, "text/plain": line}


def test_a_task_is_one_bar_updated_in_place(shown):
    progress.show(ev("start", 0), "boot servers: started", bundle(ev("start", 0), "x"))
    [widget] = shown
    bar, label = widget.children
    assert (bar.value, bar.max, bar.bar_style) == (0, 3, "info")
    progress.show(ev("advance", 2, text="web-2 ACTIVE"), "l", bundle({}, "l"))
    assert len(shown) == 1 and bar.value == 2
    assert "2/3" in label.value and "web-2 ACTIVE" in label.value
    end = ev("end", 3, status="ok", seconds=12.5)
    progress.show(end, "boot servers: done (3/3) in 12.5 s",
                  bundle(end, "boot servers: done (3/3) in 12.5 s"))
    assert bar.bar_style == "success" and bar.value == 3 and "in 12.5 s" in label.value
    assert shown[1] == bundle(end, "boot servers: done (3/3) in 12.5 s")  # kept as text
    assert progress.summary() == ["boot servers: done (3/3) in 12.5 s"]
    assert progress.summary() == []


def test_a_failed_task_turns_red_and_an_unknown_total_shows_a_count(shown):
    start = {"v": 1, "type": "task", "state": "start", "id": "t2", "desc": "wait",
             "total": None, "done": 0}
    progress.show(start, "wait: started", bundle(start, "wait: started"))
    bar, label = shown[0].children
    assert bar.layout.display == "none"
    end = {**start, "state": "end", "done": 4, "status": "failed", "seconds": 1.0}
    progress.show(end, "wait: FAILED (4) in 1.0 s", bundle(end, "x"))
    assert bar.bar_style == "danger" and "FAILED (4)" in label.value
    assert progress.summary() == ["wait: FAILED (4) in 1.0 s"]


def test_a_line_is_shown_as_text(shown):
    say = {"v": 1, "type": "say", "text": "TASK [packages] changed vm"}
    progress.show(say, say["text"], bundle(say, say["text"]))
    assert shown == [bundle(say, say["text"])]


def test_the_reporting_calls_render_live_in_jupyterlab_and_stay_text_headless(shown, monkeypatch):
    from fedcloud_lib import progress as reporting
    from fedcloud_lib.lab import session

    monkeypatch.setattr(reporting, "_kernel", lambda: object())
    monkeypatch.setattr(session, "interactive", lambda: True)  # a JupyterLab kernel
    with reporting.task(total=2, desc="copy") as t:
        t.advance(text="a")
        t.advance(text="b")
    bar, label = shown[0].children
    assert bar.value == 2 and bar.bar_style == "success" and len(shown) == 2
    assert shown[1]["text/plain"].startswith("copy: done (2/2)")
    shown.clear()
    monkeypatch.setattr(session, "interactive", lambda: False)  # under the engine
    reporting.say("a line")
    with reporting.task(total=1, desc="one") as t:
        t.advance()
    assert [b["text/plain"] for b in shown] == ["a line", "one: started (1 to do)", "one: 1/1",
                                                shown[-1]["text/plain"]]
    assert all(MIME in b for b in shown)
