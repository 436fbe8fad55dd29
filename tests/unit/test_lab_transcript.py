"""The kernel-side transcript an interactive run is archived from: outputs are attached to
the cell that produced them, cleared and updated displays are followed, widgets are
replaced by a note, and the executions become a notebook in the order they ran."""
from __future__ import annotations

from types import SimpleNamespace

import nbformat
import pytest

from fedcloud_lib.lab import transcript

pytestmark = pytest.mark.unit


class FakeKernel:
    def __init__(self):
        self.parent = {}

    def get_parent(self, channel=None):
        return self.parent


@pytest.fixture
def rec():
    r = transcript._Recorder()
    r.shell = SimpleNamespace(kernel=FakeKernel())
    return r


def run(rec, msg_id, source, cell_id=None, error=None, count=1):
    rec.shell.kernel.parent = {"header": {"msg_id": msg_id}, "metadata": {"cellId": cell_id}}
    rec.pre_run_cell(SimpleNamespace(raw_cell=source, cell_id=cell_id))
    return lambda: rec.post_run_cell(SimpleNamespace(execution_count=count, error_in_exec=error,
                                                     error_before_exec=None))


def test_outputs_go_to_the_cell_that_made_them(rec):
    done = run(rec, "m1", "print('a')", "c1")
    rec.sent("stream", {"name": "stdout", "text": "a\n"}, {"msg_id": "m1"})
    rec.sent("stream", {"name": "stdout", "text": "stray\n"}, {"msg_id": "other"})
    rec.sent("status", {"execution_state": "idle"}, {"msg_id": "m1"})  # not an output
    done()
    run(rec, "m2", "1/0", "c2", count=2)
    rec.sent("error", {"ename": "ZeroDivisionError", "evalue": "division by zero",
                       "traceback": ["tb"]}, {"msg_id": "m2"})
    rec.post_run_cell(SimpleNamespace(execution_count=2, error_in_exec=ZeroDivisionError("x"),
                                      error_before_exec=None))
    e1, e2 = rec.entries
    assert e1.outputs == [{"output_type": "stream", "name": "stdout", "text": "a\n"}]
    assert e1.status == "ok" and e1.cell_id == "c1" and e1.execution_count == 1
    assert e2.status == "error" and e2.error.startswith("ZeroDivisionError")
    assert e2.outputs[0]["ename"] == "ZeroDivisionError"


def test_clear_and_update_display_and_widgets(rec):
    done = run(rec, "m1", "progress()", "c1")
    rec.sent("display_data", {"data": {"text/plain": "10%"}, "metadata": {},
                              "transient": {"display_id": "d1"}}, {"msg_id": "m1"})
    rec.sent("update_display_data", {"data": {"text/plain": "100%"}, "metadata": {},
                                     "transient": {"display_id": "d1"}}, {"msg_id": "m1"})
    rec.sent("display_data", {"data": {"text/plain": "VBox(value='pw')",
                                       transcript.WIDGET_MIME: {"model_id": "x"}},
                              "metadata": {}}, {"msg_id": "m1"})
    done()
    e = rec.entries[0]
    assert e.outputs[0]["data"] == {"text/plain": "100%"}
    assert e.outputs[1]["data"] == {"text/plain": transcript.WIDGET_TEXT}
    done = run(rec, "m2", "clear()", "c2", count=2)
    rec.sent("display_data", {"data": {"text/plain": "old"}, "metadata": {}}, {"msg_id": "m2"})
    rec.sent("clear_output", {"wait": False}, {"msg_id": "m2"})
    rec.sent("display_data", {"data": {"text/plain": "new"}, "metadata": {}}, {"msg_id": "m2"})
    done()
    assert [o["data"]["text/plain"] for o in rec.entries[1].outputs] == ["new"]


def test_take_keeps_a_running_cell_for_the_next_archive(rec, monkeypatch):
    monkeypatch.setattr(transcript, "_RECORDER", rec)
    run(rec, "m1", "a = 1", "c1")()
    run(rec, "m2", "fedcloud_lib.archive_run()", "c2", count=2)  # still running
    taken = transcript.take()
    assert [e.source for e in taken] == ["a = 1"]
    assert [e.source for e in transcript.entries()] == ["fedcloud_lib.archive_run()"]


def test_executions_become_a_valid_notebook_in_order(rec):
    done = run(rec, "m1", "x = 1", "c1")
    rec.sent("execute_result", {"data": {"text/plain": "1"}, "metadata": {},
                                "execution_count": 1}, {"msg_id": "m1"})
    done()
    nb = transcript.notebook(rec.entries, title="Demo", intro="ran by alice")
    nbformat.validate(nb)
    assert nb.cells[0].source.startswith("# Demo") and nb.cells[1].source == "x = 1"
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "1"
    assert nb.cells[1].metadata["fedcloud"]["cell_id"] == "c1"
    assert nb.metadata["kernelspec"]["name"] == "fedcloud"
