"""image-create on the real cloudlet (Glance file store, Nova fake driver).

Small real images made here (qemu-img), served by a stdlib HTTP server on loopback, real
CHECKSUM files, signatures by a throw-away OpenPGP key in the test's own GNUPGHOME.  Each
test gets its own image profile (named with the test's unique prefix, so the update
policy only ever sees this test's images) in a copy of the site policy; everything named
with the prefix in the ``testing`` project is deleted afterwards (``name_prefix``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from fedcloud_lib.site.policy import DEFAULT_POLICY_PATH
from tests.fakes.images import FileServer, ThrowawayKey, make_qcow2, sha256, write_checksum

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLOUD = os.environ.get("FEDCLOUD_TEST_CLOUD", "fedcloud-testing")


@dataclass
class ImageEnv:
    conn: Any
    tmp: Path
    served: Path
    http: FileServer
    key: ThrowawayKey
    prefix: str
    profile: str
    policy_path: Path
    runs: list[subprocess.CompletedProcess] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.tmp / "work"

    def write_policy(self, **profile: Any) -> None:
        data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
        p = {"image_name": f"{self.prefix}img", "contents": "integration test image",
             "root_key_groups": ["sysadmin-main"], "formats": ["qcow2", "raw"],
             "visibility": "private", "keyring": "test", "update": {"keep": 2, "hidden_days": 1},
             "properties": {"os_distro": "fedora", "os_version": "{major}", "min_disk": 1,
                            "min_ram": 0, "hw_disk_bus": "virtio"},
             "boot_flavors": ["m1.small", "m1.tiny"],
             "first_boot": {"packages": ["git-core"]}}
        for k, v in profile.items():
            if isinstance(v, dict) and isinstance(p.get(k), dict):
                p[k] = {**p[k], **v}
            else:
                p[k] = v
        data["images"] = {
            "work_dir": str(self.work),
            "keyrings": {"test": str(self.key.keyring(self.tmp / "test-keyring.gpg"))},
            "boot_test": {"login_marker": "login:", "timeout_s": 300, "console_grace_s": 2},
            "profiles": {self.profile: p}}
        self.policy_path.write_text(yaml.safe_dump(data, sort_keys=False))

    def env(self) -> dict[str, str]:
        return {**os.environ, "FEDCLOUD_POLICY": str(self.policy_path),
                "FEDCLOUD_OUTPUTS": str(self.tmp / "outputs"), "OS_CLOUD": CLOUD,
                "FEDCLOUD_OPERATOR": "image-test", "PYTHONPATH": str(ROOT),
                "TMPDIR": str(self.tmp)}

    def args(self, version: str, *, approve: bool, approve_plan: str = "",
             **params: str) -> list[str]:
        args = [sys.executable, "-m", "fedcloud_lib.cli", "run", "image-create", "--no-progress",
                "--cloud", CLOUD, "-p", "profile", params.pop("profile", self.profile),
                "-p", "version", version]
        for k, v in params.items():
            args += ["-p", k, v]
        if approve_plan:
            return args + ["--approve-plan", approve_plan]
        return args + (["--approve"] if approve else [])

    def run(self, version: str, *, approve: bool = True, approve_plan: str = "", **params: str):
        r = subprocess.run(self.args(version, approve=approve, approve_plan=approve_plan,
                                     **params), cwd=ROOT,
                           env=self.env(), capture_output=True, text=True, timeout=900)
        self.runs.append(r)
        return r

    def publish(self, name: str, *, size_mb: int = 64, data_mb: int = 2) -> Path:
        return make_qcow2(self.served / name, size_mb, data_mb)

    def images(self) -> list[Any]:
        """This test's images (its profile), hidden ones included."""
        pid = self.conn.current_project_id
        out = {}
        for hidden in (False, True):
            for i in self.conn.image.images(owner=pid, is_hidden=hidden):
                if (i.properties or {}).get("fedcloud_profile") == self.profile or \
                        (i.name or "").startswith(self.prefix):
                    out[i.id] = i
        return sorted(out.values(), key=lambda i: i.created_at)

    def servers(self) -> list[Any]:
        return [s for s in self.conn.compute.servers(details=True)
                if s.name.startswith(self.prefix)]

    def last_run(self) -> dict:
        """record.json of the newest archived run."""
        recs = sorted((self.tmp / "outputs" / "image-create").glob("*/*/record.json"))
        return json.loads(max(recs, key=lambda p: p.stat().st_mtime).read_text())

    def plan_steps(self) -> list[tuple[str, str, str, str]]:
        steps = self.last_run()["results"]["plan"]["steps"]
        return [(s["action"], s["kind"], s["name"], s["detail"]) for s in steps]


@pytest.fixture
def env(testing_cloud, name_prefix, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    key = ThrowawayKey(tmp_path / "gnupg")
    with FileServer(served) as http:
        e = ImageEnv(conn=testing_cloud, tmp=tmp_path, served=served, http=http, key=key,
                     prefix=name_prefix, profile=f"{name_prefix}qa",
                     policy_path=tmp_path / "policy.yaml")
        e.write_policy()
        try:
            yield e
        finally:
            key.close()
            for i in e.images():  # hidden ones too: name_prefix's purge lists visible ones
                testing_cloud.image.delete_image(i, ignore_missing=True)
            for r in e.runs:  # a failing test shows what the runs said
                print(" ".join(r.args[3:]), "->", r.returncode, r.stderr[-1500:])


def ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- happy path

def test_import_with_signed_checksum_approved_plan_and_boot_test(env):
    img = env.publish("Test-Cloud-41-1.4.x86_64.qcow2")
    sums = write_checksum(env.tmp / "CHECKSUM", [img])
    env.key.clearsign(sums, env.served / "Test-Cloud-41-1.4-CHECKSUM")
    params = dict(source=env.http.url(img.name),
                  checksum=env.http.url("Test-Cloud-41-1.4-CHECKSUM"),
                  signature="clearsigned", ticket="4242")

    dry = env.run("41-1.4", approve=False, **params)
    ok(dry)
    planned = env.last_run()
    assert planned["status"] == "planned" and env.images() == []
    assert [s[:2] for s in env.plan_steps()] == [
        ("create", "download"), ("create", "image"), ("create", "boot test")]

    # the reviewed plan is applied as recorded (re-planned from today's facts: it agrees)
    ok(env.run("41-1.4", approve_plan=planned["run_id"], **params))
    assert env.last_run()["plan_of"] == planned["run_id"]
    [image] = env.images()
    props = image.properties
    assert image.status == "active" and image.name == f"{env.prefix}img-41-1.4"
    assert props["fedcloud_sha256"] == sha256(img) and props["fedcloud_version"] == "41-1.4"
    assert props["fedcloud_profile"] == env.profile and props["fedcloud_ticket"] == "4242"
    assert props["fedcloud_source"] == params["source"]
    assert props["fedcloud_signed_by"] == env.key.fingerprint
    assert props["fedcloud_created_by"] == "image-test" and props["fedcloud_run_id"]
    assert image.os_distro == "fedora" and image.os_version == "41"  # the SDK's attributes
    assert image.hw_disk_bus == "virtio" and image.min_disk == 1
    assert image.disk_format == "qcow2" and image.visibility == "private"
    assert image.hash_value == hashlib.new(image.hash_algo, img.read_bytes()).hexdigest()
    assert props["fedcloud_boot_test"].startswith("passed ")
    assert "no console log" in props["fedcloud_boot_test"]  # the fake driver gives none
    assert env.servers() == []  # the boot-test server is gone
    assert list(env.work.glob("*")) == []  # the download is gone
    results = env.last_run()["results"]
    assert results["sop"]["update_policy"]["keep"] == 2
    assert results["sop"]["ssh_key_policy"]["root"][0]["group"] == "sysadmin-main"
    assert results["checksum"]["checksum_signature"]["fingerprint"] == env.key.fingerprint
    assert results["image"]["image_id"] == image.id


def test_three_versions_retired_by_the_policy_never_one_in_use(env):
    env.write_policy(update={"keep": 1, "hidden_days": 1})
    files = {v: env.publish(f"disk-{v}.qcow2") for v in ("1", "2", "3")}

    def run(v):
        ok(env.run(v, source=env.http.url(files[v].name), checksum=sha256(files[v])))

    run("1")
    [v1] = env.images()
    c = env.conn
    user = c.compute.create_server(name=f"{env.prefix}user", image_id=v1.id,
                                   flavor_id=c.compute.find_flavor("m1.tiny").id,
                                   networks=[{"uuid": c.network.find_network("provider").id}])
    c.compute.wait_for_server(user, wait=300)

    run("2")  # v1 is superseded but in use: kept, and the plan says by whom
    steps = {s[2]: s for s in env.plan_steps()}
    assert steps[v1.name][0] == "keep" and f"held by {env.prefix}user ({user.id})" in \
        steps[v1.name][3]
    run("3")
    by_version = {i.properties["fedcloud_version"]: i for i in env.images()}
    assert set(by_version) == {"1", "2", "3"}
    assert by_version["2"].is_hidden and by_version["2"].properties["fedcloud_hidden_at"]
    assert not by_version["1"].is_hidden and not by_version["3"].is_hidden
    usage = {r["version"]: r["servers"] for r in env.last_run()["results"]["usage"]}
    assert usage["1"] == f"{env.prefix}user ({user.id})" and usage["2"] == "-"

    # the grace period is over: v2 goes; v1 stays while the server holds it
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    c.image.update_image_properties(by_version["2"], meta={"fedcloud_hidden_at": old})
    run("3")  # again: v3 is found by its sha256 (no download, upload or boot test)
    assert {i.properties["fedcloud_version"] for i in env.images()} == {"1", "3"}
    steps = [s[:3] for s in env.plan_steps()]
    assert steps[:2] == [("reuse", "image", f"{env.prefix}img-3"),
                         ("keep", "boot test", f"{env.prefix}img-3-boottest")]
    assert ("delete", "image", by_version["2"].name) in steps
    assert ("keep", "image", v1.name) in steps
    assert c.image.get_image(by_version["3"].id).id == by_version["3"].id


# --------------------------------------------------------------------------- failures

def test_corrupted_download_is_refused_before_upload(env):
    img = env.publish("disk.qcow2")
    want = sha256(img)
    data = bytearray(img.read_bytes())
    data[len(data) // 2] ^= 0xFF
    img.write_bytes(bytes(data))  # what the mirror serves is not what was published
    r = env.run("1", source=env.http.url("disk.qcow2"), checksum=want)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"has sha256 {sha256(img)}, expected {want}" in r.stderr
    assert "nothing was uploaded" in r.stderr
    assert env.images() == [] and list(env.work.glob("*")) == []


def _kernel_of(proc: psutil.Process) -> psutil.Process | None:
    for child in proc.children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def test_kill_during_upload_then_rerun(env):
    img = env.publish("big.qcow2", size_mb=512, data_mb=160)
    args = env.args("1", approve=True, source=env.http.url(img.name), checksum=sha256(img))
    proc = subprocess.Popen(args, cwd=ROOT, env=env.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    name = f"{env.prefix}img-1"
    kernel, seen = None, None
    deadline = time.monotonic() + 300
    while seen is None and time.monotonic() < deadline and proc.poll() is None:
        kernel = kernel or _kernel_of(psutil.Process(proc.pid))
        seen = next((i for i in env.conn.image.images(owner=env.conn.current_project_id,
                                                      name=name)), None)
        time.sleep(0.02)
    assert seen is not None, "the upload never started"
    os.killpg(proc.pid, signal.SIGKILL)  # the fedcloud run's process group ...
    if kernel is not None and kernel.is_running():
        kernel.kill()  # ... and its kernel (a session of its own): nobody cleans up
    proc.communicate(timeout=60)
    left = env.images()
    print("killed while the image was", seen.status, "; left:",
          [(i.name, i.status) for i in left])
    assert [i.status for i in left] != ["active"], "the upload finished before the kill"

    r = env.run("1", source=env.http.url(img.name), checksum=sha256(img))
    ok(r)
    steps = env.plan_steps()
    image_steps = [s[:2] for s in steps if s[1] == "image"]
    assert image_steps[:len(left)] == [("delete", "image")] * len(left)
    [image] = env.images()  # one image, no queued leftovers
    assert image.status == "active" and image.properties["fedcloud_boot_test"].startswith("passed")
    assert list(env.work.glob("*")) == []  # the killed run's work file was swept too
    killed = [json.loads(p.read_text()) for p in
              (env.tmp / "outputs" / "image-create").glob("*/*/record.json")]
    assert "abandoned" in {k["status"] for k in killed}


def test_failed_boot_test_leaves_the_image_deactivated(env):
    # no fake hypervisor is aarch64: the scheduler finds no host and the server goes ERROR
    env.write_policy(properties={"hw_architecture": "aarch64"})
    img = env.publish("arm.qcow2")
    r = env.run("1", source=env.http.url(img.name), checksum=sha256(img))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "boot test of image" in r.stderr and "DEACTIVATED" in r.stderr
    [image] = env.images()
    assert image.status == "deactivated"
    assert image.properties["fedcloud_boot_test"].startswith("failed ")
    assert env.servers() == []
    r = env.run("1", source=env.http.url(img.name), checksum=sha256(img))  # tries again
    assert r.returncode == 1
    assert [s[:2] for s in env.plan_steps()][:2] == [("update", "image"), ("create", "boot test")]
    assert [i.status for i in env.images()] == ["deactivated"]


# What fails before any cloud call (unreachable URL, absent from the CHECKSUM file, bad
# signature, unknown profile) is tested without a cloud: tests/unit/test_image_verify.py
# (resolve_source) and tests/runbook/test_image_create_runbook.py (exit 2 from the kernel).
BAD = [
    # case, how to make the parameters, expected exit, expected text, archived as a run
    ("not an image", "text", 2, "not a disk image", True),
    ("checksum format", "shortsum", 2, "checksum", False),
    ("version clash", "clash", 2, "with sha256", True),
]


@pytest.mark.parametrize("case, how, code, text, archived", BAD, ids=[b[0] for b in BAD])
def test_bad_input_leaves_nothing_in_glance(env, case, how, code, text, archived):
    img = env.publish("disk.qcow2")
    params = {"source": env.http.url("disk.qcow2"), "checksum": sha256(img)}
    if how == "text":
        (env.served / "notes.qcow2").write_text("these are not the bytes you want\n" * 100)
        params = {"source": env.http.url("notes.qcow2"),
                  "checksum": sha256(env.served / "notes.qcow2")}
    elif how == "shortsum":
        params["checksum"] = sha256(img)[:40]
    elif how == "clash":
        c = env.conn
        other = make_qcow2(env.tmp / "earlier.qcow2", 8, 1)
        c.image.create_image(f"{env.prefix}img-1", filename=str(other), disk_format="qcow2",
                             container_format="bare", allow_duplicates=True,
                             meta={"fedcloud_profile": env.profile, "fedcloud_version": "1",
                                   "fedcloud_sha256": sha256(other)})
    before = [i.id for i in env.images()]
    r = env.run("1", **params)
    assert r.returncode == code, r.stdout + r.stderr
    assert text in r.stderr, r.stderr
    assert [i.id for i in env.images()] == before  # nothing new, nothing queued
    assert env.servers() == [] and list(env.work.glob("*")) == []
    runs = list((env.tmp / "outputs" / "image-create").glob("*/*/record.json"))
    assert bool(runs) == archived
    if archived:
        assert env.last_run()["exit_code"] == code
