"""Real kernels on the fixture notebooks; assertions on the archive the runs leave."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from fedcloud_lib.archive.index import Archive
from tests.conftest import run_cli, start_cli

pytestmark = pytest.mark.runbook


def only_run(outputs: Path, runbook: str) -> Path:
    (folder,) = sorted(outputs.glob(f"{runbook}/*/*"))
    return folder


def record(folder: Path) -> dict:
    return json.loads((folder / "record.json").read_text())


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear in {timeout}s")


def test_success_is_archived_with_everything(outputs, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("name: carol\ncount: 2\n")
    r = run_cli("run", "ok", "-f", str(params), "-p", "count", "3", "--operator", "auditor1",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    folder = only_run(outputs, "ok")
    assert sorted(p.name for p in folder.iterdir()) == [
        "MANIFEST.sha256", "events.jsonl", "notebook.html", "notebook.ipynb",
        "parameters.yaml", "record.json"]
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert yaml.safe_load((folder / "parameters.yaml").read_text())["count"] == 3
    rec = record(folder)
    assert rec["status"] == "succeeded" and rec["exit_code"] == 0
    assert rec["operator"] == "auditor1" and rec["runbook"] == "ok"
    assert rec["results"]["greeting"] == "hello carol"
    assert rec["results"]["table"] == [{"n": i, "who": "carol"} for i in range(3)]
    assert rec["results"]["run"] == rec["run_id"]  # the kernel knew its run id
    assert rec["runbook_version"].startswith(("git:", "sha256:")) and rec["duration"] > 0
    nb = json.loads((folder / "notebook.ipynb").read_text())
    assert nb["metadata"]["fedcloud"]["results"]["greeting"] == "hello carol"
    assert "hello carol" in (folder / "notebook.html").read_text()
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    cells = [e for e in events if e["event"] == "cell"]
    assert len(cells) == len(nb["cells"]) and all(c["status"] == "completed" for c in cells)
    assert all(c["start"] and c["end"] for c in cells if c["cell_type"] == "code")
    assert events[0]["status"] == "started" and events[-1]["status"] == "succeeded"
    # the index knows it, show prints it, verify is happy
    r = run_cli("runs", "show", rec["run_id"])
    assert r.returncode == 0 and "hello carol" in r.stdout and "auditor1" in r.stdout
    r = run_cli("runs", "list", "--runbook", "ok", "--json")
    assert [x["run_id"] for x in json.loads(r.stdout)] == [rec["run_id"]]
    assert run_cli("runs", "verify").returncode == 0


def test_failure_is_archived_and_exits_1(outputs):
    r = run_cli("run", "fail", "-p", "what", "kaput", "--no-progress")
    assert r.returncode == 1
    assert "failed on purpose: kaput" in r.stderr
    folder = only_run(outputs, "fail")
    rec = record(folder)
    assert rec["status"] == "failed" and "RuntimeError: failed on purpose: kaput" in rec["error"]
    nb = json.loads((folder / "notebook.ipynb").read_text())
    assert "before the failure" in json.dumps(nb) and "never printed" not in json.dumps(nb["cells"][-1].get("outputs"))
    assert (folder / "notebook.html").exists()
    r = run_cli("runs", "list", "--status", "failed", "--json")
    assert [x["run_id"] for x in json.loads(r.stdout)] == [rec["run_id"]]


def test_bad_parameters_refused_before_any_kernel_and_logged(outputs):
    r = run_cli("run", "ok", "-p", "count", "9", "-p", "nmae", "x", "--no-progress")
    assert r.returncode == 2
    assert "count: 9 is not allowed" in r.stderr and "value 1..5" in r.stderr
    assert "nmae: unknown parameter" in r.stderr
    assert not list(outputs.glob("ok/*/*")), "a refused run must not be archived as a run"
    logged = [json.loads(x) for x in (outputs / "fedcloud.log").read_text().splitlines()]
    assert logged[-1]["event"] == "refused" and "count: 9" in logged[-1]["message"]
    r = run_cli("run", "nosuchbook")
    assert r.returncode == 2 and "available: " in r.stderr
    r = run_cli("run", "ok", "--cloud", "no-such-cloud")
    assert r.returncode == 2 and "no-such-cloud" in r.stderr


def test_dry_run_stops_after_plan_and_approve_applies(outputs):
    r = run_cli("run", "planner", "--no-progress")
    assert r.returncode == 0, r.stderr
    rec = record(only_run(outputs, "planner"))
    assert rec["status"] == "planned" and "applied" not in rec["results"]
    assert rec["results"]["plan"]["steps"][0] == {"action": "create", "kind": "server",
                                                  "name": "web01", "detail": "",
                                                  "inputs": {"name": "web01"}}
    assert rec["results"]["plan"]["run_id"] == rec["run_id"]
    r = run_cli("run", "planner", "--approve", "--no-progress")
    assert r.returncode == 0
    runs = json.loads(run_cli("runs", "list", "--json").stdout)
    assert [x["status"] for x in runs] == ["planned", "succeeded"]
    assert run_cli("run", "ok", "--approve").returncode == 0  # ok declares approve
    r = run_cli("run", "fail", "--approve")
    assert r.returncode == 2 and "declares no approve parameter" in r.stderr


def _dry_run(facts_file: Path) -> str:
    r = run_cli("run", "planner", "-p", "facts_file", str(facts_file), "--no-progress")
    assert r.returncode == 0, r.stderr
    return r.stderr.split("run ", 1)[1].split(":", 1)[0]


def test_a_recorded_plan_is_applied_exactly_and_the_pair_is_shown(outputs, tmp_path):
    facts = tmp_path / "facts"
    facts.write_text("web07")
    planned = _dry_run(facts)
    r = run_cli("run", "planner", "--approve-plan", planned, "--no-progress")
    assert r.returncode == 0, r.stderr
    applied = json.loads(run_cli("runs", "list", "--status", "succeeded", "--json").stdout)[0]
    rec = record(outputs / "planner" / applied["started"][:10] / applied["run_id"])
    assert rec["results"]["applied"] == ["web07"] and rec["plan_of"] == planned
    assert rec["results"]["approved_plan_of"] == planned
    approved = json.loads((outputs / "planner" / applied["started"][:10] / applied["run_id"]
                           / "inputs" / "approved-plan.json").read_text())
    assert approved["run_id"] == planned and approved["steps"][0]["name"] == "web07"
    shown = run_cli("runs", "show", planned).stdout
    assert f"applied by run(s) {applied['run_id']}" in shown
    assert f"applies the plan recorded by dry run {planned}" in run_cli(
        "runs", "show", applied["run_id"]).stdout
    assert run_cli("runs", "verify").returncode == 0
    # a plan that was applied is not a dry run's plan any more: approving the applying run fails
    r = run_cli("run", "planner", "--approve-plan", applied["run_id"], "--no-progress")
    assert r.returncode == 2 and "only the plan of a dry run" in r.stderr


def test_a_stale_plan_is_refused_and_nothing_is_done(outputs, tmp_path):
    facts = tmp_path / "facts"
    facts.write_text("web07")
    planned = _dry_run(facts)
    facts.write_text("web08")  # the cloud changed between the dry run and the approval
    r = run_cli("run", "planner", "--approve-plan", planned, "--no-progress")
    assert r.returncode == 1, r.stderr
    assert "stale-plan" in r.stderr and "web07 became create server web08" in r.stderr
    [stale] = json.loads(run_cli("runs", "list", "--status", "stale-plan", "--json").stdout)
    rec = record(outputs / "planner" / stale["started"][:10] / stale["run_id"])
    assert "applied" not in rec["results"]
    assert rec["results"]["stale_plan"]["approved"][0]["name"] == "web07"
    assert rec["results"]["stale_plan"]["current"][0]["name"] == "web08"


def test_approving_a_plan_needs_a_verified_archive_and_the_same_parameters(outputs, tmp_path):
    facts = tmp_path / "facts"
    facts.write_text("web07")
    planned = _dry_run(facts)
    r = run_cli("run", "planner", "--approve-plan", planned, "-p", "facts_file", "/elsewhere")
    assert r.returncode == 2 and "facts_file: '/elsewhere' differs" in r.stderr
    r = run_cli("run", "ok", "--approve-plan", planned)
    assert r.returncode == 2 and "is a run of planner, not of ok" in r.stderr
    r = run_cli("run", "planner", "--approve-plan", "no-such-run")
    assert r.returncode == 2 and "no archived run" in r.stderr
    # the reviewed plan was edited in the archive: the chain no longer verifies
    [folder] = list(outputs.glob(f"planner/*/{planned}"))
    nb = folder / "notebook.ipynb"
    nb.write_text(nb.read_text().replace("web07", "web66"))
    r = run_cli("run", "planner", "--approve-plan", planned, "--no-progress")
    assert r.returncode == 1 and "does not verify" in r.stderr and "notebook.ipynb" in r.stderr
    assert json.loads(run_cli("runs", "list", "--status", "succeeded", "--json").stdout) == []


def test_secrets_never_reach_the_archive(outputs, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  leaktest:\n    auth: {auth_url: 'http://127.0.0.1:9/v3', "
                      "username: u, password: 'Cl0ud-Pw<&>!', project_name: p}\n")
    sdir = tmp_path / "secrets"
    sdir.mkdir()
    (sdir / "testing.yaml").write_text("mysql_root: SiteFileS3cret\n")
    site = tmp_path / "site.txt"
    site.write_text("SiteFileS3cret")
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "FEDCLOUD_TEST_TOKEN": "EnvTok3nValue",
           "LEAKY_SECRET_FILE": str(site), "FEDCLOUD_SECRETS_DIR": str(sdir)}
    password = 'Pa55"w<o>rd&x'
    r = run_cli("run", "leaky", "-p", "password", password, "--cloud", "leaktest",
                "--no-progress", env=env)
    assert r.returncode == 1  # the notebook raises at its end, with the password
    folder = only_run(outputs, "leaky")
    needles = ["Pa55", "Cl0ud-Pw", "EnvTok3nValue", "SiteFileS3cret",
               "b3BlbnNzaC1rZXktdjEAAAAA", "gAAAAABnotarealtoken"]
    for f in [*folder.iterdir(), outputs / "index.sqlite"]:
        data = f.read_bytes().decode("utf-8", "replace")
        for n in needles:
            assert n not in data, f"{n} leaked into {f.name}"
    for n in needles:
        assert n not in r.stdout + r.stderr
    rec = record(folder)
    assert rec["error"] == "cell 10: ValueError: cannot log in with ***"
    assert rec["results"]["creds"] == {"user": "alice", "password": "***"}
    nb = (folder / "notebook.ipynb").read_text()
    assert "password is ***" in nb and "cloud password ***" in nb and "env token ***" in nb


def test_kernel_talks_over_private_unix_sockets_that_are_removed(outputs, tmp_path):
    tmp = tmp_path / "tmp"
    marker = tmp_path / "kernel.pid"
    p = start_cli("run", "sleepy", "-p", "marker", str(marker), "-p", "seconds", "1")
    wait_for(marker)
    (sockets,) = tmp.glob("fedcloud-kernel-*")
    assert oct(sockets.stat().st_mode & 0o777) == "0o700"
    assert sorted(x.name for x in sockets.iterdir())[:2] == ["kernel-1", "kernel-2"]
    assert p.wait(timeout=120) == 0
    assert list(tmp.iterdir()) == []


def test_kernel_killed_mid_run_is_archived_as_failed(outputs, tmp_path):
    marker = tmp_path / "kernel.pid"
    tmp = tmp_path / "tmp"
    p = start_cli("run", "sleepy", "-p", "marker", str(marker))
    kernel_pid = int(wait_for(marker))
    os.kill(kernel_pid, signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    rec = record(only_run(outputs, "sleepy"))
    assert rec["status"] == "failed" and "kernel died" in rec["error"]
    assert list(tmp.iterdir()) == [], "the kernel's socket directory was left behind"
    nb = json.loads((only_run(outputs, "sleepy") / "notebook.ipynb").read_text())
    assert "kernel pid" in json.dumps(nb)  # what ran before the death is kept
    assert run_cli("runs", "verify").returncode == 0


def test_ctrl_c_is_archived_as_interrupted(outputs, tmp_path):
    marker = tmp_path / "kernel.pid"
    tmp = tmp_path / "tmp"
    p = start_cli("run", "sleepy", "-p", "marker", str(marker))
    wait_for(marker)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    rec = record(only_run(outputs, "sleepy"))
    assert rec["status"] == "interrupted" and "Ctrl-C" in rec["error"]
    assert list(tmp.iterdir()) == [], "the kernel's socket directory was left behind"
    assert (only_run(outputs, "sleepy") / "notebook.html").exists()


def test_fedcloud_process_killed_is_archived_as_abandoned(outputs, tmp_path):
    marker = tmp_path / "kernel.pid"
    p = start_cli("run", "sleepy", "-p", "marker", str(marker))
    kernel_pid = int(wait_for(marker))
    p.kill()
    p.wait()
    os.kill(kernel_pid, signal.SIGKILL)
    r = run_cli("runs", "list", "--json")
    assert "archived as abandoned" in r.stderr
    (run,) = json.loads(r.stdout)
    assert run["status"] == "abandoned"
    assert run_cli("runs", "verify").returncode == 0


def test_one_run_per_ticket_at_a_time(outputs, tmp_path):
    marker = tmp_path / "kernel.pid"
    first = start_cli("run", "sleepy", "-p", "ticket", "4242", "-p", "marker", str(marker))
    try:
        wait_for(marker)
        holder = json.loads(next(outputs.glob(".locks/*4242*")).read_text())["run_id"]
        r = run_cli("run", "sleepy", "-p", "ticket", "4242", "-p", "seconds", "0")
        assert r.returncode == 3 and holder in r.stderr and "ticket 4242" in r.stderr
        r = run_cli("run", "sleepy", "-p", "ticket", "4343", "-p", "seconds", "0")
        assert r.returncode == 0, r.stderr
    finally:
        first.kill()
        first.wait()
    os.kill(int(marker.read_text()), signal.SIGKILL)
    r = run_cli("run", "sleepy", "-p", "ticket", "4242", "-p", "seconds", "0", "--no-progress")
    assert r.returncode == 0, r.stderr
    runs = Archive(outputs).list(ticket="4242")
    assert [e.status for e in runs] == ["abandoned", "succeeded"]
    took = json.loads((runs[-1].path / "record.json").read_text())
    assert took["took_over_lock_from"] == holder


def test_per_cell_timeout_fails_the_run(outputs):
    r = run_cli("run", "sleepy", "-p", "seconds", "30", "--timeout", "2", "--no-progress")
    assert r.returncode == 1
    rec = record(only_run(outputs, "sleepy"))
    assert rec["status"] == "failed" and "2 seconds" in rec["error"]


def test_tamper_detection_through_the_cli(outputs):
    assert run_cli("run", "ok", "--no-progress").returncode == 0
    assert run_cli("run", "ok", "-p", "name", "dave", "--no-progress").returncode == 0
    first, second = Archive(outputs).list()
    html = first.path / "notebook.html"
    html.write_text(html.read_text().replace("hello world", "hello forged"))
    r = run_cli("runs", "verify")
    assert r.returncode == 1 and f"{first.run_id}: file edited: notebook.html" in r.stdout
    (outputs / "index.sqlite").unlink()
    r = run_cli("runs", "reindex")
    assert r.returncode == 1 and first.run_id in r.stdout and "notebook.html" in r.stdout
    assert [e.run_id for e in Archive(outputs).list()] == [first.run_id, second.run_id]
