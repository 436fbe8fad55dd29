"""mass-rebuild-burst, the small parts: boot throttle and method choice, leftover
classification, results CSV and resume, report, policy section, watchdog."""
from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import yaml
from openstack import exceptions as os_exc

from fedcloud_lib.burst import provision, report, results, sweep, watchdog
from fedcloud_lib.burst.apply import BurstOutcome
from fedcloud_lib.burst.results import BuildResult, Previous
from fedcloud_lib.errors import ConfigError
from fedcloud_lib.site import policy as pol

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def test_boot_throttle_halves_on_failure_and_grows_back_slowly():
    fresh = provision.BootThrottle(4, 1, 10)
    for _ in range(4):
        fresh.success()
    assert fresh.value == 8  # slow start: doubles per wave while nothing failed
    for _ in range(8):
        fresh.success()
    assert fresh.value == 10  # up to the ceiling
    t = provision.BootThrottle(12, 2, 20)
    t.failure()
    assert t.value == 6
    t.failure(), t.failure()
    assert t.value == 2  # never below the floor
    for _ in range(2):
        t.success()
    assert t.value == 3  # one more after a full window of good boots
    for _ in range(3):
        t.success()
    assert t.value == 4
    big = provision.BootThrottle(30, 2, 20)
    assert big.value == 20  # started within the bounds


def _prov(method="auto") -> provision.Provisioner:
    spec = provision.BuilderSpec("fcb-x", "f", "i", "n", "k", "g", {}, 3600)
    return provision.Provisioner(NS(get=lambda: None), spec, target=4,
                                 throttle=provision.BootThrottle(4, 1, 4), method=method,
                                 run_id="r", operator="op")


def test_the_first_wave_measures_both_methods_and_keeps_the_faster():
    p = _prov()
    p._probe = {"multi": {"n": 2, "t": [], "done": 0}, "pool": {"n": 2, "t": [], "done": 0}}
    p._probe_note("multi", 30.0, True)
    p._probe_note("pool", 12.0, True)
    p._probe_note("pool", 14.0, True)
    assert p.chosen is None  # not before both halves are in
    p._probe_note("multi", 31.0, True)
    assert p.chosen == "pool"  # 7 s per server against 15.5
    assert p.stats()["probe"] == {"multi": {"servers": 2, "seconds": 15.5},
                                  "pool": {"servers": 2, "seconds": 7.0}}
    tie = _prov()
    tie._probe = {"multi": {"n": 2, "t": [], "done": 0}, "pool": {"n": 2, "t": [], "done": 0}}
    for m, secs in (("multi", 20.0), ("multi", 21.0), ("pool", 20.0), ("pool", 20.0)):
        tie._probe_note(m, secs, True)
    assert tie.chosen == "multi"  # the pool must be clearly faster: multi scales better
    assert _prov("multi").chosen == "multi"
    with pytest.raises(ValueError):
        _prov("fast")


def test_quota_errors_and_addresses():
    quota = os_exc.HttpException(message="Quota exceeded for instances", http_status=403)
    assert provision.is_quota_error(quota)
    assert not provision.is_quota_error(os_exc.HttpException(message="boom", http_status=500))
    s = NS(addresses={"provider": [{"addr": "2001:db8::5", "version": 6},
                                   {"addr": "198.51.100.7", "version": 4}]})
    assert provision.address_of(s) == "198.51.100.7"
    assert provision.address_of(NS(addresses={})) is None


def _server(name, burst, run, expires, status="ACTIVE"):
    return NS(id=f"id-{name}", name=name, status=status, flavor={"vcpus": 2, "ram": 5120},
              metadata={"fedcloud_role": "burst-builder", "fedcloud_burst": burst,
                        "fedcloud_run_id": run, "fedcloud_expires_at": expires})


def test_leftovers_say_which_builders_may_go():
    servers = [_server("same", "mr1", "r1", "2026-11-25T00:00:00Z"),
               _server("over", "mr2", "r2", "2026-11-25T00:00:00Z"),
               _server("expired", "mr3", "r3", "2026-11-24T11:00:00Z"),
               _server("live", "mr4", "r4", "2026-11-25T00:00:00Z"),
               _server("mine", "mr1", "r-now", "2026-11-25T00:00:00Z")]
    got = {b.name: b.reason for b in sweep.leftovers(servers, burst="mr1", finished={"r2": "failed"},
                                                     now=NOW, current_run="r-now")}
    assert got == {"same": "left by run r1 of this burst", "over": "run r2 is over (failed)",
                   "expired": "expired at 2026-11-24T11:00:00Z", "live": ""}


def _row(pkg, status, run="r1", tail=""):
    return BuildResult(pkg, status, 1.5, "b1", 1, "2026-11-24T12:00:00Z", "2026-11-24T12:00:02Z",
                       0 if status == "built" else 1, 2.0, run, tail)


def test_results_csv_round_trip_and_a_torn_last_line(tmp_path):
    f = results.ResultsFile(tmp_path)
    f.add(_row("bash", "built"))
    f.add(_row("zsh", "ftbfs", tail="line 1\nerror: \"quoted\", comma"))
    f.close()
    with open(tmp_path / results.CSV_NAME, "a") as out:
        out.write("kernel,bui")  # a run killed in the middle of a line
    got = results.read_csv(tmp_path / results.CSV_NAME)
    assert [r.package for r in got] == ["bash", "zsh"]
    assert got[1].log_tail == "line 1\nerror: \"quoted\", comma" and got[1].exit_status == 1
    again = results.ResultsFile(tmp_path)  # appending keeps one header
    again.close()
    assert (tmp_path / results.CSV_NAME).read_text().count("package,status") == 1
    with pytest.raises(ValueError):
        _row("x", "exploded")


def test_previous_results_read_the_archived_runs_of_the_burst(tmp_path):
    entries = []
    for i, rows in enumerate([[_row("a", "built", "r1"), _row("b", "infra-error", "r1")],
                              [_row("b", "ftbfs", "r2"), _row("c", "infra-error", "r2")]]):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        f = results.ResultsFile(folder)
        for r in rows:
            f.add(r)
        f.close()
        entries.append(NS(run_id=f"r{i + 1}", path=folder))
    entries.append(NS(run_id="r3", path=tmp_path / "dry-run"))  # a dry run: no CSV
    archive = NS(list=lambda runbook, ticket: entries if (runbook, ticket) == (
        "mass-rebuild-burst", "mr1") else [], db_path=tmp_path / "index.sqlite")
    prev = results.previous_results("mr1", archive)
    assert prev.runs == ("r1", "r2")
    assert set(prev.attempted) == {"a", "b"}  # c only had an infrastructure error


def _outcome(tmp_path) -> BurstOutcome:
    rs = (_row("a", "built"), _row("b", "ftbfs", tail="x\n" * 20 + "error: b FTBFS"),
          _row("c", "timeout"))
    return BurstOutcome(run_id="r1", results=rs, pending=("d",),
                        builders=({"name": "b1", "active_rel": 1.0, "retired_rel": 9.0},
                                  {"name": "b2", "active_rel": 2.0, "retired_rel": 8.0}),
                        provisioning={}, intervals=(("b1", 1.0, 3.0, "built"),
                                                    ("b2", 2.0, 5.0, "ftbfs"),
                                                    ("b1", 3.0, 7.0, "timeout")),
                        csv_path="", run_dir=str(tmp_path), teardown_problems=())


def test_report_tables_plots_and_export(tmp_path):
    out = _outcome(tmp_path)
    ft = report.failures_table(out)
    assert list(ft["package"]) == ["b", "c"] and ft.iloc[0]["log_tail"].endswith("error: b FTBFS")
    assert len(ft.iloc[0]["log_tail"].splitlines()) == 8
    assert report.utilisation(out) == [(1.0, 1, 0), (1.0, 1, 1), (2.0, 2, 1), (2.0, 2, 2),
                                       (3.0, 2, 1), (3.0, 2, 2), (5.0, 2, 1), (7.0, 2, 0),
                                       (8.0, 1, 0), (9.0, 0, 0)]
    for fig in (report.durations_figure(out), report.utilisation_figure(out)):
        png = report.show(fig, tmp_path / "f.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plan = NS(request=NS(packages=[NS(name=n, expected_s=2.0) for n in "abcde"], skipped=("z",)))
    prev = Previous(runs=("r0",), results=(_row("e", "built", "r0"),))
    path = report.export_csv(out, plan, prev, tmp_path / "report.csv")
    with open(path) as f:
        got = {r["package"]: (r["status"], r["run_id"]) for r in csv.DictReader(f)}
    assert got == {"a": ("built", "r1"), "b": ("ftbfs", "r1"), "c": ("timeout", "r1"),
                   "d": ("not started", ""), "e": ("built", "r0"), "z": ("skipped", "")}


def test_policy_burst_section(tmp_path):
    raw = yaml.safe_load(pol.DEFAULT_POLICY_PATH.read_text())
    site = pol.from_dict(raw)
    assert site.burst.profiles == ("builder",) and site.burst.max_builders == 30
    assert site.burst.boot_ceiling == 12 and site.burst.min_boot_ceiling == 2
    without = {k: v for k, v in raw.items() if k != "burst"}
    assert pol.from_dict(without).burst == pol.BurstPolicy()  # the section is optional
    bad = {**raw, "burst": {**raw["burst"], "profiles": ["dev", "nonesuch"], "boot_ceiling": 50,
                            "max_builders": 0, "colour": "red"}}
    with pytest.raises(ConfigError) as e:
        pol.from_dict(bad)
    text = str(e.value)
    assert "burst.max_builders" in text and "'colour' was unexpected" in text
    bad = {**raw, "burst": {**raw["burst"], "profiles": ["dev", "nonesuch"], "boot_ceiling": 50}}
    with pytest.raises(ConfigError) as e:
        pol.from_dict(bad)
    text = str(e.value)
    assert "burst.profiles: class 'dev' must be transient" in text
    assert "burst.profiles: 'nonesuch' is not a class" in text
    assert "burst.boot_ceiling: 50 must be between" in text


def test_watchdog_stands_down_when_the_run_is_done(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", NS(buffer=io.BytesIO(b"done\n")))
    assert watchdog.main(["--run-id", "r1"]) == 0
    assert "tore its builders down itself" in capsys.readouterr().out


def test_watchdog_process_reads_its_pipe(tmp_path):
    w = watchdog.spawn("r-unit", None, log_dir=tmp_path)
    w.done()
    assert w.proc.wait(timeout=120) == 0
    assert "tore its builders down itself" in (tmp_path / "watchdog-r-unit.log").read_text()
