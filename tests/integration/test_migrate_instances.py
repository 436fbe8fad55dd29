"""migrate-instances on the real cloudlet: `fedcloud run migrate-instances` → engine →
runbook → two projects of the local OpenStack.

The two "cloudlets" are the `fedcloud-testing` (source) and `fedcloud-production` (target)
entries; the quota test makes two projects of its own (its target's quota must be changed).
The fake drivers copy real bytes on snapshot and upload-to-image, so the checksums compared
here are of real data.  Everything is named with a unique prefix (or stamped with a
migration id derived from it) and deleted afterwards in both projects, whatever happens;
nothing else in the shared projects is touched.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from fedcloud_lib.migration import tags
from fedcloud_lib.migration.journal import JOURNAL
from tests.fakes.glance import generated
from tests.fakes.site import ALICE_KEY
from tests.integration.conftest import purge

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SRC, DST = "fedcloud-testing", "fedcloud-production"
TEST_IMAGE = "fedora-cloud-test"
BIG = 64 * 2**20  # the kill test's boot image: its transfer takes a moment


@dataclass
class Mig:
    tmp: Path
    prefix: str
    src: Any
    dst: Any
    admin: Any
    env_extra: dict = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "FEDCLOUD_OUTPUTS": str(self.tmp / "outputs"),
               "FEDCLOUD_OPERATOR": "integration-test", "PYTHONPATH": str(ROOT),
               **self.env_extra}
        env.pop("FEDCLOUD_RUNBOOKS", None)
        return env

    def argv(self, params: dict[str, Any], approve: bool) -> list[str]:
        args = [sys.executable, "-m", "fedcloud_lib.cli", "run", "migrate-instances",
                "--no-progress"]
        for k, v in params.items():
            args += ["-p", k, v if isinstance(v, str) else json.dumps(v)]
        return args + (["--approve"] if approve else [])

    def run(self, params: dict[str, Any], approve: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(params, approve), cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=900)

    def start(self, params: dict[str, Any], approve: bool = True) -> subprocess.Popen:
        return subprocess.Popen(self.argv(params, approve), cwd=ROOT, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def records(self) -> list[dict]:
        out = [json.loads(p.read_text()) for p in
               (self.tmp / "outputs").glob("migrate-instances/*/*/record.json")]
        return sorted(out, key=lambda r: r["started"])

    def last(self) -> dict:
        return self.records()[-1]


def _params(mig: Mig, servers: list[str], **extra) -> dict[str, Any]:
    return {"source_cloud": SRC, "target_cloud": DST, "servers": servers, "timeout": 300,
            **extra}


@pytest.fixture
def mig(tmp_path, admin_cloud, testing_cloud, production_cloud):
    prefix = f"it-{uuid.uuid4().hex[:8]}-"
    m = Mig(tmp_path, prefix, testing_cloud, production_cloud, admin_cloud)
    try:
        yield m
    finally:
        for conn in (production_cloud, testing_cloud):
            purge(conn, admin_cloud, prefix)


def _keypair(conn, name: str) -> Any:
    return conn.compute.create_keypair(name=name, public_key=ALICE_KEY.replace("alice", name))


def make_server(conn, name: str, *, image_id: str, volume_gb: int = 0,
                volume_image: str | None = None, key: str | None = None,
                metadata: dict | None = None) -> tuple[Any, Any]:
    net = conn.network.find_network("provider")
    flavor = conn.compute.find_flavor("m1.tiny")
    server = conn.compute.create_server(
        name=name, flavor_id=flavor.id, image_id=image_id, networks=[{"uuid": net.id}],
        metadata=metadata or {}, **({"key_name": key} if key else {}))
    volume = None
    if volume_gb:
        volume = conn.block_storage.create_volume(
            name=f"{name}-srv", size=volume_gb, image_id=volume_image,
            metadata={"role": "data"})
        volume = conn.block_storage.wait_for_status(volume, "available", failures=["error"],
                                                    wait=300)
    server = conn.compute.wait_for_server(server, wait=300)
    if volume is not None:
        conn.compute.create_volume_attachment(server, volume_id=volume.id)
        volume = conn.block_storage.wait_for_status(volume, "in-use", failures=["error"],
                                                    wait=300)
    return conn.compute.get_server(server.id), volume


def image_sha256(conn, image_id: str) -> str:
    h = hashlib.sha256()
    for chunk in conn.image.download_image(image_id, stream=True).iter_content(2**20):
        h.update(chunk)
    return h.hexdigest()


def migrated(conn, source_id: str, volume_ids: tuple[str, ...] = ()) -> dict[str, list]:
    """What a project holds that the migration made of server ``source_id``: in the
    target, copies stamped as made from it (and from its volumes ``volume_ids``); in the
    source, its temporaries."""
    pid = conn.current_project_id
    images = [i for i in conn.image.images(owner=pid)
              if tags.ref_id(tags.props(i).get(tags.MIGRATED_FROM)) == source_id
              or str(tags.props(i).get(tags.TEMP, "")).startswith(source_id)]
    volumes = [v for v in conn.block_storage.volumes(details=True)
               if tags.ref_id((v.metadata or {}).get(tags.MIGRATED_FROM)) in volume_ids
               or str((v.metadata or {}).get(tags.TEMP, "")).startswith(source_id)]
    return {"servers": tags.target_servers(conn, source_id), "images": images,
            "volumes": volumes}


def steps_of(record: dict) -> list[tuple[str, str, str]]:
    return [(s["action"], s["kind"], s["name"]) for s in record["results"]["plan"]["steps"]]


# --------------------------------------------------------------------------- the main path

def test_migrate_a_server_with_its_volume_and_metadata(mig):
    src, dst = mig.src, mig.dst
    base = src.image.find_image(TEST_IMAGE)
    key = _keypair(src, f"{mig.prefix}key")
    meta = {"fedcloud_class": "dev", "fedcloud_ticket": "4242", "purpose": "migration test"}
    server, volume = make_server(src, f"{mig.prefix}web", image_id=base.id, volume_gb=1,
                                 volume_image=base.id, key=key.name, metadata=meta)
    params = _params(mig, [server.name])

    # dry run: the plan and its tables, nothing made anywhere, the source left running
    dry = mig.run(params)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    rec = mig.last()
    assert rec["status"] == "planned"
    assert ("create", "transfer", f"{server.name}/boot") in steps_of(rec)
    assert ("create", "volume", f"{server.name}/{volume.name}") in steps_of(rec)
    [inv] = rec["results"]["inventory"]
    assert inv["state"] == "planned" and inv["volumes"] == f"{volume.name} (1 GiB)"
    assert inv["keypair"] == key.name and "fedcloud_class=dev" in inv["metadata"]
    assert any(q["resource"] == "instances" and q["requested"] == 1
               for q in rec["results"]["quota"])
    assert rec["results"]["estimate"]["bytes_to_move"] > 0
    assert migrated(dst, server.id, (volume.id,)) == {"servers": [], "images": [],
                                                      "volumes": []}
    assert src.compute.get_server(server.id).status == "ACTIVE"

    # approved: migrated, verified, cleaned
    t0 = time.monotonic()
    run = mig.run(params, approve=True)
    took = time.monotonic() - t0
    assert run.returncode == 0, run.stdout + run.stderr
    rec = mig.last()
    assert rec["status"] == "succeeded"
    [out] = rec["results"]["migration"]["servers"]
    assert out["state"] == "cleaned" and not out["rolled_back"]
    checks = {c["name"]: c for c in out["verification"]["checks"]}
    assert all(checks[c]["status"] == "passed"
               for c in ("active", "flavor", "boot disk", "metadata", "volumes"))
    # the cloudlet's networks lead nowhere: the ssh check says so, it does not pass
    assert checks["ssh"]["status"] == "skipped"
    assert checks["ssh"]["detail"].startswith("not reachable (skipped)")

    # everything arrived: the server with its metadata, key pair, group and volume
    [copy] = tags.target_servers(dst, server.id)
    copy = dst.compute.get_server(copy.id)
    assert copy.status == "ACTIVE" and copy.name == server.name and copy.id == out["target_id"]
    assert copy.metadata[tags.MIGRATED_FROM] == f"{SRC}/{server.id}"
    assert copy.metadata[tags.VERIFIED]
    assert {k: v for k, v in copy.metadata.items() if k not in tags.STAMPS} == meta
    assert copy.key_name == key.name
    assert {g["name"] for g in copy.security_groups} == {"fedcloud-standard"}
    [vcopy] = [v for v in dst.block_storage.volumes(details=True)
               if (v.metadata or {}).get(tags.MIGRATED_FROM) == f"{SRC}/{volume.id}"]
    assert vcopy.size == volume.size and vcopy.status == "in-use"
    assert {a["server_id"] for a in vcopy.attachments} == {copy.id}
    assert vcopy.metadata["role"] == "data"
    # the bytes: the boot disk and the volume both held the test image; their sha256s,
    # verified end to end by the run, are the test image's
    want = image_sha256(src, base.id)
    assert [t["sha256"] for t in out["transfers"]] == [want, want]
    [boot] = [i for i in migrated(dst, server.id)["images"]]  # the volume image is gone
    assert boot.status == "active" and tags.props(boot)[tags.SHA256] == want
    assert tags.props(boot)[tags.PART] == "boot" and copy.image["id"] == boot.id
    assert image_sha256(dst, boot.id) == want

    # the source is untouched but for the stop: same metadata, its volume still attached,
    # no temporary snapshot, image or clone left
    kept = src.compute.get_server(server.id)
    assert kept.status == "SHUTOFF" and kept.metadata == meta
    v = src.block_storage.get_volume(volume.id)
    assert v.status == "in-use" and {a["server_id"] for a in v.attachments} == {server.id}
    assert migrated(src, server.id) == {"servers": [], "images": [], "volumes": []}

    # the recorded state machine, in the archived run folder
    folder = next((mig.tmp / "outputs").glob(f"migrate-instances/*/{rec['run_id']}"))
    states = [json.loads(line)["state"] for line in (folder / JOURNAL).read_text().splitlines()]
    assert states == ["stopped", "snapshotted", "transferred", "created", "verified", "cleaned"]
    assert JOURNAL in (folder / "MANIFEST.sha256").read_text()
    print(f"migration of one server with a 1 GiB volume: {took:.1f} s")


# --------------------------------------------------------------------------- killed and resumed

def _big_image(conn, name: str) -> Any:
    img = conn.image.create_image(name, disk_format="raw", container_format="bare",
                                  allow_duplicates=True)
    img.upload(conn.image, data=generated(BIG, seed=12), size=BIG)
    return conn.image.wait_for_status(conn.image.get_image(img.id), "active",
                                      failures=["killed"], wait=300)


def _kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL the run: the `fedcloud` process group, and the kernel's (jupyter_client
    starts kernels in a session of their own)."""
    family = psutil.Process(proc.pid).children(recursive=True)
    groups = {proc.pid}
    for p in family:
        try:
            groups.add(os.getpgid(p.pid))
        except ProcessLookupError:
            continue
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            continue


def test_a_run_killed_during_the_transfer_is_finished_by_a_rerun(mig):
    src, dst = mig.src, mig.dst
    big = _big_image(src, f"{mig.prefix}big")
    base = src.image.find_image(TEST_IMAGE)
    server, volume = make_server(src, f"{mig.prefix}app", image_id=big.id, volume_gb=1,
                                 volume_image=base.id, metadata={"fedcloud_class": "dev"})
    params = _params(mig, [server.name])

    proc = mig.start(params)
    seen, deadline = None, time.monotonic() + 600
    while seen is None and time.monotonic() < deadline and proc.poll() is None:
        sending = [i for i in dst.image.images(owner=dst.current_project_id)
                   if tags.ref_id(tags.props(i).get(tags.MIGRATED_FROM)) == server.id
                   and i.status in ("queued", "saving")]
        if sending:
            seen = sending[0]
            _kill_run(proc)
        else:
            time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert seen is not None, f"the run ended before a transfer was seen: {out}{err}"
    assert proc.returncode == -signal.SIGKILL
    part = tags.props(seen).get(tags.PART)
    print(f"SIGKILL during the transfer of {part} ({seen.name}, {seen.status})")
    # the stream was cut: the target holds an image that never became active
    left = {i.id: i.status for i in migrated(dst, server.id)["images"]}
    assert left.get(seen.id, "gone") != "active"

    rerun = mig.run(params, approve=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    recs = mig.records()
    assert [r["status"] for r in recs] == ["abandoned", "succeeded"]
    rec = recs[-1]
    steps = steps_of(rec)
    # what the killed run finished is reused, not redone
    assert ("reuse", "snapshot", f"{server.name}/boot") in steps or \
        ("reuse", "transfer", f"{server.name}/boot") in steps
    assert not any(k == "source server" and a == "update" for a, k, _ in steps)
    verification = next(s for s in rec["results"]["plan"]["steps"]
                        if s["kind"] == "verification")
    assert verification["inputs"]["restart_source"]  # the killed run stopped it
    [result] = rec["results"]["migration"]["servers"]
    assert result["state"] == "cleaned"
    want_boot = image_sha256(src, big.id)
    assert want_boot in {t["sha256"] for t in result["transfers"]}

    # exactly one server, no duplicate image, no half-sent one, temporaries gone
    [copy] = tags.target_servers(dst, server.id)
    assert copy.status == "ACTIVE"
    images = migrated(dst, server.id)["images"]
    assert [(tags.props(i)[tags.PART], i.status) for i in images] == [("boot", "active")]
    assert tags.props(images[0])[tags.SHA256] == want_boot
    assert len([i for i in dst.image.images(owner=dst.current_project_id)
                if i.name.startswith(server.name)]) == 1
    assert migrated(src, server.id) == {"servers": [], "images": [], "volumes": []}
    [vcopy] = [v for v in dst.block_storage.volumes(details=True)
               if (v.metadata or {}).get(tags.MIGRATED_FROM) == f"{SRC}/{volume.id}"]
    assert {a["server_id"] for a in vcopy.attachments} == {copy.id}


# --------------------------------------------------------------------------- rollback

def test_failed_verifications_are_rolled_back_and_the_others_go_on(mig):
    """require_ssh makes the unreachable port 22 a failure: each server is rolled back in
    turn (the walk goes on after the first) and its source started again."""
    src, dst = mig.src, mig.dst
    base = src.image.find_image(TEST_IMAGE)
    a, _ = make_server(src, f"{mig.prefix}a", image_id=base.id, metadata={"n": "a"})
    b, _ = make_server(src, f"{mig.prefix}b", image_id=base.id, metadata={"n": "b"})
    run = mig.run(_params(mig, [a.name, b.name], require_ssh=True), approve=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 of 2 server(s) failed verification and were rolled back" in run.stderr
    rec = mig.last()
    assert rec["status"] == "failed"
    outs = rec["results"]["migration"]["servers"]
    assert [(o["name"], o["state"]) for o in outs] == [(a.name, "rolled back"),
                                                       (b.name, "rolled back")]
    assert all("require_ssh is set" in o["rolled_back"] for o in outs)
    walked = rec["results"]["migration"]["steps"]
    assert [s["kind"] for s in walked if s["kind"] == "verification"] == ["verification"] * 2
    for s in (a, b):
        assert migrated(dst, s.id) == {"servers": [], "images": [], "volumes": []}
        assert src.compute.get_server(s.id).status == "ACTIVE"  # started again
        assert migrated(src, s.id)["images"] == []  # temporaries cleaned anyway


# --------------------------------------------------------------------------- quotas, refusals

@dataclass
class Project:
    name: str
    project: Any
    user: Any
    conn: Any
    entry: dict


def _project(admin, *, tags_: list[str] | None = None) -> Project:
    import openstack

    name = f"it-{uuid.uuid4().hex[:8]}"
    idc = admin.identity
    proj = idc.create_project(name=name, domain_id="default", description="integration test",
                              tags=tags_ or [])
    password = secrets.token_urlsafe(18)
    user = idc.create_user(name=name, password=password, domain_id="default",
                           default_project_id=proj.id)
    idc.assign_project_role_to_user(proj, user, idc.find_role("member"))
    auth = admin.config.config["auth"]
    entry = {"auth": {"auth_url": auth["auth_url"], "username": name, "password": password,
                      "project_name": name, "user_domain_name": "Default",
                      "project_domain_name": "Default"},
             "region_name": admin.config.region_name, "identity_api_version": 3}
    conn = openstack.connect(**entry["auth"], region_name=entry["region_name"],
                             identity_api_version="3")
    return Project(name, proj, user, conn, entry)


def _drop(admin, p: Project) -> None:
    try:
        purge(p.conn, admin)
        for port in admin.network.ports(project_id=p.project.id):
            admin.network.delete_port(port, ignore_missing=True)
        for g in admin.network.security_groups(project_id=p.project.id):
            admin.network.delete_security_group(g, ignore_missing=True)
    finally:
        p.conn.close()
        admin.identity.delete_user(p.user, ignore_missing=True)
        admin.identity.delete_project(p.project, ignore_missing=True)


@pytest.fixture
def two_projects(tmp_path, admin_cloud):
    """Two projects of their own (source with fedcloud policy tags, target with no room
    for an instance) and a private clouds.yaml naming them (0600, deleted afterwards)."""
    source = _project(admin_cloud, tags_=["fedcloud-class-persistent", "unrelated"])
    target = _project(admin_cloud)
    clouds = tmp_path / "clouds.yaml"
    try:
        from openstack.config.loader import CONFIG_FILES

        path = next(p for p in [os.environ.get("OS_CLIENT_CONFIG_FILE"), *CONFIG_FILES]
                    if p and os.path.exists(p))  # the operator's clouds.yaml
        data = yaml.safe_load(Path(path).read_text()) or {}
        data["clouds"] = {**data.get("clouds", {}), "it-source": source.entry,
                          "it-target": target.entry}
        fd = os.open(clouds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f)
        admin_cloud.compute.update_quota_set(target.project.id, instances=0)
        yield source, target, clouds
    finally:
        clouds.unlink(missing_ok=True)
        for p in (source, target):
            _drop(admin_cloud, p)


def _everything(conn) -> dict[str, set]:
    pid = conn.current_project_id
    return {"servers": {(s.id, s.status) for s in conn.compute.servers()},
            "images": {i.id for i in conn.image.images(owner=pid)},
            "volumes": {v.id for v in conn.block_storage.volumes()},
            "keypairs": {k.name for k in conn.compute.keypairs()},
            "groups": {g.id for g in conn.network.security_groups(project_id=pid)}}


def test_bad_mappings_and_an_over_quota_target_are_refused_then_copy_quotas(tmp_path,
                                                                            admin_cloud,
                                                                            two_projects):
    source, target, clouds = two_projects
    mig = Mig(tmp_path, "", source.conn, target.conn, admin_cloud,
              {"OS_CLIENT_CONFIG_FILE": str(clouds)})
    s, t = source.conn, target.conn
    base = s.image.find_image(TEST_IMAGE)
    server, _ = make_server(s, "web", image_id=base.id, metadata={"fedcloud_class": "dev"})
    params = {"source_cloud": "it-source", "target_cloud": "it-target", "servers": ["web"],
              "timeout": 300}
    before = (_everything(s), _everything(t))

    bad = mig.run({**params, "flavor_map": {"m1.tiny": "m9.nonesuch"},
                   "network_map": {"provider": "nowhere"}}, approve=True)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "flavor_map: server web's flavor 'm1.tiny' resolves to 'm9.nonesuch'" in bad.stderr
    assert "network_map: server web's network 'provider' resolves to 'nowhere'" in bad.stderr
    assert mig.last()["status"] == "refused"
    assert (_everything(s), _everything(t)) == before

    over = mig.run(params, approve=True)
    assert over.returncode == 2, over.stdout + over.stderr
    assert f"{target.name}: instances: 0 used + 1 requested > limit 0" in over.stderr
    assert "copy_quotas=true raises the target's quotas" in over.stderr
    assert (_everything(s), _everything(t)) == before

    # copy_quotas: the target gets the source's quotas (raised, never lowered) and its
    # fedcloud policy tags, then the server moves; delete_source removes the original
    # once its copy is verified
    done = mig.run({**params, "copy_quotas": True, "delete_source": True}, approve=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rec = mig.last()
    quota_step = next(x for x in rec["results"]["plan"]["steps"] if x["kind"] == "quotas")
    assert quota_step["action"] == "update"
    want = admin_cloud.compute.get_quota_set(source.project.id).instances
    assert quota_step["inputs"]["set"]["compute"]["instances"] == want
    assert admin_cloud.compute.get_quota_set(target.project.id).instances == want
    assert "fedcloud-class-persistent" in admin_cloud.identity.get_project(target.project.id).tags
    assert "unrelated" not in admin_cloud.identity.get_project(target.project.id).tags
    [copy] = tags.target_servers(t, server.id)
    assert copy.status == "ACTIVE" and copy.metadata[tags.VERIFIED]
    assert s.compute.find_server(server.id, ignore_missing=True) is None  # deleted, as asked
    assert rec["results"]["migration"]["servers"][0]["source_deleted"]
