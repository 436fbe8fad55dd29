"""Nagios checks: thresholds, the plugin API's output and exit codes, readable failures
(a synthetic cloud over HTTP, a dead port, a real archive in a temporary folder)."""
from __future__ import annotations

import datetime as dt
import json
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fedcloud_lib.archive.index import Archive
from fedcloud_lib.checks import cli
from fedcloud_lib.checks.nagios import BadInput, Thresholds, parse_thresholds, run
from tests.fakes.openstack import PROJECT_ID, FakeOpenStack

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
STATUS = re.compile(r"^FEDCLOUD [A-Z]+ (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| [^\n]+)?$")


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    with FakeOpenStack() as c:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", c.clouds_yaml(tmp_path / "clouds.yaml"))
        monkeypatch.setenv("OS_CLOUD", "fake")
        c.add_host("cmp1", vcpus=(100, 50))
        c.add_host("cmp2", vcpus=(100, 10))
        c.services += [{"id": "s1", "binary": "nova-scheduler", "host": "ctl", "state": "up",
                        "status": "enabled", "forced_down": False, "zone": "internal",
                        "disabled_reason": None}]
        c.agents += [{"id": "a1", "binary": "neutron-linuxbridge-agent", "host": "cmp1",
                      "alive": True, "admin_state_up": True, "agent_type": "Linux bridge agent"}]
        c.volume_services += [{"binary": "cinder-volume", "host": "ctl@fake", "state": "up",
                               "status": "enabled", "zone": "nova"}]
        c.quotas[PROJECT_ID] = {"instances": (10, 7), "cores": (20, 1), "ram": (1000, 10),
                                "volumes": (10, 0), "gigabytes": (100, 0)}
        yield c


def check(*args: str, capsys=None) -> tuple[int, str]:
    code = cli.main(["check", *args])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1 and STATUS.match(lines[0]), out  # one status line, nothing else
    assert "Traceback" not in out
    return code, lines[0]


# ------------------------------------------------------------------ thresholds and bad input
def test_thresholds():
    assert parse_thresholds(None, None, (80, 95)) == Thresholds(80, 95)
    assert parse_thresholds("70", "", (80, 95)) == Thresholds(70, 95)
    for w, c, msg in (("90", "80", "wrong order"), ("-1", None, "negative"),
                      ("x", None, "not a number"), ("nan", None, "negative"),
                      ("101", None, "above 100")):
        with pytest.raises(BadInput, match=msg):
            parse_thresholds(w, c, (80, 95), upper=100)


@pytest.mark.parametrize("args,msg", [
    (["nosuch"], "unknown check 'nosuch'"),
    ([], "which check?"),
    (["capacity", "-w", "90", "-c", "80"], "wrong order"),
    (["expiry", "--warning", "-2"], "negative"),
    (["expiry", "--window", "-2"], "--window -2 is negative"),
    (["hypervisors", "--bogus"], "unrecognized arguments: --bogus"),
    (["hypervisors", "-t", "0"], "--timeout 0"),
])
def test_bad_input_is_unknown_before_any_cloud_call(args, msg, capsys, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml")
    code, line = check(*args, capsys=capsys)
    assert code == 3 and " UNKNOWN - " in line and msg in line


# ------------------------------------------------------------------ hypervisors
def test_hypervisors_ok_then_forced_down_and_disabled_are_critical(cloud, capsys):
    code, line = check("hypervisors", capsys=capsys)
    assert code == 0 and line.startswith("FEDCLOUD HYPERVISORS OK - 2 hypervisors up")
    assert "unavailable=0;;0;0" in line
    cloud.services[1].update(forced_down=True, state="down")
    code, line = check("hypervisors", capsys=capsys)
    assert code == 2 and "CRITICAL - 1 of 2 hypervisors unavailable: cmp2 forced down" in line
    cloud.services[1].update(forced_down=False, state="up", status="disabled",
                             disabled_reason="maintenance")
    code, line = check("hypervisors", capsys=capsys)
    assert code == 2 and "cmp2 disabled (maintenance)" in line
    code, line = check("hypervisors", "-w", "0", "-c", "1", capsys=capsys)
    assert code == 1 and "WARNING" in line


def test_one_api_down_is_critical_for_services_and_unknown_elsewhere(cloud, capsys):
    """nova-api stopped, Keystone and Neutron up: `check services` is CRITICAL naming the
    compute API and why, and still counts the agents; `check hypervisors` is UNKNOWN."""
    cloud.moved["compute"] = "http://127.0.0.1:9/compute/v2.1"
    code, line = check("services", capsys=capsys)
    assert code == 2, line
    assert "1 API(s) down: compute API (cannot connect to http://127.0.0.1:9/" in line, line
    assert "Connection refused" in line and "the 2 services behind the other APIs are up" in line
    code, line = check("hypervisors", capsys=capsys)
    assert code == 3 and "cannot connect to http://127.0.0.1:9/" in line, line
    # an agent down behind the API that answers is still reported
    cloud.agents[0]["alive"] = False
    code, line = check("services", capsys=capsys)
    assert code == 2 and "1 of 2 other services down: neutron-linuxbridge-agent@cmp1" in line, line


def test_services_down_is_critical_and_disabled_is_named(cloud, capsys):
    code, line = check("services", capsys=capsys)
    assert code == 0 and "5 services up" in line
    cloud.agents[0]["alive"] = False
    cloud.services[0]["status"] = "disabled"
    code, line = check("services", capsys=capsys)
    assert code == 2 and "1 of 5 services down: neutron-linuxbridge-agent@cmp1" in line
    assert "disabled: nova-compute@cmp1" in line


# ------------------------------------------------------------------ capacity
def test_capacity_thresholds_on_the_fullest(cloud, capsys):
    code, line = check("capacity", capsys=capsys)
    assert code == 0 and "fullest quota: admin instances at 70 %" in line
    assert "quota_max=70.0%;80;95;0;100" in line and "host_cmp1=50.0%" in line
    code, line = check("capacity", "-w", "60", "-c", "90", capsys=capsys)
    assert code == 1
    code, line = check("capacity", "-w", "40", "-c", "60", capsys=capsys)
    assert code == 2
    code, line = check("capacity", "--project", "nosuch", capsys=capsys)
    assert code == 3 and "project: 'nosuch'" in line


# ------------------------------------------------------------------ expiry
def test_expiry_hours_overdue(cloud, capsys, monkeypatch):
    now = dt.datetime.now(dt.timezone.utc)
    cloud.server("late", created=now - dt.timedelta(days=2), metadata={
        "fedcloud_expires_at": (now - dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    cloud.server("bld", created=now - dt.timedelta(hours=30), metadata={
        "fedcloud_class": "builder", "fedcloud_expires_at": "2099-01-01T00:00:00Z"})
    code, line = check("expiry", capsys=capsys)
    assert code == 1 and "2 server(s) past their deadline, the oldest by 6" in line
    assert "late" in line and "bld" in line and "expired=2" in line
    code, line = check("expiry", "-c", "3", "-w", "1", capsys=capsys)
    assert code == 2
    code, line = check("expiry", "--name-prefix", "nothing-", capsys=capsys)
    assert code == 0 and "no server past its deadline" in line


# ------------------------------------------------------------------ unreachable cloud
def test_unreachable_api_is_critical_for_services_unknown_for_the_rest(cloud, tmp_path,
                                                                       monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    text = (tmp_path / "clouds.yaml").read_text().replace(cloud.url, f"http://127.0.0.1:{dead}")
    (tmp_path / "dead.yaml").write_text(text)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "dead.yaml"))
    code, line = check("services", capsys=capsys)
    assert code == 2 and "cloud API unreachable: cannot connect to http://127.0.0.1:" in line
    assert "Connection refused" in line
    for name in ("hypervisors", "capacity", "expiry"):
        code, line = check(name, capsys=capsys)
        assert code == 3 and "Connection refused" in line, line


def test_failing_api_is_unknown_with_the_reason(cloud, capsys):
    cloud.fail_status = 503
    code, line = check("hypervisors", capsys=capsys)
    assert code == 3 and "503" in line


def test_unknown_cloud_entry_is_unknown(cloud, capsys):
    code, line = check("services", "--cloud", "nosuch", capsys=capsys)
    assert code == 3 and "cloud not configured" in line


# ------------------------------------------------------------------ archive
def make_runs(root: Path, n: int = 3) -> Archive:
    arch = Archive(root)
    arch.ensure()
    for i in range(n):
        started = dt.datetime(2026, 11, 1 + i, tzinfo=dt.timezone.utc)
        folder = arch.run_folder("demo", f"run{i}", started)
        (folder / "notebook.ipynb").write_text(json.dumps({"cells": [], "i": i}))
        rec = {"run_id": f"run{i}", "runbook": "demo", "started": started.isoformat(),
               "ended": started.isoformat(), "status": "succeeded", "operator": "op",
               "ticket": None, "cloud": None, "results": {}}
        arch.append(folder, rec, lambda r, f=folder: (f / "record.json").write_text(json.dumps(r)))
    return arch


def test_archive_ok_then_broken_chain_is_critical(tmp_path, capsys):
    arch = make_runs(tmp_path / "outputs")
    code, line = check("archive", "--outputs", str(arch.root), capsys=capsys)
    assert code == 0 and "3 run(s)" in line and "chain intact" in line
    con = sqlite3.connect(arch.db_path)
    con.execute("UPDATE runs SET status = 'failed' WHERE run_id = 'run1'")
    con.commit()
    con.close()
    code, line = check("archive", "--outputs", str(arch.root), capsys=capsys)
    assert code == 2 and "run1: index entry edited" in line and "problems=" in line


def test_archive_that_is_not_there_is_unknown(tmp_path, capsys):
    code, line = check("archive", "--outputs", str(tmp_path / "none"), capsys=capsys)
    assert code == 3 and "no archive at" in line
    assert not (tmp_path / "none").exists()  # a check changes nothing


def test_the_command_line_entry_point(tmp_path):
    """What Nagios runs: the ``fedcloud`` command, exit code and stdout only."""
    r = subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", "check", "archive",
                        "--outputs", str(tmp_path / "none")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 3 and STATUS.match(r.stdout.strip()) and r.stderr == ""
    r = subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", "check", "nosuch"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "unknown check" in r.stdout


def test_run_reports_a_timeout_as_unknown(cloud):
    from fedcloud_lib.checks.nagios import Probe

    class Slow(Probe):
        name = "slow"

        def measure(self):
            import time
            time.sleep(5)
            return []

    code, text = run(Slow(), Thresholds(None, 0), timeout=1)
    assert code == 3 and "no answer within 1 s" in text
