"""mass-rebuild-burst on the real cloudlet, end to end through `fedcloud run`.

Builders are real Nova servers in a project of their own (``fresh_project``, quotas set
here: 5 builders fit).  The fake virt driver boots no guest, so the executor's address map
sends every builder's SSH to a real OpenSSH server on loopback started by the test (its own
host key, checked through known_hosts; a client key made here).  The build command is a
real script: per package it sleeps a small, varied time and succeeds or fails
deterministically; one package hangs (timeout), one loses its SSH session on the first try
(an infrastructure error, retried on another builder).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from fedcloud_lib.archive.index import Archive
from fedcloud_lib.burst import plan as bplan
from fedcloud_lib.burst import request as breq
from fedcloud_lib.burst import facts as bfacts
from fedcloud_lib.errors import PolicyError
from fedcloud_lib.site import policy as site_policy
from tests.integration.burst_sshd import LocalSshd, start_sshd

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CLOUD = "burst-it"
BUILDERS = 5

# package -> (seconds, outcome); outcome: ok | fail | hang | flaky
TABLE = {
    **{f"pkg-ok{i:02d}": (round(0.2 + 0.15 * i, 2), "ok") for i in range(12)},
    "gcc-c++": (1.1, "ok"),
    "python-broken": (0.6, "fail"), "rust-oldcrate": (1.4, "fail"),
    "perl-ancient": (0.3, "fail"), "ghc-lens": (1.9, "fail"),
    "hangs-forever": (30, "hang"),
    "flaky-net": (0.5, "flaky"),
    "on-skip-list": (0.2, "ok"),
}
EXPECTED_FTBFS = {"python-broken", "rust-oldcrate", "perl-ancient", "ghc-lens"}

BUILD_SH = r"""#!/bin/sh
# build.sh PACKAGE BUILDER WORKDIR TABLE STATE: a stand-in for mock --rebuild
pkg=$1; builder=$2; wd=$3; table=$4; state=$5
echo "building $pkg on $builder in $wd (pwd $(pwd))"
set -- $(grep "^$pkg " "$table")
secs=$2; outcome=$3
case "$outcome" in
  ok) sleep "$secs"; echo "Wrote: $pkg-1.0-1.fc42.src.rpm"; exit 0 ;;
  fail) sleep "$secs"; echo "error: Bad exit status from /var/tmp/rpm-tmp (%build)"; echo "$pkg FTBFS"; exit 1 ;;
  hang) sleep "$secs"; touch "$state/$pkg.finished"; exit 0 ;;
  flaky)
    if [ ! -e "$state/$pkg.tried" ]; then
      echo "$builder" > "$state/$pkg.tried"
      # the builder "dies": kill this build's sshd session (the connection drops)
      p=$$
      while [ "$p" -gt 1 ]; do
        case "$(cat /proc/$p/comm)" in sshd*) kill -9 "$p"; sleep 5; exit 0 ;; esac
        p=$(awk '{print $4}' /proc/$p/stat)
      done
    fi
    sleep "$secs"; echo "Wrote: $pkg"; exit 0 ;;
esac
echo "unknown package $pkg"; exit 2
"""


@dataclass
class BurstEnv:
    tmp: Path
    conn: object
    admin: object
    project_id: str
    sshd: LocalSshd
    clouds: Path
    outputs: Path
    state: Path

    def env(self) -> dict[str, str]:
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds), "OS_CLOUD": CLOUD,
               "FEDCLOUD_OUTPUTS": str(self.outputs), "FEDCLOUD_OPERATOR": "burst-it",
               "PYTHONPATH": str(ROOT)}
        env.pop("FEDCLOUD_RUNBOOKS", None)
        env.pop("FEDCLOUD_POLICY", None)
        return env

    def params(self, ticket: str, packages: list[str], **extra) -> Path:
        table = self.tmp / "table.txt"
        table.write_text("".join(f"{p} {s} {o}\n" for p, (s, o) in TABLE.items()))
        lst = self.tmp / f"packages-{ticket}.csv"
        with open(lst, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["package", "duration_s"])
            for i, p in enumerate(packages):  # history for half of them
                w.writerow([p, TABLE[p][0] if i % 2 == 0 and TABLE[p][1] != "hang" else ""])
        skip = self.tmp / "skip.txt"
        skip.write_text("# like PKG_SKIP_LIST\non-skip-list\nnot-in-the-list\n")
        values = {
            "ticket": ticket, "packages": str(lst), "skip_list": str(skip),
            "command": f"sh {self.tmp / 'build.sh'} {{package}} {{builder}} {{workdir}} "
                       f"{table} {self.state}",
            "build_timeout": "4s", "builder_lifetime": "1h", "default_duration": "1s",
            "workdir": str(self.tmp / "work"), "ssh_user": self.sshd.user,
            "ssh_key": str(self.sshd.client_key),
            "ssh_address_map": {"*": f"127.0.0.1:{self.sshd.port}"},
            "known_hosts": str(self.sshd.known_hosts), "cloud": CLOUD, **extra}
        p = self.tmp / f"params-{ticket}-{uuid.uuid4().hex[:4]}.yaml"
        p.write_text(yaml.safe_dump(values))
        return p

    def fedcloud(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                              env=self.env(), capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                                env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def servers(self) -> list:
        return [s for s in self.conn.compute.servers(details=True)
                if s.status not in ("DELETED", "SOFT_DELETED")]

    def runs(self, ticket: str) -> list[dict]:
        out = self.fedcloud("runs", "list", "--ticket", ticket, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def show(self, run_id: str) -> dict:
        out = self.fedcloud("runs", "show", run_id, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


def rows(run: dict) -> list[dict]:
    p = Path(run["path"]) / "burst-results.csv"
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def run_id_of(proc_stderr: str) -> str:
    for line in proc_stderr.splitlines():
        if line.startswith("run ") and ":" in line:
            return line.split()[1].rstrip(":")
    raise AssertionError(f"no run id in: {proc_stderr[-2000:]}")


@pytest.fixture
def burst_env(fresh_project, admin_cloud, tmp_path):
    pid = fresh_project.project.id
    admin_cloud.set_compute_quotas(pid, instances=BUILDERS, cores=2 * BUILDERS,
                                   ram=5120 * BUILDERS)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {CLOUD: fresh_project.cloud_config}}))
    clouds.chmod(0o600)
    (tmp_path / "build.sh").write_text(BUILD_SH)
    state = tmp_path / "state"
    state.mkdir()
    sshd = start_sshd(tmp_path / "sshd")
    env = BurstEnv(tmp_path, fresh_project.conn, admin_cloud, pid, sshd, clouds,
                   tmp_path / "outputs", state)
    try:
        yield env
    finally:
        sshd.stop()


def _process_with(words: list[str]) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if all(w in cmd for w in words):
            out.append(p)
    return out


def _kernel_of(proc: psutil.Process) -> psutil.Process | None:
    for child in proc.children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def _wait_rows(env: BurstEnv, proc: subprocess.Popen, ticket: str, n: int, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for f in (env.outputs / "mass-rebuild-burst").glob("*/*/burst-results.csv"):
            if len(f.read_text().splitlines()) - 1 >= n:
                return f.parent
        time.sleep(0.5)
    raise AssertionError(f"the run never wrote {n} results (exit {proc.poll()})")


def test_burst_end_to_end(burst_env):
    env = burst_env
    ticket = f"mr{uuid.uuid4().hex[:6]}"
    packages = list(TABLE)
    params = env.params(ticket, packages)

    # dry run: the plan, nothing created
    dry = env.fedcloud("run", "mass-rebuild-burst", "-f", str(params), "--cloud", CLOUD)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    [dry_run] = env.runs(ticket)
    assert dry_run["status"] == "planned"
    shown = env.show(dry_run["run_id"])
    plan = shown["results"]["plan"]
    kinds = [(s["action"], s["kind"]) for s in plan["steps"]]
    assert ("create", "builders") in kinds and ("create", "builds") in kinds
    assert kinds[-1] == ("delete", "builders")
    builders_step = next(s for s in plan["steps"] if s["kind"] == "builders")
    assert builders_step["inputs"]["count"] == BUILDERS  # auto: what the quota allows
    summary = {r["what"]: r["value"] for r in shown["results"]["burst_plan"]}
    assert summary["to build now"] == str(len(packages) - 1)
    assert summary["skipped (skip list)"] == "1"
    assert "not-in-the-list" in json.dumps(shown["results"]["request"]["warnings"])
    assert env.servers() == []

    # apply exactly that plan
    run = env.fedcloud("run", "mass-rebuild-burst", "--approve-plan", dry_run["run_id"],
                       timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    applied = env.show(run_id_of(run.stderr))
    assert applied["status"] == "succeeded"
    got = rows(applied)
    names = [r["package"] for r in got]
    assert sorted(names) == sorted(p for p in packages if p != "on-skip-list")
    assert len(names) == len(set(names))  # exactly one final status each
    status = {r["package"]: r for r in got}
    assert {p for p, r in status.items() if r["status"] == "ftbfs"} == EXPECTED_FTBFS
    assert status["hangs-forever"]["status"] == "timeout"
    assert not (env.state / "hangs-forever.finished").exists()  # hung up, not left running
    assert status["flaky-net"]["status"] == "built" and status["flaky-net"]["attempts"] == "2"
    first_builder = (env.state / "flaky-net.tried").read_text().strip()
    assert status["flaky-net"]["builder"] != first_builder  # retried elsewhere
    assert all(r["status"] == "built" for p, r in status.items() if TABLE[p][1] == "ok")
    assert "FTBFS" in status["ghc-lens"]["log_tail"]
    assert all(r["builder"].startswith(f"fcb-{ticket}-") for r in got)
    # the report, archived with the run
    folder = Path(applied["path"])
    for f in ("burst-report.csv", "utilisation.png", "durations.png", "plan.png"):
        assert (folder / f).stat().st_size > 0, f
    res = applied["results"]
    assert {r["package"] for r in res["ftbfs"] if r["status"] == "ftbfs"} == EXPECTED_FTBFS
    counts = {r["status"]: r["packages"] for r in res["counts"]}
    assert counts["built"] == len(packages) - 1 - len(EXPECTED_FTBFS) - 1 and counts["timeout"] == 1
    prov = res["burst"]["provisioning"]
    assert prov["chosen"] in ("multi", "pool") and set(prov["probe"]) == {"multi", "pool"}
    assert len(res["burst"]["builders"]) >= BUILDERS
    # every builder carried the run, the ticket and an expiry within 24 h
    verify = env.fedcloud("runs", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # teardown: nothing left
    assert env.servers() == []


def test_killed_run_is_swept_and_resumed(burst_env):
    """SIGKILL the kernel and its watchdog in the middle of the builds (the worst case: no
    finally, no watchdog): the builders stay; the next run of the burst deletes them in its
    plan, skips what the killed run built, and builds the rest."""
    env = burst_env
    ticket = f"mr{uuid.uuid4().hex[:6]}"
    packages = [p for p in TABLE if TABLE[p][1] in ("ok", "fail") and p != "on-skip-list"]
    params = env.params(ticket, packages, max_builders="3")
    proc = env.start("run", "mass-rebuild-burst", "-f", str(params), "--approve")
    folder = _wait_rows(env, proc, ticket, 3)
    run_id = folder.name
    kernel = _kernel_of(psutil.Process(proc.pid))
    dogs = _process_with(["fedcloud-burst-watchdog", run_id])
    assert kernel is not None and len(dogs) == 1
    meta = [s.metadata for s in env.servers()]
    assert meta and all(m["fedcloud_run_id"] == run_id and m["fedcloud_ticket"] == ticket
                        and m["fedcloud_burst"] == ticket for m in meta)
    for m in meta:
        created = dt.datetime.fromisoformat(m["fedcloud_created_at"].replace("Z", "+00:00"))
        expires = dt.datetime.fromisoformat(m["fedcloud_expires_at"].replace("Z", "+00:00"))
        assert dt.timedelta(0) < expires - created <= dt.timedelta(hours=24)
    dogs[0].send_signal(signal.SIGKILL)
    kernel.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    left = env.servers()
    assert left, "the builders of the killed run should still be there (nothing tore them down)"
    first = {r["package"]: r["status"] for r in rows({"path": str(folder)})}
    assert first and set(first) < set(packages)

    again = env.fedcloud("run", "mass-rebuild-burst", "-f", str(params), "--approve")
    assert again.returncode == 0, again.stdout + again.stderr[-4000:]
    second_id = run_id_of(again.stderr)
    res = env.show(second_id)
    deleted = {s["name"] for s in res["results"]["plan"]["steps"]
               if s["action"] == "delete" and s["kind"] == "server"}
    assert deleted == {s.name for s in left}
    second = {r["package"]: r["status"] for r in rows(res)}
    assert not set(first) & set(second)  # resume: nothing attempted twice
    assert set(first) | set(second) == set(packages)
    assert {p for p, s in {**first, **second}.items() if s == "ftbfs"} == EXPECTED_FTBFS
    assert env.servers() == []

    # a third run has nothing left to do: no builder is made
    third = env.fedcloud("run", "mass-rebuild-burst", "-f", str(params), "--approve")
    assert third.returncode == 0, third.stdout + third.stderr[-4000:]
    steps = env.show(run_id_of(third.stderr))["results"]["plan"]["steps"]
    assert [(s["action"], s["kind"]) for s in steps] == [("keep", "builds")]
    assert env.servers() == []


def test_watchdog_deletes_the_builders_of_a_killed_kernel(burst_env):
    env = burst_env
    ticket = f"mr{uuid.uuid4().hex[:6]}"
    packages = [p for p in TABLE if TABLE[p][1] == "ok" and p != "on-skip-list"]
    params = env.params(ticket, packages, max_builders="2")
    proc = env.start("run", "mass-rebuild-burst", "-f", str(params), "--approve")
    folder = _wait_rows(env, proc, ticket, 1)
    servers = env.servers()
    assert servers
    _kernel_of(psutil.Process(proc.pid)).send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    for s in servers:  # the watchdog deletes them, no other run needed
        env.conn.compute.wait_for_delete(s, wait=180, interval=2)
    log = (env.outputs / ".burst" / f"watchdog-{folder.name}.log").read_text()
    assert "deleting its builders" in log, log
    assert env.servers() == []


def test_sweep_command_deletes_expired_and_orphaned_builders(burst_env):
    env = burst_env
    img = env.conn.image.find_image("fedora-cloud-test")
    flv = env.conn.compute.find_flavor("m1.tiny")
    net = env.conn.network.find_network("provider")
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    common = {"fedcloud_role": "burst-builder", "fedcloud_burst": "mr-other",
              "fedcloud_ticket": "mr-other"}
    expired = env.conn.compute.create_server(
        name="fcb-expired", image_id=img.id, flavor_id=flv.id, networks=[{"uuid": net.id}],
        metadata={**common, "fedcloud_run_id": "20990101T000000-aaaaaa", "fedcloud_expires_at": past})
    live = env.conn.compute.create_server(
        name="fcb-live", image_id=img.id, flavor_id=flv.id, networks=[{"uuid": net.id}],
        metadata={**common, "fedcloud_run_id": "20990101T000000-bbbbbb", "fedcloud_expires_at": later})
    listed = env.fedcloud("burst", "sweep", "--cloud", CLOUD)
    assert listed.returncode == 0, listed.stderr
    assert "would delete" in listed.stdout and "fcb-expired" in listed.stdout
    assert {s.id for s in env.servers()} == {expired.id, live.id}  # listing changes nothing
    swept = env.fedcloud("burst", "sweep", "--cloud", CLOUD, "--yes", "--json")
    assert swept.returncode == 0, swept.stderr
    actions = {b["name"]: b["action"] for b in json.loads(swept.stdout)["builders"]}
    assert actions["fcb-expired"] == "deleted" and actions["fcb-live"].startswith("kept")
    assert {s.id for s in env.servers()} == {live.id}
    # naming the burst deletes its builders too
    swept = env.fedcloud("burst", "sweep", "--cloud", CLOUD, "--ticket", "mr-other", "--yes")
    assert swept.returncode == 0, swept.stderr
    assert env.servers() == []


def test_bad_input_is_refused_before_anything_is_created(burst_env, monkeypatch):
    env = burst_env
    ticket = f"mr{uuid.uuid4().hex[:6]}"
    # through the runbook: more builders than the quota allows
    params = env.params(ticket, ["pkg-ok01", "pkg-ok02"], max_builders="9")
    run = env.fedcloud("run", "mass-rebuild-burst", "-f", str(params), "--approve")
    # a PolicyError raised by the runbook's plan: archived as refused, exit 2
    assert run.returncode == 2, run.stderr
    assert "refused" in run.stderr
    assert "max_builders: 9 is above what this project allows now: 5" in run.stderr
    assert env.servers() == []
    # the library directly: the quota check against the real project
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(env.clouds))
    policy = site_policy.load()
    lst = env.tmp / "two.txt"
    lst.write_text("a\nb\n")
    req = breq.prepare(policy, ticket=ticket, packages=str(lst), command="x {package}",
                       ssh_key=str(env.sshd.client_key), max_builders="6")
    facts = bfacts.gather(env.conn, policy, req, archive=Archive(env.outputs))
    with pytest.raises(PolicyError, match="max_builders: 6 is above"):
        bplan.make_plan(policy, facts)
    assert env.servers() == []


def test_sigterm_tears_the_builders_down(burst_env):
    """SIGTERM to `fedcloud run` in the middle of the builds: the run is archived as
    interrupted (exit 130) and every builder goes."""
    env = burst_env
    ticket = f"mr{uuid.uuid4().hex[:6]}"
    packages = [p for p in TABLE if TABLE[p][1] == "ok" and p != "on-skip-list"]
    params = env.params(ticket, packages, max_builders="2")
    proc = env.start("run", "mass-rebuild-burst", "-f", str(params), "--approve")
    folder = _wait_rows(env, proc, ticket, 1)
    servers = env.servers()
    assert servers
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    for s in servers:
        env.conn.compute.wait_for_delete(s, wait=180, interval=2)
    assert env.servers() == []
    assert env.runs(ticket)[0]["status"] == "interrupted"
    log = (env.outputs / ".burst" / f"watchdog-{folder.name}.log").read_text()
    print(log)  # who tore down: the run's finally, or the watchdog when the kernel was shut down
