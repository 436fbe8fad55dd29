"""The interactive half in a real `fedcloud` kernel, driven as JupyterLab drives it.

Cells go to the kernel as JupyterLab sends them (execute requests carrying the cell id,
``JPY_SESSION_NAME`` naming the notebook); buttons are pressed as the browser presses them
(a widget comm message ``{"method": "custom", "content": {"event": "click"}}``).  What is
checked: the form and the plan stop "Run All", a confirmed plan is applied exactly once,
a plan that changed since the click is refused, and the run lands in the archive (status
``interactive``, the operator, chained, secrets scrubbed) — also when the operator presses
"Archive this run", and as ``abandoned`` when the kernel dies before the run is finished.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
import yaml

from fedcloud_lib.archive.index import Archive
from tests.conftest import run_cli

pytestmark = pytest.mark.runbook

SECRET = "hunter2-secret-value-9f3"
TOKEN = "lab-token-0c1d2e3f4a5b6c7d"
PARAMS = f'''ticket: str = "7"  # ticket [required; pattern=[0-9]+]
pw: str = "{SECRET}"  # a password [secret]
facts_file: str = "facts.json"  # what the plan reads
out_file: str = "applied.json"  # what apply writes
approve: bool = False  # apply the plan; without it the run stops after the plan
'''
FORM = "# NBVAL_RAISES_EXCEPTION\nimport fedcloud_lib\nfedcloud_lib.form(globals())"
PLAN = '''import json, pathlib
from fedcloud_lib.plan import Plan, Step
facts = json.loads(pathlib.Path(facts_file).read_text())
expires = fedcloud_lib.planning_time().isoformat()  # time-dependent, like a lifetime
plan = Plan.of(f"demo for ticket {ticket}", [Step("create", "thing", facts["name"], "", {"size": facts["size"], "expires": expires})])
approved = fedcloud_lib.require_approval(plan, approve)'''
APPLY = '''n = len(list(pathlib.Path(".").glob("applied*.json")))
pathlib.Path(f"applied-{n}.json").write_text(json.dumps(approved.to_dict()))
print("applied", approved.summary(), "with", pw)'''
TAIL = "print('the end')"


class Notebook:
    """A notebook file and a kernel started for it as jupyter_server starts one."""

    def __init__(self, tmp_path: Path, cells: list[str]):
        from jupyter_client.manager import start_new_kernel

        self.dir = tmp_path
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# Demo\n\nA demo runbook.")]
        for src in cells:
            cell = nbformat.v4.new_code_cell(src)
            if src is cells[0]:
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
        nb.metadata["kernelspec"] = {"name": "fedcloud", "display_name": "fedcloud",
                                     "language": "python"}
        self.path = tmp_path / "demo.ipynb"
        nbformat.write(nb, self.path)
        self.code = [c for c in nb.cells if c.cell_type == "code"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCLOUD_RUN")}
        env.update(JPY_SESSION_NAME=str(self.path), JUPYTER_TOKEN=TOKEN,
                   FEDCLOUD_OPERATOR="kernel-test")
        self.km, self.kc = start_new_kernel(kernel_name="fedcloud", cwd=str(tmp_path), env=env,
                                            startup_timeout=120)
        self.widgets: dict[str, dict] = {}

    def close(self) -> None:
        self.kc.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=False)

    def _collect(self, msg_id: str, timeout: float = 180) -> list[dict]:
        outs = []
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except Empty:
                raise AssertionError(f"no answer from the kernel in {timeout} s: {outs}") from None
            mtype, content = msg["msg_type"], msg["content"]
            if mtype == "comm_open":
                self.widgets[content["comm_id"]] = dict(content["data"]["state"])
            elif mtype == "comm_msg" and content["data"].get("method") == "update":
                self.widgets.setdefault(content["comm_id"], {}).update(content["data"]["state"])
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if mtype == "status" and content["execution_state"] == "idle":
                return outs
            if mtype in ("stream", "error", "display_data", "execute_result"):
                outs.append(content)

    def run(self, i: int) -> list[dict]:
        """Execute code cell ``i`` as JupyterLab does (the cell id in the request)."""
        cell = self.code[i]
        msg = self.kc.session.msg("execute_request",
                                  {"code": cell.source, "silent": False, "store_history": True,
                                   "user_expressions": {}, "allow_stdin": False,
                                   "stop_on_error": True}, metadata={"cellId": cell.id})
        self.kc.shell_channel.send(msg)
        return self._collect(msg["header"]["msg_id"])

    def run_all(self) -> list[list[dict]]:
        """Run ▸ Run All Cells: stops at the first cell that raises."""
        done = []
        for i in range(len(self.code)):
            outs = self.run(i)
            done.append(outs)
            if any("ename" in o for o in outs):
                break
        return done

    def click(self, description_start: str) -> None:
        """Press the (last shown) button whose label starts with ``description_start``."""
        ids = [cid for cid, st in self.widgets.items() if st.get("_model_name") == "ButtonModel"
               and str(st.get("description", "")).startswith(description_start)]
        assert ids, f"no button {description_start!r}"
        msg = self.kc.session.msg("comm_msg", {"comm_id": ids[-1], "data": {
            "method": "custom", "content": {"event": "click"}}})
        self.kc.shell_channel.send(msg)  # handled before the next request (one shell queue)


def errors(outs: list[dict]) -> list[str]:
    return [o["ename"] for o in outs if "ename" in o]


def text(outs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outs)


@pytest.fixture
def lab_env(outputs, tmp_path, monkeypatch):
    monkeypatch.delenv("FEDCLOUD_RUNBOOKS", raising=False)
    (tmp_path / "facts.json").write_text(json.dumps({"name": "thing-1", "size": 1}))
    return tmp_path


@pytest.fixture
def nb(lab_env):
    n = Notebook(lab_env, [PARAMS, FORM, PLAN, APPLY])
    yield n
    n.close()


def test_confirmed_plan_is_applied_once_and_archived_as_interactive(nb, outputs):
    # Run All: the form stops it; nothing below ran
    cells = nb.run_all()
    assert len(cells) == 2 and errors(cells[1]) == ["FormPending"]
    nb.click("Use these values")
    # Run All: the plan stops it, with a Confirm button
    cells = nb.run_all()
    assert len(cells) == 3 and errors(cells[2]) == ["StopAfterPlan"]
    assert not list(nb.dir.glob("applied*.json"))
    nb.click("Confirm")
    time.sleep(1.5)  # the plan made again a moment later counts from the same time
    # Run All: applied, exactly once, and archived after the last cell
    cells = nb.run_all()
    assert [errors(c) for c in cells] == [[], [], [], []]
    [applied] = nb.dir.glob("applied*.json")
    assert json.loads(applied.read_text())["steps"][0]["name"] == "thing-1"
    assert "Archived as interactive run" in text(cells[3])
    assert "Applied: demo for ticket 7: 1 to create" in text(cells[3])

    [entry] = Archive(outputs).list()
    assert entry.status == "interactive" and entry.operator == "kernel-test"
    assert entry.runbook == "demo" and entry.ticket == "7" and entry.exit_code == 0
    assert entry.results["confirmation"]["operator"] == "kernel-test"
    assert entry.results["plan"]["steps"][0]["name"] == "thing-1"
    assert Archive(outputs).verify() == []
    folder = entry.path
    for f in folder.iterdir():
        body = f.read_text()
        assert SECRET not in body and TOKEN not in body, f.name
    assert yaml.safe_load((folder / "parameters.yaml").read_text())["pw"] == "***"
    arch_nb = nbformat.read(folder / "notebook.ipynb", as_version=4)
    sources = [c.source for c in arch_nb.cells if c.cell_type == "code"]
    assert sources.count(FORM) == 3 and sources.count(APPLY) == 1  # every Run All, in order
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["event"] == "run"] == ["started", "interactive"]
    listed = run_cli("runs", "list", "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["interactive"]

    # the confirmation was used up: Run All again stops at the plan and applies nothing
    cells = nb.run_all()
    assert errors(cells[-1]) == ["StopAfterPlan"]
    assert len(list(nb.dir.glob("applied*.json"))) == 1


def test_a_plan_changed_since_the_click_is_refused(nb, outputs):
    nb.run_all()
    nb.click("Use these values")
    nb.run_all()
    nb.click("Confirm")
    (nb.dir / "facts.json").write_text(json.dumps({"name": "thing-1", "size": 2}))
    cells = nb.run_all()
    assert errors(cells[-1]) == ["StalePlan"] and len(cells) == 3
    assert "size changed" in cells[-1][-1]["evalue"]
    assert not list(nb.dir.glob("applied*.json")) and Archive(outputs).list() == []


def test_archive_button_records_what_ran(nb, outputs):
    nb.run_all()
    nb.click("Use these values")
    nb.run_all()  # stops at the plan: nothing applied
    nb.click("Archive this run")
    nb.run(0)  # the click is handled before this request
    [entry] = Archive(outputs).list()
    assert entry.status == "interactive" and entry.operator == "kernel-test"
    rec = json.loads((entry.path / "record.json").read_text())
    assert rec["opened_by"] == "archive" and rec["applied"] == [] and rec["approve"] is False
    assert Archive(outputs).verify() == []


def test_a_kernel_killed_before_the_end_leaves_an_abandoned_run(lab_env, outputs):
    nb = Notebook(lab_env, [PARAMS, FORM, PLAN, APPLY, TAIL])
    try:
        nb.run_all()
        nb.click("Use these values")
        nb.run_all()
        nb.click("Confirm")
        for i in range(4):  # not the last cell: the run stays open
            assert errors(nb.run(i)) == []
        [folder] = outputs.glob("demo/*/*")
        assert json.loads((folder / "record.json").read_text())["status"] == "running"
        nb.km.shutdown_kernel(now=True)  # killed, no atexit
    finally:
        nb.close()
    listed = run_cli("runs", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert row["status"] == "abandoned", listed.stderr
    nb_text = (folder / "notebook.ipynb").read_text()
    assert "applied" in nb_text and SECRET not in nb_text  # what it did until then


def test_a_kernel_shut_down_before_the_end_finishes_its_run(lab_env, outputs):
    nb = Notebook(lab_env, [PARAMS, FORM, PLAN, APPLY, TAIL])
    try:
        nb.run_all()
        nb.click("Use these values")
        nb.run_all()
        nb.click("Confirm")
        for i in range(4):
            assert errors(nb.run(i)) == []
        nb.km.shutdown_wait_time = 60  # the server waits 5 s; this machine is loaded
        nb.km.shutdown_kernel(now=False)  # what JupyterLab's "Shut Down Kernel" sends
    finally:
        nb.close()
    [entry] = Archive(outputs).list()
    assert entry.status == "interactive" and entry.exit_code == 1
    assert "shut down before the notebook's last cell" in entry.error
    assert Archive(outputs).verify() == []


def test_progress_is_a_live_bar_in_the_kernel(nb):
    nb.code.append(nbformat.v4.new_code_cell(
        "from fedcloud_lib import progress\n"
        "with progress.task(total=3, desc='boot servers') as t:\n"
        "    for i in range(3):\n"
        "        t.advance(text=f'web-{i} ACTIVE')"))
    outs = nb.run(len(nb.code) - 1)
    bars = [st for st in nb.widgets.values() if st.get("_model_name") == "IntProgressModel"]
    assert len(bars) == 1 and bars[0]["value"] == 3 and bars[0]["bar_style"] == "success"
    texts = [o["data"].get("text/plain", "") for o in outs if "data" in o]
    assert any(t.startswith("boot servers: done (3/3)") for t in texts)
    assert errors(outs) == []


def test_an_interactive_apply_is_refused_while_a_run_holds_the_lock(
        nb, outputs):
    """A headless run of the same runbook and ticket holds the lock: the confirmed plan is
    refused with the holder named, nothing is applied; once the lock is free it applies."""
    from fedcloud_lib.lock import RunLock

    nb.run_all()
    nb.click("Use these values")
    nb.run_all()
    nb.click("Confirm")
    held = RunLock(outputs / ".locks", "demo", "7").acquire("HEADLESS-RUN-1")
    try:
        cells = nb.run_all()
        assert errors(cells[2]) == ["LockError"] and "HEADLESS-RUN-1" in cells[2][-1]["evalue"]
        assert not list(nb.dir.glob("applied*.json"))
    finally:
        held.release()
    nb.run_all()  # the confirmation was used by the refused attempt: confirm again
    nb.click("Confirm")
    cells = nb.run_all()
    assert [errors(c) for c in cells] == [[], [], [], []]
    assert len(list(nb.dir.glob("applied*.json"))) == 1
    assert [e.status for e in Archive(outputs).list()] == ["interactive"]
