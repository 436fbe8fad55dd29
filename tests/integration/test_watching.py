"""Watching the cloud, on the real cloudlet: the lifetime reaper (real SMTP on loopback,
FASJSON stand-in), the capacity report, the Nagios checks (a forced-down nova-compute, a
dead API endpoint) and the scheduled command lines (systemd ExecStart, cron).

The testing project is shared with other suites: the reaper is always scoped to this
test's name prefix, and what the test made is deleted by the ``name_prefix`` fixture.
The scheduled lines run against a project of their own (``fresh_project``), named like
production through a clouds.yaml of the test's.  The checks are tested both ways: a
compute service forced down through the admin API and Keystone on a dead port (quick),
and the real nova-compute and nova-api processes stopped and started again (the suites run
one after the other, so nothing else uses the cloudlet meanwhile).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fedcloud_lib.archive.index import Archive
from fedcloud_lib.cloudlet import supervisor
from fedcloud_lib.lock import lock_name
from fedcloud_lib.reaper.facts import NOTICE_KEY
from tests.fakes.fasjson import FakeFasjson
from tests.fakes.site import policy_copy
from tests.fakes.smtp import LocalSmtp

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLOUDS_YAML = Path(os.environ.get("OS_CLIENT_CONFIG_FILE") or "/etc/openstack/clouds.yaml")
SCHED = ROOT / "docs" / "scheduling"
RUN_ID = re.compile(r"run (\d{8}T\d{6}-[0-9a-f]+): (\S+) \(exit (\d+)\)")


def stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def fedcloud(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


def run_id(r: subprocess.CompletedProcess) -> str:
    m = RUN_ID.search(r.stderr)
    assert m, r.stdout + r.stderr
    return m.group(1)


def results(env: dict, rid: str) -> dict:
    return Archive(Path(env["FEDCLOUD_OUTPUTS"])).find(rid).results


def alive(conn, sid: str) -> bool:
    s = conn.compute.find_server(sid, ignore_missing=True)
    return s is not None and s.status not in ("DELETED", "SOFT_DELETED")


def boot(conn, name: str, metadata: dict) -> str:
    flavor = conn.compute.find_flavor("m1.tiny")
    image = conn.image.find_image("fedora-cloud-test")
    net = conn.network.find_network("provider")
    s = conn.compute.create_server(name=name, flavor_id=flavor.id, image_id=image.id,
                                   networks=[{"uuid": net.id}], metadata=metadata)
    return s.id


# --------------------------------------------------------------------------- the reaper
def test_reaper_tells_owners_once_and_deletes_only_what_expired_in_scope(
        testing_cloud, name_prefix, tmp_path):
    c, p = testing_cloud, name_prefix
    owner = f"u{random.randint(10**6, 10**7 - 1)}"
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with FakeFasjson() as fas, LocalSmtp() as smtp:
        fas.add(owner, emails=[f"{owner}@example.test"], human_name="Owner Test")
        env = {"FEDCLOUD_POLICY": str(policy_copy(tmp_path, fasjson_url=fas.url,
                                                  smtp_port=smtp.port)),
               "FEDCLOUD_OUTPUTS": str(tmp_path / "outputs"), "OS_CLOUD": "fedcloud-testing",
               "FEDCLOUD_OPERATOR": "integration-test"}
        meta = {"fedcloud_requester": owner, "fedcloud_ticket": "14"}
        ids = {
            "exp": boot(c, p + "exp", {**meta, "fedcloud_class": "test",
                                       "fedcloud_expires_at": stamp(now - dt.timedelta(hours=3))}),
            "soon": boot(c, p + "soon", {**meta, "fedcloud_class": "test",
                                         "fedcloud_expires_at": stamp(now + dt.timedelta(hours=10))}),
            "later": boot(c, p + "later", {**meta, "fedcloud_class": "qa",
                                           "fedcloud_expires_at": stamp(now + dt.timedelta(days=20))}),
            # a builder whose metadata promises a long life: 24 h is the rule anyway
            "bld": boot(c, p + "bld", {**meta, "fedcloud_class": "builder",
                                       "fedcloud_expires_at": "2099-01-01T00:00:00Z"}),
            "raw": boot(c, p + "raw", {}),  # made outside the runbooks
        }
        stray = c.block_storage.create_volume(name=p + "stray", size=1)
        for sid in ids.values():
            c.compute.wait_for_server(c.compute.get_server(sid), status="ACTIVE",
                                      failures=["ERROR"], wait=300)
        c.block_storage.wait_for_status(stray, "available", failures=["error"], wait=120)
        scope = ["--cloud", "fedcloud-testing", "-p", "name_prefix", p, "--no-progress"]

        # bad input: refused, nothing changed
        r = fedcloud(env, "run", "lifetime-reaper", *scope, "-p", "notice_h", "-1")
        assert r.returncode == 2 and "notice_h" in r.stderr and "Traceback" not in r.stderr
        r = fedcloud(env, "run", "lifetime-reaper", *scope, "-p", "delete_orphans",
                     json.dumps([ids["later"]]), "--approve")
        assert r.returncode == 2, r.stderr
        assert "delete_orphans: 1 id(s) are not orphans in scope" in r.stderr
        assert all(alive(c, sid) for sid in ids.values()) and smtp.messages == []

        # the dry run lists: delete exp, tell the owner about soon; orphans raw and stray
        r = fedcloud(env, "run", "lifetime-reaper", *scope)
        assert r.returncode == 0 and "planned" in r.stderr, r.stderr
        res = results(env, run_id(r))
        assert [(s["action"], s["kind"], s["name"]) for s in res["plan"]["steps"]] == [
            ("delete", "server", p + "exp"), ("create", "mail", f"{owner}@example.test")]
        states = {row["name"]: row["state"] for row in res["expiry"]}
        assert states == {p + "exp": "expired", p + "soon": "notice due", p + "later": "ok",
                          p + "bld": "ok"}
        assert {(o["kind"], o["name"]) for o in res["orphans"]} == {
            ("server", p + "raw"), ("volume", p + "stray")}
        assert all(alive(c, sid) for sid in ids.values()) and smtp.messages == []

        # the Nagios expiry check sees the 3 h overdue server (WARNING above 1 h)
        r = fedcloud(env, "check", "expiry", "--cloud", "fedcloud-testing", "--name-prefix", p)
        assert r.returncode == 1 and f"{p}exp" in r.stdout and "overdue_h=3" in r.stdout, \
            r.stdout

        # approved: exp deleted, one notice to the owner (admins copied), remembered
        r = fedcloud(env, "run", "lifetime-reaper", *scope, "--approve")
        assert r.returncode == 0, r.stderr
        reaped = results(env, run_id(r))["reaped"]
        assert [d["name"] for d in reaped["deleted"]] == [p + "exp"]
        assert not alive(c, ids["exp"])
        assert all(alive(c, ids[k]) for k in ("soon", "later", "bld", "raw"))
        assert c.block_storage.get_volume(stray.id).status == "available"
        [msg] = smtp.messages
        assert msg["rcpt"] == [f"{owner}@example.test", "cloud-admins@example.test"]
        body = LocalSmtp.body(msg["message"])
        assert f"{p}soon" in body and stamp(now + dt.timedelta(hours=10)) in body
        assert f"{p}later" not in body and f"{p}bld" not in body
        assert (c.compute.get_server(ids["soon"]).metadata or {}).get(NOTICE_KEY)

        # again: nobody is told twice, nothing else expired
        r = fedcloud(env, "run", "lifetime-reaper", *scope, "--approve")
        assert r.returncode == 0, r.stderr
        assert len(smtp.messages) == 1
        assert "nothing to do" in results(env, run_id(r))["summary"]["plan"]

        # 25 hours later (the reaper's clock is a parameter): the builder and soon are due
        later = stamp(now + dt.timedelta(hours=25))
        r = fedcloud(env, "run", "lifetime-reaper", *scope, "-p", "mode", "reap",
                     "-p", "as_of", later)
        assert r.returncode == 0 and "planned" in r.stderr, r.stderr
        dry = run_id(r)
        steps = results(env, dry)["plan"]["steps"]
        assert sorted(s["name"] for s in steps) == [p + "bld", p + "soon"]
        assert "builder: 24 h from creation" in next(s["detail"] for s in steps
                                                     if s["name"] == p + "bld")
        assert all(alive(c, sid) for k, sid in ids.items() if k != "exp")
        # an operator approves exactly that dry run's plan
        r = fedcloud(env, "run", "lifetime-reaper", "--approve-plan", dry, "--no-progress")
        assert r.returncode == 0, r.stderr
        assert not alive(c, ids["bld"]) and not alive(c, ids["soon"])
        assert alive(c, ids["later"]) and alive(c, ids["raw"])  # raw: an orphan, not named

        # an orphan goes only when named
        r = fedcloud(env, "run", "lifetime-reaper", *scope, "-p", "mode", "reap",
                     "-p", "delete_orphans", json.dumps([stray.id]), "--approve")
        assert r.returncode == 0, r.stderr
        assert c.block_storage.find_volume(stray.id, ignore_missing=True) is None
        assert alive(c, ids["raw"]) and alive(c, ids["later"])

        # everything the reaper deleted carried this test's prefix
        arch = Archive(Path(env["FEDCLOUD_OUTPUTS"]))
        deleted = [d["name"] for e in arch.list(runbook="lifetime-reaper")
                   for d in (e.results.get("reaped") or {}).get("deleted", [])]
        assert sorted(deleted) == sorted([p + "exp", p + "bld", p + "soon", p + "stray"])
        assert len(smtp.messages) == 1

        # the archive of these runs verifies: the archive check is OK
        r = fedcloud(env, "check", "archive", "--outputs", env["FEDCLOUD_OUTPUTS"])
        assert r.returncode == 0 and "chain intact" in r.stdout, r.stdout


# --------------------------------------------------------------------------- the report
def test_capacity_report_on_the_cloudlet(admin_cloud, tmp_path):
    env = {"FEDCLOUD_OUTPUTS": str(tmp_path / "outputs"), "FEDCLOUD_OPERATOR": "integration-test"}
    r = fedcloud(env, "run", "capacity-report", "--cloud", "fedcloud-admin",
                 "-f", "parameters/capacity-report/testing.yaml", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    entry = Archive(tmp_path / "outputs").find(run_id(r))
    hosts = {h["host"]: h for h in entry.results["hosts"]}
    assert {"vm", "cmp2"} <= set(hosts) and hosts["vm"]["vcpus_total"] > 0
    quotas = {q["resource"]: q for q in entry.results["quotas"]}
    assert {q["project"] for q in entry.results["quotas"]} == {"testing"}
    assert quotas["instances"]["limit"] == admin_cloud.compute.get_quota_set(
        admin_cloud.identity.find_project("testing").id).instances
    report = entry.path / "report"
    assert {f.name for f in report.iterdir()} >= {"hosts.csv", "quotas.csv", "by_class.csv",
                                                  "weekly.csv", "hosts.png"}
    assert "report/hosts.csv" in entry.manifest  # archived and covered by the manifest
    html = (entry.path / "notebook.html").read_text()
    assert html.count("data:image/png;base64") >= 5

    r = fedcloud(env, "run", "capacity-report", "--cloud", "fedcloud-admin",
                 "-p", "project", "no-such-project-14", "--no-progress")
    assert r.returncode == 2, r.stderr
    assert "project: 'no-such-project-14'" in r.stderr and "is not a project" in r.stderr


# --------------------------------------------------------------------------- the checks
def test_checks_on_the_cloudlet(admin_cloud, tmp_path):
    env = {"FEDCLOUD_OUTPUTS": str(tmp_path / "outputs")}
    r = fedcloud(env, "check", "services", "--cloud", "fedcloud-admin")
    assert r.returncode == 0 and r.stdout.startswith("FEDCLOUD SERVICES OK"), r.stdout
    r = fedcloud(env, "check", "capacity", "--cloud", "fedcloud-admin", "--project", "testing")
    assert r.returncode in (0, 1, 2) and "host_max=" in r.stdout and "|" in r.stdout, r.stdout

    # a nova-compute that is down: forced down through the admin API for a few seconds
    # (the real process keeps running: the cloudlet is shared)
    service = next(s for s in admin_cloud.compute.services()
                   if s.binary == "nova-compute" and s.host == "cmp2")
    try:
        admin_cloud.compute.update_service_forced_down(service, forced=True)
        r = fedcloud(env, "check", "hypervisors", "--cloud", "fedcloud-admin")
    finally:
        admin_cloud.compute.update_service_forced_down(service, forced=False)
    assert r.returncode == 2, r.stdout
    assert r.stdout.startswith("FEDCLOUD HYPERVISORS CRITICAL - 1 of 2 hypervisors "
                               "unavailable: cmp2 forced down |"), r.stdout
    r = fedcloud(env, "check", "hypervisors", "--cloud", "fedcloud-admin")
    assert r.returncode == 0 and "2 hypervisors up and enabled" in r.stdout, r.stdout

    # the API is down: the same clouds.yaml with Keystone on a port nobody listens on
    clouds = yaml.safe_load(CLOUDS_YAML.read_text())
    for entry in clouds["clouds"].values():
        entry["auth"]["auth_url"] = re.sub(r":\d+", ":9", entry["auth"]["auth_url"], count=1)
    dead = tmp_path / "clouds.yaml"
    dead.write_text(yaml.safe_dump(clouds))
    dead.chmod(0o600)
    env["OS_CLIENT_CONFIG_FILE"] = str(dead)
    r = fedcloud(env, "check", "services", "--cloud", "fedcloud-admin")
    assert r.returncode == 2 and "CRITICAL - cloud API unreachable: cannot connect to " \
        "http://127.0.0.1:9/" in r.stdout and "Connection refused" in r.stdout, r.stdout
    for name in ("hypervisors", "capacity"):
        r = fedcloud(env, "check", name, "--cloud", "fedcloud-admin")
        assert r.returncode == 3 and "UNKNOWN - cloud API unreachable" in r.stdout, r.stdout
        assert "Traceback" not in r.stdout + r.stderr and len(r.stdout.splitlines()) == 1


def _check_until(env: dict, name: str, want: int, deadline_s: float) -> subprocess.CompletedProcess:
    """Run ``fedcloud check NAME`` every 5 s until it exits ``want`` (nova notices a dead
    nova-compute only after ``service_down_time``, 60 s by default)."""
    end = time.monotonic() + deadline_s
    while True:
        r = fedcloud(env, "check", name, "--cloud", "fedcloud-admin")
        if r.returncode == want or time.monotonic() > end:
            return r
        time.sleep(5)


def test_checks_see_really_stopped_services(admin_cloud, tmp_path):
    """The real processes stopped (supervisor), one at a time, and started again: a dead
    nova-compute makes `check hypervisors` and `check services` CRITICAL naming it; a
    dead nova-api makes `check services` CRITICAL and `check hypervisors` UNKNOWN with a
    readable one-line reason.  The cloudlet is whole again at the end."""
    env = {"FEDCLOUD_OUTPUTS": str(tmp_path / "outputs")}
    on_cmp2 = [s.name for s in admin_cloud.compute.servers(all_projects=True)
               if s.compute_host == "cmp2"]
    # the fake driver forgets its servers when nova-compute restarts
    assert on_cmp2 == [], f"servers on cmp2 would be lost by the restart: {on_cmp2}"
    assert supervisor.stop(only="nova-compute-cmp2", out=lambda _: None) == 0
    try:
        hyp = _check_until(env, "hypervisors", 2, 180)
        svc = fedcloud(env, "check", "services", "--cloud", "fedcloud-admin")
    finally:
        assert supervisor.start(only="nova-compute-cmp2", out=lambda _: None) == 0
    assert hyp.returncode == 2, hyp.stdout
    assert hyp.stdout.startswith("FEDCLOUD HYPERVISORS CRITICAL - 1 of 2 hypervisors "
                                 "unavailable: cmp2 nova-compute down |"), hyp.stdout
    assert svc.returncode == 2 and "nova-compute@cmp2" in svc.stdout, svc.stdout
    r = _check_until(env, "hypervisors", 0, 120)
    assert r.returncode == 0 and "2 hypervisors up and enabled" in r.stdout, r.stdout

    assert supervisor.stop(only="nova-api", out=lambda _: None) == 0
    try:
        svc = fedcloud(env, "check", "services", "--cloud", "fedcloud-admin")
        hyp = fedcloud(env, "check", "hypervisors", "--cloud", "fedcloud-admin")
    finally:
        assert supervisor.start(only="nova-api", out=lambda _: None) == 0
        assert supervisor.wait_ports([8774]) == []
    for r, state in ((svc, "CRITICAL"), (hyp, "UNKNOWN")):
        out = r.stdout + r.stderr
        assert r.returncode == {"CRITICAL": 2, "UNKNOWN": 3}[state], out
        assert f"{state} - " in r.stdout and "8774" in r.stdout, out
        assert "Traceback" not in out and len(r.stdout.splitlines()) == 1, out
    # the services behind Neutron and Cinder are still counted while nova-api is down
    assert "1 API(s) down: compute API (cannot connect to http://127.0.0.1:8774/" in svc.stdout
    assert "services behind the other APIs are up" in svc.stdout, svc.stdout
    r = _check_until(env, "services", 0, 120)
    assert r.returncode == 0 and r.stdout.startswith("FEDCLOUD SERVICES OK"), r.stdout


# --------------------------------------------------------------------------- scheduling
def _exec_start(unit: Path, install: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The unit's ExecStart and Environment, with the install paths of this test."""
    args, env = [], {}
    for line in unit.read_text().splitlines():
        for k, v in install.items():
            line = line.replace(k, v)
        if line.startswith("ExecStart="):
            args = shlex.split(line.partition("=")[2])
        elif line.startswith("Environment="):
            for word in shlex.split(line.partition("=")[2]):
                name, _, value = word.partition("=")
                env[name] = value
    return args, env


def _cron_commands(install: dict[str, str]) -> list[str]:
    out = []
    for line in (SCHED / "fedcloud.cron").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]:
            command = line.split(None, 6)[6]
            for k, v in install.items():
                command = command.replace(k, v)
            out.append(command)
    return out


def test_scheduled_lines_run_and_an_overlapping_run_is_refused(admin_cloud, fresh_project,
                                                               tmp_path):
    """The cron lines and the units' ExecStart, exactly as documented (the checkout's path
    for /srv/fedcloud, temporary folders for the outputs and logs); production is a
    project of the test's own, so the unattended ``--approve`` touches nothing else."""
    clouds = yaml.safe_load(CLOUDS_YAML.read_text())
    mine = {"clouds": {"fedcloud-admin": clouds["clouds"]["fedcloud-admin"],
                       "fedcloud-production": fresh_project.cloud_config}}
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(mine))
    (tmp_path / "clouds.yaml").chmod(0o600)
    (tmp_path / "log").mkdir()
    outputs = tmp_path / "outputs"
    install = {"/srv/fedcloud/outputs": str(outputs), "/srv/fedcloud": str(ROOT),
               "/var/log/fedcloud": str(tmp_path / "log")}
    with FakeFasjson() as fas, LocalSmtp() as smtp:
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"),
               "FEDCLOUD_OUTPUTS": str(outputs),
               "FEDCLOUD_POLICY": str(policy_copy(tmp_path, fasjson_url=fas.url,
                                                  smtp_port=smtp.port))}
        env.pop("OS_CLOUD", None)
        notify, reap, report = _cron_commands(install)
        assert "lifetime-reaper" in notify and "--approve" in notify and "capacity-report" in report
        for command in (notify, reap):
            r = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, (command, (tmp_path / "log" / "lifetime-reaper.log")
                                       .read_text())
        log = (tmp_path / "log" / "lifetime-reaper.log").read_text()
        assert re.search(r"run \S+: succeeded \(exit 0\)", log)
        assert re.search(r"run \S+: planned \(exit 0\)", log) or "succeeded" in log
        entries = Archive(outputs).list(runbook="lifetime-reaper")
        assert {e.cloud for e in entries} == {"fedcloud-production"} and len(entries) == 2

        # the reaper's systemd unit, its ExecStart as it stands, in its WorkingDirectory
        args, unit_env = _exec_start(SCHED / "fedcloud-reaper-notify.service", install)
        assert args[0] == str(ROOT / ".venv/bin/fedcloud")
        r = subprocess.run(args, cwd=ROOT, env={**env, **unit_env}, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr

        # two overlapping runs: the capacity report's unit starts, the cron line meanwhile
        args, unit_env = _exec_start(SCHED / "fedcloud-capacity-report.service", install)
        first = subprocess.Popen(args, cwd=ROOT, env={**env, **unit_env},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lock = outputs / ".locks" / lock_name("capacity-report", None)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and first.poll() is None:
                if lock.is_file() and lock.read_text().strip():
                    break
                time.sleep(0.2)
            assert first.poll() is None, "the first run ended before the overlap was tried"
            second = subprocess.run(["sh", "-c", report], env=env, capture_output=True,
                                    text=True, timeout=600)
            assert second.returncode == 3
            said = (tmp_path / "log" / "capacity-report.log").read_text()
            assert "refused: capacity-report is already running as run" in said, said
        finally:
            out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err
        assert [e.status for e in Archive(outputs).list(runbook="capacity-report")] == \
            ["succeeded"]
    assert smtp.messages == []  # production (the test's project) holds nothing to tell
