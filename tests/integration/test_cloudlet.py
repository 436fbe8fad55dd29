"""The local cloudlet as installed by cloudlet-install: content, verification (and that it
can fail), idempotent re-install, and the conftest fixtures themselves."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedcloud_lib.cloudlet import content, supervisor
from fedcloud_lib.cloudlet import verify as run_verify
from fedcloud_lib.cloudlet.runner import run_playbook
from fedcloud_lib.cloudlet.settings import settings_from_parameters

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "parameters" / "cloudlet-install" / "local.yaml"


def local_settings():
    p = yaml.safe_load(LOCAL.read_text())
    keys = ("cloudlet", "hosts", "service_mode", "compute_driver", "provider_interface",
            "provider_veth", "physnet", "glance_datadir", "cinder_backend")
    return settings_from_parameters(**{k: p[k] for k in keys if k in p})


def fedcloud(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_content_other_runbooks_rely_on(admin_cloud, testing_cloud, production_cloud):
    for name, (vcpus, ram, disk) in content.FLAVORS.items():
        f = admin_cloud.compute.find_flavor(name)
        assert f is not None and (f.vcpus, f.ram, f.disk) == (vcpus, ram, disk), name
    img = testing_cloud.image.find_image(content.TEST_IMAGE)
    assert img.status == "active" and img.visibility == "public" and 0 < img.size <= 1024 * 1024
    assert testing_cloud.network.find_network("provider") is not None  # shared: members see it
    net = admin_cloud.network.find_network("provider")  # provider attributes: admin only
    assert net.is_shared and net.provider_network_type == "flat"
    assert net.provider_physical_network == "physnet1"
    assert testing_cloud.network.find_subnet("provider-v4").cidr == "198.51.100.0/24"
    for conn, name in ((testing_cloud, "testing"), (production_cloud, "production")):
        proj = admin_cloud.identity.get_project(conn.current_project_id)
        assert proj.name == name
        q = admin_cloud.compute.get_quota_set(proj.id)
        assert q.instances == content.PROJECTS[name]["instances"]
    assert stat.S_IMODE(content.CLOUDS_YAML.stat().st_mode) == 0o600
    secrets = Path("/etc/fedcloud/secrets/testing.yaml")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets.parent.stat().st_mode) == 0o700


def test_full_verification_passes():
    v = run_verify(expect_hosts=local_settings().compute_names, out=lambda _: None)
    assert not v.failed, v.frame().to_string()
    names = [c.name for c in v.checks]
    for must in ("workload: boot one server per host (ACTIVE, address)", "workload: cold migrate",
                 "workload: live migrate", "workload: snapshot to a real image",
                 "workload: delete everything, nothing left behind"):
        assert must in names
    assert all(c.status == "OK" for c in v.checks)


def test_verify_fails_naming_a_stopped_service_and_passes_again(admin_cloud, tmp_path):
    """Stop glance: the cloudlet-verify runbook fails and names glance and its log;
    start it again: the runbook passes."""
    env = {"FEDCLOUD_OUTPUTS": str(tmp_path / "outputs")}
    assert supervisor.stop(only="glance-api", out=lambda _: None) == 0
    try:
        r = fedcloud("run", "cloudlet-verify", "-p", "workload", "false", env=env)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert "[image]" in out and "/var/log/fedcloud/glance-api.log" in out, out
    finally:
        assert supervisor.start(only="glance-api", out=lambda _: None) == 0
    assert supervisor.wait_ports([9292]) == []
    r = fedcloud("run", "cloudlet-verify", "-p", "workload", "false", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_reinstall_changes_nothing():
    run = run_playbook(local_settings(), out=lambda _: None)
    assert run.status == "successful", run.rows()
    assert run.changed == [], run.rows(only_changed=True)
    assert len(run.tasks) > 40


def test_status_shows_every_program_running():
    states = {p.name: p.state for p in supervisor.status()}
    assert set(states) >= {"mariadb", "rabbitmq", "keystone", "glance-api", "nova-compute-vm",
                           "nova-compute-cmp2", "neutron-linuxbridge-agent-cmp2", "cinder-volume"}
    assert set(states.values()) == {"RUNNING"}


def test_fixtures_isolate_and_clean_up(admin_cloud, testing_cloud, fresh_project, name_prefix):
    """The fresh project is really separate, and prefixed things go away afterwards."""
    img = admin_cloud.image.find_image(content.TEST_IMAGE)
    flavor = admin_cloud.compute.find_flavor("m1.tiny")
    net = fresh_project.conn.network.find_network("provider")
    s = fresh_project.conn.compute.create_server(name=f"{fresh_project.name}-s", image_id=img.id,
                                                 flavor_id=flavor.id, networks=[{"uuid": net.id}])
    s = fresh_project.conn.compute.wait_for_server(s, wait=180)
    assert s.status == "ACTIVE"
    assert testing_cloud.compute.find_server(s.id) is None  # not visible from 'testing'
    sg = testing_cloud.network.create_security_group(name=f"{name_prefix}sg")
    assert testing_cloud.network.find_security_group(sg.id) is not None
