"""ansible-runner driver: events become task rows; a check-mode plan never leaks into
the next apply; failures name the task."""
from __future__ import annotations

import pytest

from fedcloud_lib.cloudlet import runner as runner_mod
from fedcloud_lib.cloudlet.runner import PlaybookRun, TaskResult, _EventSink, require_success, run_playbook
from fedcloud_lib.cloudlet.settings import settings_from_parameters
from fedcloud_lib.errors import RunbookError

pytestmark = pytest.mark.unit


def _ev(kind, task, changed=False, **res):
    return {"event": kind, "event_data": {"host": "vm", "task": task, "play": "p", "duration": 0.5,
                                          "res": {"changed": changed, **res}}}


def test_event_sink_keeps_results_and_prints_lines():
    lines = []
    sink = _EventSink(lines.append, verbose=False)
    sink({"event": "playbook_on_play_start", "event_data": {"play": "Controller"}})
    sink(_ev("runner_on_ok", "write nova.conf", changed=True))
    sink(_ev("runner_on_ok", "stat"))
    sink(_ev("runner_on_skipped", "systemd only"))
    sink(_ev("runner_on_failed", "start keystone", msg="port 5000 did not open"))
    assert [t.status for t in sink.tasks] == ["changed", "ok", "skipped", "failed"]
    assert sink.tasks[-1].message == "port 5000 did not open"
    text = "\n".join(lines)
    assert "PLAY Controller" in text and "changed vm: write nova.conf" in text
    assert "systemd only" not in text  # skipped lines only when verbose
    assert "failed vm: start keystone -- port 5000 did not open" in text


def test_no_log_results_still_count_as_changed():
    sink = _EventSink(lambda _: None, verbose=False)
    censored = {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified"}
    sink({"event": "runner_on_ok", "stdout": "changed: [vm]",
          "event_data": {"host": "vm", "task": "bootstrap", "res": censored}})
    sink({"event": "runner_on_ok", "stdout": "ok: [vm]",
          "event_data": {"host": "vm", "task": "check password", "res": censored}})
    assert [t.status for t in sink.tasks] == ["changed", "ok"]


def test_require_success_names_failed_tasks():
    run = PlaybookRun("site.yml", False, "failed", 2, 1.0, "/tmp/art",
                      [TaskResult("vm", "p", "start glance", "failed", 1.0, "boom")])
    with pytest.raises(RunbookError) as e:
        require_success(run)
    assert "vm: start glance: boom" in str(e.value) and "/tmp/art/stdout" in str(e.value)
    ok = PlaybookRun("site.yml", False, "successful", 0, 1.0, "/tmp/art", [])
    assert require_success(ok) is ok


def test_check_mode_does_not_stick_to_the_next_run(tmp_path, monkeypatch):
    """Regression: ansible-runner stores a cmdline in env/cmdline and reuses it when the
    next run gives none, so a plan (--check) silently made the next apply a dry run."""
    monkeypatch.setattr(runner_mod, "STATE_DIR", tmp_path / "state")
    target = tmp_path / "written.txt"
    book = tmp_path / "book.yml"
    book.write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy: {{dest: "{target}", content: "hello\\n"}}
""")
    s = settings_from_parameters(cloudlet="testing", hosts=[
        {"name": "vm", "address": "localhost", "roles": ["controller", "compute"]}])
    plan = run_playbook(s, str(book), check=True, out=lambda _: None)
    assert plan.status == "successful" and [t.status for t in plan.tasks] == ["changed"]
    assert not target.exists()
    applied = run_playbook(s, str(book), out=lambda _: None)
    assert applied.summary()["check_mode"] is False
    assert target.read_text() == "hello\n"
    again = run_playbook(s, str(book), out=lambda _: None)
    assert [t.status for t in again.tasks] == ["ok"] and again.changed == []
