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
    recorded = PlaybookRun("site.yml", False, "failed", 2, 1.0, "/tmp/art", [],
                           record="ansible/02-site")
    with pytest.raises(RunbookError, match="ansible/02-site/stdout.txt in the run folder"):
        require_success(recorded)


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


def test_playbook_events_and_stdout_go_into_the_run_folder(tmp_path, monkeypatch, capsys):
    """The audit record: ansible-runner's own tree is rotated away (rotate_artifacts=10)
    outside the run folder, so each task result and the whole stdout are written,
    scrubbed, into the run folder, where the manifest covers them."""
    import json

    import yaml

    from fedcloud_lib.archive.files import compute_manifest
    from fedcloud_lib.cloudlet import settings as settings_mod

    monkeypatch.setattr(runner_mod, "STATE_DIR", tmp_path / "state")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "testing.yaml").write_text(yaml.safe_dump({"keystone_admin": "Kx9-s3cr3t-admin"}))
    monkeypatch.setattr(settings_mod, "SECRETS_DIR", secrets)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("FEDCLOUD_RUN_DIR", str(run_dir))
    target = tmp_path / "written.txt"
    book = tmp_path / "tiny.yml"
    book.write_text(f"""
- name: Tiny
  hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy: {{dest: "{target}", content: "hello\\n"}}
    - name: say the password
      ansible.builtin.debug: {{msg: "the password is Kx9-s3cr3t-admin"}}
    - name: fail but go on
      ansible.builtin.command: /bin/false
      ignore_errors: true
""")
    s = settings_from_parameters(cloudlet="testing", hosts=[
        {"name": "vm", "address": "localhost", "roles": ["controller", "compute"]}])
    check = run_playbook(s, str(book), check=True, out=lambda _: None)
    run = run_playbook(s, str(book))  # default out: fedcloud_lib.progress (printed here)
    assert run.status == "successful"
    assert (check.record, run.record) == ("ansible/01-tiny-check", "ansible/02-tiny")
    events = [json.loads(x) for x in (run_dir / "ansible/02-tiny/events.jsonl").read_text()
              .splitlines()]
    tasks = [e for e in events if e["event"] == "task"]
    assert [(t["host"], t["task"], t["changed"], t["failed"]) for t in tasks] == [
        ("vm", "write a file", True, False), ("vm", "say the password", False, False),
        ("vm", "fail but go on", False, True)]
    assert all(isinstance(t["duration"], float) for t in tasks)
    assert events[0] == {"event": "play", "play": "Tiny", "at": events[0]["at"]}
    assert events[-1]["event"] == "end" and events[-1]["rc"] == 0 and events[-1]["changed"] == 1
    stdout = (run_dir / "ansible/02-tiny/stdout.txt").read_text()
    assert "PLAY RECAP" in stdout and "TASK [write a file]" in stdout
    everything = "".join(p.read_text() for p in run_dir.rglob("*") if p.is_file())
    assert "Kx9-s3cr3t-admin" not in everything and "the password is ***" in everything
    assert {"ansible/01-tiny-check/events.jsonl", "ansible/02-tiny/events.jsonl",
            "ansible/02-tiny/stdout.txt"} <= set(compute_manifest(run_dir))
    assert oct((run_dir / "ansible/02-tiny/stdout.txt").stat().st_mode & 0o777) == "0o600"
    printed = capsys.readouterr().out  # what a terminal sees as the play goes
    assert "changed vm: write a file" in printed and "failed vm: fail but go on" in printed


def test_outside_a_run_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "STATE_DIR", tmp_path / "state")
    monkeypatch.delenv("FEDCLOUD_RUN_DIR", raising=False)
    book = tmp_path / "noop.yml"
    book.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.debug: {msg: hi}\n")
    s = settings_from_parameters(cloudlet="testing", hosts=[
        {"name": "vm", "address": "localhost", "roles": ["controller", "compute"]}])
    run = run_playbook(s, str(book), out=lambda _: None)
    assert run.record is None and run.summary()["record"] is None
