"""Scheduling headless runs: the systemd units and the cron lines in docs/scheduling/
parse (``systemd-analyze verify``, calendar specs), run what they say (a runbook with an
existing, valid parameter file), and agree with each other.  The commands themselves are
run on the cloudlet in tests/integration/test_watching.py."""
from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fedcloud_lib.run.values import merge_values, validate
from fedcloud_lib.runbooks import get_runbook

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SCHED = ROOT / "docs" / "scheduling"
INSTALL = "/srv/fedcloud"   # where the documented units expect the checkout
SERVICES = sorted(SCHED.glob("*.service"))
CRON_LINE = re.compile(r"^(?P<when>(\S+\s+){5})(?P<user>\S+)\s+(?P<command>.+)$")


def unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(path.read_text())
    return cp


def environment(path: Path) -> dict[str, str]:
    """The unit's Environment= settings (configparser keeps only the last of a key)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            for word in shlex.split(line.partition("=")[2]):
                k, _, v = word.partition("=")
                out[k] = v
    return out


def exec_args(path: Path) -> list[str]:
    return shlex.split(unit(path)["Service"]["ExecStart"])


def cron_lines() -> list[re.Match]:
    out = []
    for line in (SCHED / "fedcloud.cron").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]:
            m = CRON_LINE.match(line)
            assert m, f"not a cron.d line: {line}"
            out.append(m)
    return out


def installed_copy(tmp: Path, text_of: dict[str, str]) -> list[Path]:
    out = []
    for name, text in text_of.items():
        p = tmp / name
        p.write_text(text.replace(INSTALL, str(ROOT)))
        out.append(p)
    return out


def verify(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_there_is_a_timer_for_every_service():
    assert {p.stem for p in SERVICES} == {p.stem for p in SCHED.glob("*.timer")}
    assert {exec_args(p)[2] for p in SERVICES} == {"lifetime-reaper", "capacity-report"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_verify_with_systemd(tmp_path):
    files = {p.name: p.read_text() for p in sorted(SCHED.glob("fedcloud-*"))}
    r = verify(installed_copy(tmp_path, files))
    assert r.returncode == 0, r.stderr
    assert "fedcloud" not in r.stderr  # no complaint about our units
    # the check can fail: a unit whose program is not there, a timer without a valid time
    broken = tmp_path / "broken"
    broken.mkdir()
    bad = dict(files)
    bad["fedcloud-reaper.service"] = bad["fedcloud-reaper.service"].replace(
        "/.venv/bin/fedcloud", "/.venv/bin/no-such-program")
    bad["fedcloud-reaper.timer"] = re.sub(r"OnCalendar=.*", "OnCalendar=someday",
                                          bad["fedcloud-reaper.timer"])
    r = verify(installed_copy(broken, {k: bad[k] for k in ("fedcloud-reaper.service",)}))
    assert r.returncode != 0 and "no-such-program" in r.stderr
    r = verify(installed_copy(broken, {k: bad[k] for k in ("fedcloud-reaper.timer",)}))
    assert r.returncode != 0 and "someday" in r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_timer_calendars_parse():
    for timer in SCHED.glob("*.timer"):
        spec = unit(timer)["Timer"]["OnCalendar"]
        r = subprocess.run(["systemd-analyze", "calendar", spec], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "Next elapse" in r.stdout, (timer.name, r.stderr)


@pytest.mark.parametrize("service", SERVICES, ids=[p.stem for p in SERVICES])
def test_service_runs_a_runbook_with_valid_parameters(service):
    u = unit(service)["Service"]
    args = exec_args(service)
    assert args[:2] == [f"{INSTALL}/.venv/bin/fedcloud", "run"] and "--no-progress" in args
    assert u["WorkingDirectory"] == INSTALL and u["SuccessExitStatus"] == "3"
    assert u["Type"] == "oneshot"
    rb = get_runbook(args[2])
    files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
    assert files and all((ROOT / f).is_file() for f in files)
    params = validate(rb, merge_values(rb, [ROOT / f for f in files]))
    if args[2] == "lifetime-reaper":
        # the notices may run unattended; deletions only ever as a dry run
        assert ("--approve" in args) == (params["mode"] == "notify")


def test_cron_lines_run_what_the_units_run():
    lines = cron_lines()
    assert len(lines) == len(SERVICES)
    by_args = {}
    for service in SERVICES:
        env = environment(service)
        assert env["FEDCLOUD_OUTPUTS"] == f"{INSTALL}/outputs"
        by_args[tuple(exec_args(service)[2:])] = env["OS_CLOUD"]
    for m in lines:
        fields = m.group("when").split()
        assert all(re.fullmatch(r"[0-9*/,-]+", f) for f in fields), fields
        assert m.group("user") == "fedcloud"
        cmd = shlex.split(m.group("command").split(">>")[0])
        assert cmd[:3] == ["cd", INSTALL, "&&"]
        cloud = cmd[3].split("=", 1)
        assert cloud[0] == "OS_CLOUD"
        assert cmd[4] == ".venv/bin/fedcloud" and cmd[5] == "run"
        assert by_args.get(tuple(cmd[6:])) == cloud[1], cmd
